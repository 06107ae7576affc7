// cpt-hw HLS kernel: argument checks that decide the status word before any memory access.
//
// Mirrors cpt_hw/hw/calls.py (call_status) and docs/registers.md: every error bit is evaluated from the
// register values alone; ERR_WINDOW is evaluated only when the dimensions and precisions are legal,
// because the operand sizes are meaningless otherwise.  With flags bit PREFETCH_B the B prefetch hint is
// checked like an operand (next_n, next_k: ERR_DIM; next_b_bits: ERR_BITS; next_b: ERR_ALIGN; the bytes
// the prefetch reads: ERR_WINDOW).  A non-zero status means the kernel returns without reading or writing
// memory.
#ifndef CPT_CHECK_H
#define CPT_CHECK_H

#include "cpt_util.h"

namespace cpt {

//: [x, x + size) lies inside [base, limit).  64-bit arithmetic, no overflow for any register values.
inline bool in_window(ap_uint<64> x, ap_uint<64> size, ap_uint<64> base, ap_uint<64> limit) {
#pragma HLS INLINE
    return x >= base && x <= limit && size <= ap_uint<64>(limit - x);
}

//: D-bit words a prefetch reads: the first min(n, b_block_cols) columns of a B operand (n, k, b_bits).
template <class Cfg>
ap_uint<64> prefetch_words(uint32_t n, uint32_t k, uint32_t b_bits) {
#pragma HLS INLINE
    typedef Types<Cfg> T;
    const ap_uint<64> cols = n < T::BB ? n : T::BB;
    return cols * b_bits * ((ap_uint<64>(k) + T::D - 1) / T::D);
}

//: The status word of a call: 0 when it may run, else the OR of the Cfg::err_* bits.
template <class Cfg>
ap_uint<32> check_call(const typename Cfg::inputs &x) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    const typename T::addr_t a = x.a, b = x.b, c = x.c, win_base = x.win_base, win_limit = x.win_limit;
    const typename T::addr_t next_b = x.next_b;
    const uint32_t m = x.m, n = x.n, k = x.k, a_bits = x.a_bits, b_bits = x.b_bits, flags = x.flags;
    const uint32_t next_n = x.next_n, next_k = x.next_k, next_b_bits = x.next_b_bits;
    const bool pf = (flags >> Cfg::flag_prefetch_b_bit) & 1;
    const bool dim_err = m == 0 || n == 0 || k == 0 || m > Cfg::max_dim || n > Cfg::max_dim || k > Cfg::k_max ||
                         (pf && (next_n == 0 || next_k == 0 || next_n > Cfg::max_dim || next_k > Cfg::k_max));
    const bool bits_err = a_bits == 0 || b_bits == 0 || a_bits > T::P || b_bits > T::P ||
                          (pf && (next_b_bits == 0 || next_b_bits > T::P));
    const bool align_err = a % T::WORD_BYTES != 0 || b % T::WORD_BYTES != 0 || c % T::WORD_BYTES != 0 ||
                           (pf && next_b % T::WORD_BYTES != 0);
    const bool flags_err = (flags & ~Cfg::flags_mask) != 0;
    bool window_err = false;
    if (!dim_err && !bits_err) {
        const ap_uint<64> kw = (k + T::D - 1) / T::D;
        const ap_uint<64> size_a = ap_uint<64>(m) * a_bits * kw * T::WORD_BYTES;
        const ap_uint<64> size_b = ap_uint<64>(n) * b_bits * kw * T::WORD_BYTES;
        const ap_uint<64> size_c = ap_uint<64>(m) * ((n + T::C - 1) / T::C * T::C) * (T::RES_BITS / 8);
        window_err = !in_window(a, size_a, win_base, win_limit) || !in_window(b, size_b, win_base, win_limit) ||
                     !in_window(c, size_c, win_base, win_limit) ||
                     (pf && !in_window(next_b, prefetch_words<Cfg>(next_n, next_k, next_b_bits) * T::WORD_BYTES,
                                       win_base, win_limit));
    }
    ap_uint<32> status = 0;
    status[Cfg::err_dim_bit] = dim_err;
    status[Cfg::err_bits_bit] = bits_err;
    status[Cfg::err_align_bit] = align_err;
    status[Cfg::err_window_bit] = window_err;
    status[Cfg::err_flags_bit] = flags_err;
    return status;
}

}  // namespace cpt

#endif  // CPT_CHECK_H
