// cpt-hw HLS kernel: population count of a W-bit word as a balanced adder tree.
//
// The tree splits the word in halves down to leaves of at most 6 bits (one LUT6 per output bit of a
// leaf), then adds the partial counts pairwise with adders exactly as wide as their operands need.  A
// flat `for` sum would leave the tree shape to the tool; this keeps depth at log2(W / 6) adders.
#ifndef CPT_POPCOUNT_H
#define CPT_POPCOUNT_H

#include "cpt_util.h"

namespace cpt {

template <unsigned W, bool LEAF = (W <= 6)>
struct Popcount;

//: Leaf: at most 6 input bits, summed directly (synthesises to one LUT6 per result bit).
template <unsigned W>
struct Popcount<W, true> {
    typedef ap_uint<bits_for(W)> ret_t;
    static ret_t run(ap_uint<W> x) {
#pragma HLS INLINE
        ret_t s = 0;
        for (unsigned i = 0; i < W; ++i) {
#pragma HLS UNROLL
            s += x[i];
        }
        return s;
    }
};

//: Inner node: popcount(low half) + popcount(high half).
template <unsigned W>
struct Popcount<W, false> {
    static const unsigned LO = W / 2;
    static const unsigned HI = W - LO;
    typedef ap_uint<bits_for(W)> ret_t;
    static ret_t run(ap_uint<W> x) {
#pragma HLS INLINE
        ap_uint<LO> lo = x(LO - 1, 0);
        ap_uint<HI> hi = x(W - 1, LO);
        return ret_t(Popcount<LO>::run(lo)) + ret_t(Popcount<HI>::run(hi));
    }
};

//: popcount(x) for any width W >= 1; result width bits_for(W).
template <unsigned W>
typename Popcount<W>::ret_t popcount(ap_uint<W> x) {
#pragma HLS INLINE
    return Popcount<W>::run(x);
}

}  // namespace cpt

#endif  // CPT_POPCOUNT_H
