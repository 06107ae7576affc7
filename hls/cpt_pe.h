// cpt-hw HLS kernel: one processing element step.
//
// A PE ANDs a D-bit word of A plane i with the word of B plane j at the same K offset, popcounts it and
// adds the count, shifted left by i + j, into its accumulator; the count is subtracted instead when
// exactly one of the two planes is the top plane of a signed operand (weight -2^(bits-1)).  This is
// cpt_hw.hw.golden.gemm_bitplanes, one word and one plane pair at a time.
#ifndef CPT_PE_H
#define CPT_PE_H

#include "cpt_popcount.h"

namespace cpt {

template <class Cfg>
void pe_step(typename Types<Cfg>::acc_t &acc, typename Types<Cfg>::word_t a, typename Types<Cfg>::word_t b,
             typename Types<Cfg>::shift_t shift, bool negate) {
#pragma HLS INLINE
    typedef Types<Cfg> T;
    ap_uint<T::PC_W> count = popcount<T::D>(a & b);
    ap_int<T::TERM_W> term = ap_int<T::TERM_W>(ap_uint<T::TERM_W - 1>(count) << shift);
    // acc_t arithmetic wraps modulo 2^acc_width, as the golden model's accumulator does.
    acc = negate ? typename T::acc_t(acc - term) : typename T::acc_t(acc + term);
}

}  // namespace cpt

#endif  // CPT_PE_H
