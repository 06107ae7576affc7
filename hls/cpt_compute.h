// cpt-hw HLS kernel: the compute stage, an output-stationary rows x cols array of bit-serial PEs.
//
// Per block of b_block_cols columns of B (docs/architecture.md, "Dataflow"):
//   1. the B block is loaded once into b_buf (cols banks, one per PE column) -- except block 0 of a
//      prefetch hit, which the steps read from the persistent prefetch buffer `pf` instead;
//   2. (block 0 only) A tile 0 (`rows` rows) is loaded into one half of the ping-pong buffer a_buf;
//   3. for every A tile and every column tile of the block, a_bits x b_bits x Kw steps: each step every
//      PE (r, c) combines word w of A plane i of row r with word w of B plane j of column c (pe_step).
//      The same pipelined loop also loads the next A tile into the other half of a_buf -- after a
//      block's last tile, the next block's A tile 0 -- and drains the accumulators of the previous
//      column tile (copied to `shadow`) into the store stage, one bus beat per cycle, so loading and
//      draining hide behind computing whenever there is enough of it.  The halves alternate over the
//      whole call (tile counter g), not per block.
// Every loop here is pipelined at II = 1; the sum of their trip counts is this stage's busy count, which
// cpt_hw/hw/hls_cycles.py replays loop for loop (busy_counts) and the C-simulation checks exactly.  So
// the loops are the unit of timing: which loop a load word or a drain beat rides in, and each loop's
// trip count, are the schedule.  Splitting, merging or reordering loops changes `cycles` and must change
// busy_counts with it; the helper functions below are all inlined into run(), which keeps them as the
// loops of one process.
#ifndef CPT_COMPUTE_H
#define CPT_COMPUTE_H

#include "cpt_pe.h"

namespace cpt {

template <class Cfg>
struct Compute {
    typedef Types<Cfg> T;
    typedef typename T::word_t word_t;
    typedef typename T::bus_t bus_t;
    typedef typename T::acc_t acc_t;

    //: Draining state: shadow rows [0, rows) go out one bus beat at a time.
    struct Drain {
        ap_uint<32> left;  // beats still to send
        ap_uint<32> r;     // current row of shadow
        ap_uint<32> q;     // current beat within the row
    };

    //: Walks the (row, plane, word) order of an A tile as it arrives from the load stage.
    struct ALoad {
        ap_uint<32> left;  // words still to load
        ap_uint<32> r, i, w;
        ap_uint<1> half;   // which half of a_buf receives them
    };

    static void drain_beat(Drain &dr, acc_t shadow[T::R][T::C], hls::stream<bus_t> &out) {
#pragma HLS INLINE
        if (dr.left != 0) {
            bus_t beat = 0;
            for (unsigned e = 0; e < T::EPB; ++e) {
#pragma HLS UNROLL
                // sign-extend the accumulator to the 32-bit DDR element
                const typename T::res_t v = shadow[dr.r][dr.q * T::EPB + e];
                beat(T::RES_BITS * e + T::RES_BITS - 1, T::RES_BITS * e) = v(T::RES_BITS - 1, 0);
            }
            out.write(beat);
            --dr.left;
            if (dr.q == T::BPR - 1) {
                dr.q = 0;
                ++dr.r;
            } else {
                ++dr.q;
            }
        }
    }

    //: Take one word of the incoming A tile, clear the K padding bits of its last word, store it.
    static void load_a_word(ALoad &ld, word_t a_buf[2][T::R][T::P][T::KW], hls::stream<word_t> &in,
                            uint32_t kw, uint32_t a_bits, word_t tail_mask) {
#pragma HLS INLINE
        if (ld.left != 0) {
            word_t x = in.read();
            if (ld.w == kw - 1) x &= tail_mask;  // padding is ignored, whatever the host left there
            a_buf[ld.half][ld.r][ld.i][ld.w] = x;
            --ld.left;
            if (ld.w == kw - 1) {
                ld.w = 0;
                if (ld.i == a_bits - 1) {
                    ld.i = 0;
                    ++ld.r;
                } else {
                    ++ld.i;
                }
            } else {
                ++ld.w;
            }
        }
    }

    //: What every loop of a call reads: its sizes and signedness.
    struct Shape {
        uint32_t kw;         // D-bit words per row of A and per column of B
        uint32_t a_bits, b_bits;
        uint32_t steps;      // PE steps of one column tile: a_bits x b_bits x kw
        bool a_signed, b_signed;
        word_t tail_mask;    // bits of a row's last word that are inside K
    };

    static void start_load(ALoad &ld, uint32_t rows, uint32_t a_bits, uint32_t kw, ap_uint<1> half) {
#pragma HLS INLINE
        ld.left = ap_uint<32>(rows) * a_bits * kw;
        ld.r = 0;
        ld.i = 0;
        ld.w = 0;
        ld.half = half;
    }

    //: Load the rest of an A tile (started with start_load), draining on the side; returns the trip count.
    //: One loop, used where the A tile cannot ride in a step loop: block 0's first tile, which no tile
    //: computes beside, and the words of the next tile that the step loops left (the next tile must be
    //: complete before it is computed on).
    static uint32_t finish_a_load(ALoad &ld, word_t a_buf[2][T::R][T::P][T::KW], hls::stream<word_t> &in,
                                  const Shape &sh, Drain &dr, acc_t shadow[T::R][T::C],
                                  hls::stream<bus_t> &out) {
#pragma HLS INLINE
        const uint32_t trip = uint32_t(ld.left);
    load_a:
        while (ld.left != 0) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096
            load_a_word(ld, a_buf, in, sh.kw, sh.a_bits, sh.tail_mask);
            drain_beat(dr, shadow, out);
        }
        return trip;
    }

    //: Load a B block of nb columns (column ct*C + c, plane j, word w -> b_buf[ct][c][j][w]), or nothing
    //: for block 0 of a prefetch hit; the previous block's last tile drains meanwhile.  Returns the trip.
    static uint32_t load_b_block(word_t b_buf[T::BT][T::C][T::P][T::KW], hls::stream<word_t> &in, uint32_t nb,
                                 bool from_pf, const Shape &sh, Drain &dr, acc_t shadow[T::R][T::C],
                                 hls::stream<bus_t> &out) {
#pragma HLS INLINE
        const uint32_t trip = from_pf ? 0 : nb * sh.b_bits * sh.kw;
        ap_uint<32> bct = 0, bc = 0, bj = 0, bw = 0;
    load_b:
        for (uint32_t it = 0; it < trip; ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096
            b_buf[bct][bc][bj][bw] = in.read();
            if (bw == sh.kw - 1) {
                bw = 0;
                if (bj == sh.b_bits - 1) {
                    bj = 0;
                    if (bc == T::C - 1) {
                        bc = 0;
                        ++bct;
                    } else {
                        ++bc;
                    }
                } else {
                    ++bj;
                }
            } else {
                ++bw;
            }
            drain_beat(dr, shadow, out);
        }
        return trip;
    }

    //: One step of every PE (r, c): word sw of A plane si of row r against word sw of B plane sj of column
    //: c of column tile ct, from the prefetch buffer (block 0 of a hit) or b_buf; padding columns get 0.
    static void array_step(acc_t acc[T::R][T::C], const word_t a_buf[2][T::R][T::P][T::KW], ap_uint<1> cur,
                           const word_t b_buf[T::BT][T::C][T::P][T::KW],
                           const word_t pf[T::BT][T::C][T::P][T::KW], bool from_pf, uint32_t ct,
                           const bool col_ok[T::C], ap_uint<32> si, ap_uint<32> sj, ap_uint<32> sw,
                           const Shape &sh) {
#pragma HLS INLINE
        // the top plane of a signed operand weighs -2^(bits-1): subtract when exactly one is
        const bool negate = (sh.a_signed && si == sh.a_bits - 1) != (sh.b_signed && sj == sh.b_bits - 1);
        const typename T::shift_t shift = si + sj;
        for (unsigned r = 0; r < T::R; ++r) {
#pragma HLS UNROLL
            const word_t aw = a_buf[cur][r][si][sw];
            for (unsigned c = 0; c < T::C; ++c) {
#pragma HLS UNROLL
                const word_t bb = from_pf ? pf[ct][c][sj][sw] : b_buf[ct][c][sj][sw];
                const word_t bw = col_ok[c] ? bb : word_t(0);
                pe_step<Cfg>(acc[r][c], aw, bw, shift, negate);
            }
        }
    }

    //: One column tile ct of the block (nb columns) against A tile `cur` (rows rows).  Its step loop also
    //: carries the next A tile's load (`ld`) and the previous tile's drain, one word and one beat per
    //: iteration, and runs until both the steps and that drain are done: the drain must end inside it,
    //: since shadow is overwritten after the loop.  Then this tile's sums go to shadow to drain beside
    //: the next loop.  Returns the trip count.
    static uint32_t column_tile(uint32_t ct, uint32_t nb, uint32_t rows, ap_uint<1> cur, bool from_pf,
                                const Shape &sh, word_t a_buf[2][T::R][T::P][T::KW],
                                const word_t b_buf[T::BT][T::C][T::P][T::KW],
                                const word_t pf[T::BT][T::C][T::P][T::KW], acc_t acc[T::R][T::C],
                                acc_t shadow[T::R][T::C], ALoad &ld, Drain &dr, hls::stream<word_t> &in,
                                hls::stream<bus_t> &out) {
#pragma HLS INLINE
        bool col_ok[T::C];
#pragma HLS ARRAY_PARTITION variable = col_ok complete
        for (unsigned c = 0; c < T::C; ++c) {
#pragma HLS UNROLL
            col_ok[c] = ct * T::C + c < nb;  // padding columns compute 0
        }
        for (unsigned r = 0; r < T::R; ++r) {
#pragma HLS UNROLL
            for (unsigned c = 0; c < T::C; ++c) {
#pragma HLS UNROLL
                acc[r][c] = 0;
            }
        }
        const uint32_t trip = sh.steps > dr.left ? sh.steps : uint32_t(dr.left);
        ap_uint<32> si = 0, sj = 0, sw = 0;  // A plane, B plane, word: the step order of golden's bit planes
    steps_loop:
        for (uint32_t it = 0; it < trip; ++it) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096
#pragma HLS DEPENDENCE variable = a_buf inter false
#pragma HLS DEPENDENCE variable = a_buf intra false
            if (it < sh.steps) {
                array_step(acc, a_buf, cur, b_buf, pf, from_pf, ct, col_ok, si, sj, sw, sh);
                if (sw == sh.kw - 1) {
                    sw = 0;
                    if (sj == sh.b_bits - 1) {
                        sj = 0;
                        ++si;
                    } else {
                        ++sj;
                    }
                } else {
                    ++sw;
                }
            }
            load_a_word(ld, a_buf, in, sh.kw, sh.a_bits, sh.tail_mask);
            drain_beat(dr, shadow, out);
        }
        for (unsigned r = 0; r < T::R; ++r) {
#pragma HLS UNROLL
            for (unsigned c = 0; c < T::C; ++c) {
#pragma HLS UNROLL
                shadow[r][c] = acc[r][c];
            }
        }
        dr.left = ap_uint<32>(rows) * T::BPR;
        dr.r = 0;
        dr.q = 0;
        return trip;
    }

    //: Send whatever is left in shadow (the call's last tile); returns the trip count.
    static uint32_t drain_rest(Drain &dr, acc_t shadow[T::R][T::C], hls::stream<bus_t> &out) {
#pragma HLS INLINE
        const uint32_t trip = uint32_t(dr.left);
    drain_last:
        while (dr.left != 0) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096
            drain_beat(dr, shadow, out);
        }
        return trip;
    }

    static void run(hls::stream<word_t> &in, hls::stream<bus_t> &out, uint32_t m, uint32_t n, uint32_t k,
                    uint32_t a_bits, uint32_t b_bits, uint32_t flags, bool b_hit,
                    const word_t pf[T::BT][T::C][T::P][T::KW], hls::stream<typename T::count_t> &count) {
#pragma HLS INLINE off
        word_t b_buf[T::BT][T::C][T::P][T::KW];
#pragma HLS ARRAY_PARTITION variable = b_buf complete dim = 2
        word_t a_buf[2][T::R][T::P][T::KW];
#pragma HLS ARRAY_PARTITION variable = a_buf complete dim = 1
#pragma HLS ARRAY_PARTITION variable = a_buf complete dim = 2
        acc_t acc[T::R][T::C];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 0
        acc_t shadow[T::R][T::C];
#pragma HLS ARRAY_PARTITION variable = shadow complete dim = 0

        Shape sh;
        sh.kw = (k + T::D - 1) / T::D;
        sh.a_bits = a_bits;
        sh.b_bits = b_bits;
        sh.steps = a_bits * b_bits * sh.kw;
        sh.a_signed = (flags >> Cfg::flag_a_signed_bit) & 1;
        sh.b_signed = (flags >> Cfg::flag_b_signed_bit) & 1;
        const uint32_t k_tail = k % T::D;
        sh.tail_mask = k_tail == 0 ? word_t(~word_t(0)) : word_t((word_t(1) << k_tail) - 1);
        const uint32_t tiles = (m + T::R - 1) / T::R;
        const uint32_t rows0 = m < T::R ? m : T::R;

        Drain dr;
        dr.left = 0;
        dr.r = 0;
        dr.q = 0;
        ALoad ld;
        ap_uint<64> iters = 0;
        ap_uint<32> g = 0;  // A tiles computed so far in this call: tile g uses half g mod 2

    blocks:
        for (uint32_t n0 = 0; n0 < n; n0 += T::BB) {
            const uint32_t nb = n - n0 < T::BB ? n - n0 : T::BB;
            const uint32_t col_tiles = (nb + T::C - 1) / T::C;
            const bool from_pf = b_hit && n0 == 0;  // block 0 of a hit: prefetched, not streamed

            // 1. The B block (busy_counts: b_words, draining the previous block's last tile meanwhile).
            iters += load_b_block(b_buf, in, nb, from_pf, sh, dr, shadow, out);
            // 2. A tile 0 into half 0 (a later block's came in with the previous block's last tile, so its
            //    loop runs 0 times here).
            start_load(ld, n0 == 0 ? rows0 : 0, a_bits, sh.kw, 0);
            iters += finish_a_load(ld, a_buf, in, sh, dr, shadow, out);

            // 3. Every A tile against every column tile of the block.
        tiles_loop:
            for (uint32_t t = 0; t < tiles; ++t) {
                const uint32_t m0 = t * T::R;
                const uint32_t rows = m - m0 < T::R ? m - m0 : T::R;
                const ap_uint<1> cur = g & 1;
                const ap_uint<1> nxt = cur ^ 1;
                // the next tile of this block, or after the last one the next block's tile 0, loads into
                // the other half while this one computes
                const uint32_t next_rows = t + 1 < tiles ? (m - m0 - rows < T::R ? m - m0 - rows : T::R)
                                           : n - n0 > T::BB ? rows0 : 0;
                start_load(ld, next_rows, a_bits, sh.kw, nxt);
            col_tiles_loop:
                for (uint32_t ct = 0; ct < col_tiles; ++ct) {
                    // busy_counts: max(steps, pending drain) per column tile
                    iters += column_tile(ct, nb, rows, cur, from_pf, sh, a_buf, b_buf, pf, acc, shadow, ld, dr, in,
                                         out);
                }
                ++g;
                // the next A tile must be complete before it is computed on (busy_counts: `pending`)
                iters += finish_a_load(ld, a_buf, in, sh, dr, shadow, out);
            }
        }

        // 4. The last tile's results.
        iters += drain_rest(dr, shadow, out);
        count.write(iters);
    }
};

}  // namespace cpt

#endif  // CPT_COMPUTE_H
