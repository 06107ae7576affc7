// cpt-hw HLS kernel: the whole GEMM behind the register map of docs/registers.md.
//
//   gemm_top  checks the arguments (cpt_check.h); on any error it returns the status without touching
//             memory, otherwise it runs the dataflow region:
//   run       read_operands -> (D-bit words) -> Compute::run -> (bus beats) -> write_results
//             connected by hls::stream FIFOs, plus a small process that combines their iteration counts.
//
// The generated top function (build/<cfg>/hls/cpt_gemm.cpp) only declares the interface and calls
// gemm_top with the generated config struct.
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
         uint32_t flags, ap_uint<64> &busy) {
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
    read_operands<Cfg>(mem, a, b, m, n, k, a_bits, b_bits, words, n_rd);
    Compute<Cfg>::run(words, results, m, n, k, a_bits, b_bits, flags, n_cmp);
    write_results<Cfg>(mem, c, m, n, results, n_wr);
    combine_counts<Cfg>(n_rd, n_cmp, n_wr, busy);
}

//: One accelerator call.  Outputs: status (0 or error bits), cycles (busy count, 0 when refused), id.
template <class Cfg>
void gemm_top(typename Types<Cfg>::bus_t *mem, typename Types<Cfg>::addr_t a, typename Types<Cfg>::addr_t b,
              typename Types<Cfg>::addr_t c, uint32_t m, uint32_t n, uint32_t k, uint32_t a_bits, uint32_t b_bits,
              uint32_t flags, typename Types<Cfg>::addr_t win_base, typename Types<Cfg>::addr_t win_limit,
              uint32_t *status, uint64_t *cycles, uint32_t *id) {
#pragma HLS INLINE
    const ap_uint<32> st = check_call<Cfg>(a, b, c, m, n, k, a_bits, b_bits, flags, win_base, win_limit);
    ap_uint<64> busy = 0;
    if (st == 0) run<Cfg>(mem, a, b, c, m, n, k, a_bits, b_bits, flags, busy);
    *status = st.to_uint();
    *cycles = busy.to_uint64();
    *id = Cfg::id_word;
}

}  // namespace cpt

#endif  // CPT_GEMM_H
