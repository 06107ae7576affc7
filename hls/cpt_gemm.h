// cpt-hw HLS kernel: the whole GEMM behind the register map of docs/registers.md.
//
//   gemm_top  checks the arguments (cpt_check.h); on any error it returns the status without touching
//             memory, otherwise it runs the dataflow region, then the B prefetch (flags PREFETCH_B):
//   run       read_operands -> (D-bit words) -> Compute::run -> (bus beats) -> write_results
//             connected by hls::stream FIFOs, plus a small process that combines their iteration counts.
//
// B prefetch (docs/rtl.md has the contract, rtl/cpt_core.v the same semantics): a static buffer and the
// hint it was loaded for persist between calls.  The next call -- only that one -- uses it for its
// block 0 iff its (b, n, k, b_bits) equal the hint; otherwise it reads B as usual.  Results never depend
// on it.  The prefetch's bus beats count as load-stage beats of the call that reads them.
//
// The generated top function (build/<cfg>/hls/cpt_gemm.cpp) only declares the interface, gathers its
// arguments into the generated cpt_config::inputs and calls gemm_top; an argument that no code here
// reads needs no change to this file.
#ifndef CPT_GEMM_H
#define CPT_GEMM_H

#include "cpt_check.h"
#include "cpt_compute.h"
#include "cpt_read.h"
#include "cpt_write.h"

namespace cpt {

//: `cycles` = the largest busy count of the three stages.  Each stage runs its loops at II = 1, so this
//: is what the dataflow region takes when no stage waits for another or for the bus: a lower bound on
//: the clock cycles the Verilog twin counts (docs/hls.md).
template <class Cfg>
void combine_counts(hls::stream<typename Types<Cfg>::count_t> &rd, hls::stream<typename Types<Cfg>::count_t> &cmp,
                    hls::stream<typename Types<Cfg>::count_t> &wr, ap_uint<64> &busy) {
#pragma HLS INLINE off
    const ap_uint<64> r = rd.read(), c = cmp.read(), w = wr.read();
    const ap_uint<64> rc = r > c ? r : c;
    busy = rc > w ? rc : w;
}

template <class Cfg>
void run(typename Types<Cfg>::bus_t *mem, typename Types<Cfg>::addr_t a, typename Types<Cfg>::addr_t b,
         typename Types<Cfg>::addr_t c, uint32_t m, uint32_t n, uint32_t k, uint32_t a_bits, uint32_t b_bits,
         uint32_t flags, bool b_hit, const typename Types<Cfg>::word_t pf[Types<Cfg>::BT][Types<Cfg>::C]
                                                                            [Types<Cfg>::P][Types<Cfg>::KW],
         ap_uint<64> prefetch_beats, ap_uint<64> &busy) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    typedef Types<Cfg> T;
    // Depths: the load FIFO covers a few bursts; the store FIFO one full result tile, so the array never
    // waits for the write channel within a tile.
    const unsigned rd_depth = 2 * Cfg::burst_beats;
    const unsigned wr_depth = T::R * T::BPR;
    (void)rd_depth;  // read by the STREAM pragmas only
    (void)wr_depth;
    hls::stream<typename T::word_t> words("cpt_words");
#pragma HLS STREAM variable = words depth = rd_depth
    hls::stream<typename T::bus_t> results("cpt_results");
#pragma HLS STREAM variable = results depth = wr_depth
    hls::stream<typename T::count_t> n_rd("cpt_n_rd"), n_cmp("cpt_n_cmp"), n_wr("cpt_n_wr");

    // Canonical dataflow: nothing but process calls, each reading the scalars it needs.
    read_operands<Cfg>(mem, a, b, m, n, k, a_bits, b_bits, b_hit, prefetch_beats, words, n_rd);
    Compute<Cfg>::run(words, results, m, n, k, a_bits, b_bits, flags, b_hit, pf, n_cmp);
    write_results<Cfg>(mem, c, m, n, results, n_wr);
    combine_counts<Cfg>(n_rd, n_cmp, n_wr, busy);
}

//: One accelerator call on the inputs `x` (cpt_config::inputs: the registers, cpt_hw.hw.regmap.INPUTS).
//: Outputs: status (0 or error bits), cycles (busy count, 0 when refused), id.
template <class Cfg>
void gemm_top(typename Types<Cfg>::bus_t *mem, const typename Cfg::inputs &x, typename Cfg::outputs &out) {
#pragma HLS INLINE
    typedef Types<Cfg> T;
    // The prefetched block and its hint, kept from one call to the next.
    static typename T::word_t pf_buf[T::BT][T::C][T::P][T::KW];
#pragma HLS ARRAY_PARTITION variable = pf_buf complete dim = 2
    static bool pf_valid = false;
    static typename T::addr_t pf_b = 0;
    static uint32_t pf_n = 0, pf_k = 0, pf_b_bits = 0;

    const typename T::addr_t a = x.a, b = x.b, c = x.c, next_b = x.next_b;
    const uint32_t m = x.m, n = x.n, k = x.k, a_bits = x.a_bits, b_bits = x.b_bits, flags = x.flags;
    const uint32_t next_n = x.next_n, next_k = x.next_k, next_b_bits = x.next_b_bits;
    const ap_uint<32> st = check_call<Cfg>(x);
    const bool b_hit = pf_valid && b == pf_b && n == pf_n && k == pf_k && b_bits == pf_b_bits;
    pf_valid = false;  // a prefetch serves the very next call only
    ap_uint<64> busy = 0;
    if (st == 0) {
        const bool prefetch = (flags >> Cfg::flag_prefetch_b_bit) & 1;
        const ap_uint<64> pf_beats = prefetch ? ap_uint<64>(prefetch_words<Cfg>(next_n, next_k, next_b_bits) * T::WB) : ap_uint<64>(0);
        run<Cfg>(mem, a, b, c, m, n, k, a_bits, b_bits, flags, b_hit, pf_buf, pf_beats, busy);
        if (prefetch) {  // after the region: the hit above has finished reading pf_buf
            read_prefetch<Cfg>(mem, next_b, next_n, next_k, next_b_bits, pf_buf);
            pf_valid = true;
            pf_b = next_b;
            pf_n = next_n;
            pf_k = next_k;
            pf_b_bits = next_b_bits;
        }
    }
    out.status = st.to_uint();
    out.cycles = busy.to_uint64();
    out.id = Cfg::id_word;
}

}  // namespace cpt

#endif  // CPT_GEMM_H
