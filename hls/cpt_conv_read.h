// cpt-hw HLS kernel, convolution engine: the load stage of a conv pass, which forms the GEMM operands on chip.
//
// A conv call is run as one GEMM pass (forward, weight gradient) or one per stride phase (input gradient),
// each through the unchanged Compute stage (cpt_compute.h).  This process replaces read_operands for such a
// pass: it emits the very word stream Compute consumes -- per block of b_block_cols columns the B block,
// then the A tiles (a later block's tile 0 before its B block) -- but forms the words instead of reading
// them (docs/architecture.md, "Convolution-native accelerator"):
//
//  * forward / input gradient: A rows are im2col rows of a row-plane tensor (X, or E for the input
//    gradient), formed from a line buffer of kh row slots (each an input row with all its planes) that
//    loads a row the first time a pixel needs it: the pass walks its pixels in row order, so every row a
//    tap reaches is read once per B block; padding (rows and pixels outside the tensor) is made on chip
//    as zeros and never read.  B is the weights (input gradient: the phase's rotated weights), read as
//    today.  Polyphase input gradient: pass (ry, rx) takes the dX pixels h = ry, w = rx (mod s) and only
//    the taps i = h + p (mod s), so its rows use consecutive E rows and pixels.
//  * weight gradient: the X chunk (the input rows the band reaches, all images) is corner-turned once per
//    call into channel rows of position bits in the tensor buffer, and A row (tap i, tap j, channel c) is
//    shifted/masked out of it; B is the E chunk, corner-turned block by block into a staging copy of the
//    B block (the design writes it straight into the B banks; staging it here keeps Compute unchanged).
//
// All tensor addresses follow docs/ddr-layout.md, "Interface 4" (row-plane (n, h, p) at
// ((n H + h) bits + p) row_words words).  Bits move in Cp-bit pixel units (Cp | D or D | Cp), so a unit
// never straddles a word.
#ifndef CPT_CONV_READ_H
#define CPT_CONV_READ_H

#include "cpt_conv_check.h"
#include "cpt_popcount.h"
#include "cpt_read.h"

namespace cpt {

//: One GEMM pass of a conv call: its sizes and how its A rows map to tensor pixels and C rows.
//: A row r is pixel (img, gy, gx) of a gh x gw grid per image: img = r / (gh gw), gy = r / gw mod gh,
//: gx = r mod gw (weight gradient: gh = m, gw = 1, rows are (tap i, tap j, channel)).
struct ConvPass {
    i64 op, m, n, k;      // the pass's GEMM: M rows, N columns, reduction K (bits of one A plane row)
    ap_uint<64> b;        // byte address of the pass's weights (forward, input gradient)
    i64 gh, gw;           // pixel grid of one image
    // forward / input gradient former: segment ii of row (gy, gx) is npix pixels of source row
    // ya gy + yb + ii starting at pixel xa gx + xb
    i64 ya, yb, xa, xb, ni, npix;
    // C row of A row r: img * crow_img + (ra gy + rb) crow_w + ca gx + cb
    i64 crow_img, ra, rb, crow_w, ca, cb;
};

//: One code sum of SUMS on its way to the store stage: its int32 index in the sums area and its value.
struct ConvSum {
    i64 idx, v;
};

//: The tensor a pass expands: byte address, rows, pixels, channel pitch, words per row-plane, planes.
struct ConvSrc {
    ap_uint<64> addr;
    i64 rows, width, cp, rw, bits;
};

template <class Cfg>
struct ConvRead {
    typedef Types<Cfg> T;
    typedef typename T::word_t word_t;
    static const unsigned TBW = Cfg::tensor_buffer_words;  // D-bit words of the tensor buffer
    static const unsigned MK = Cfg::max_kernel;

    //: One D-bit word at byte address `at` (word-aligned), assembled from WB beats.
    static word_t read_word(const typename T::bus_t *mem, ap_uint<64> at, ap_uint<64> &beats) {
#pragma HLS INLINE
        word_t word = 0;
        const ap_uint<64> beat0 = at / T::BUS_BYTES;
        for (unsigned q = 0; q < T::WB; ++q) {
#pragma HLS PIPELINE II = 1
            word(T::AXI * q + T::AXI - 1, T::AXI * q) = mem[beat0 + q];
        }
        beats += T::WB;
        return word;
    }

    //: Bit `bit` of a flat word array.
    static bool get_bit(const word_t *buf, i64 bit) { return buf[bit / T::D][unsigned(bit % T::D)]; }
    static void set_bit(word_t *buf, i64 bit, bool v) { buf[bit / T::D][unsigned(bit % T::D)] = v; }

    //: The weight of plane p of a `bits`-plane code: 2^p, negated for a signed code's top plane.
    static i64 plane_weight(i64 p, i64 bits, bool is_signed) {
        const i64 w = i64(1) << p;
        return is_signed && p == bits - 1 ? -w : w;
    }

    //: Code sum of one formed row from its planes' popcounts (SUMS): what the former adds per word written.
    static i64 row_code_sum(const i64 *plane_ones, i64 bits, bool is_signed) {
        i64 sum = 0;
        for (i64 p = 0; p < bits; ++p) sum += plane_weight(p, bits, is_signed) * plane_ones[p];
        return sum;
    }

    // ------------------------------------------------------------------ forward / input gradient

    //: The line buffer: MK slots of one source row each (all planes); a slot holds row y of image n.
    struct Ring {
        word_t lb[TBW];
        i64 tag_n[MK], tag_y[MK];
        void reset() {
            for (unsigned q = 0; q < MK; ++q) tag_n[q] = tag_y[q] = -1;
        }
    };

    //: Make row y of image n resident (slot y mod slots), reading it if it is not; returns its first word.
    static i64 ring_row(Ring &ring, const typename T::bus_t *mem, const ConvSrc &src, i64 slots, i64 n, i64 y,
                        ap_uint<64> &beats) {
        const i64 slot = y % slots, words = src.bits * src.rw, base = slot * words;
        if (ring.tag_n[slot] != n || ring.tag_y[slot] != y) {
            const ap_uint<64> at = src.addr + ap_uint<64>((n * src.rows + y) * words * T::WORD_BYTES);
            for (i64 i = 0; i < words; ++i) ring.lb[base + i] = read_word(mem, at + ap_uint<64>(i * T::WORD_BYTES), beats);
            ring.tag_n[slot] = n;
            ring.tag_y[slot] = y;
        }
        return base;
    }

    //: Copy the Cp bits of one pixel, one min(Cp, D)-bit unit at a time (units never straddle words).
    static void copy_pixel(const word_t *from, i64 from_bit, word_t *to, i64 to_bit, i64 cp) {
        const i64 unit = cp < i64(T::D) ? cp : i64(T::D);
        for (i64 u = 0; u < cp; u += unit) {
            const i64 fb = from_bit + u, tb = to_bit + u;
            const unsigned fo = unsigned(fb % T::D), to_off = unsigned(tb % T::D);
            to[tb / T::D](to_off + unit - 1, to_off) = from[fb / T::D](fo + unit - 1, fo);
        }
    }

    //: Form and emit A rows [m0, m0 + rows) of an im2col pass: per row and plane, kw_words words.
    static void form_im2col(const typename T::bus_t *mem, const ConvSrc &src, const ConvPass &ps, i64 slots,
                            Ring &ring, i64 m0, i64 rows, i64 a_bits, bool a_signed, bool sum_rows,
                            hls::stream<word_t> &out, hls::stream<ConvSum> &sums, ap_uint<64> &beats,
                            ap_uint<64> &iters) {
        const i64 kw_words = cdiv(ps.k, T::D);
        word_t arow[T::KW];
        i64 base[MK], ones[T::P];
        for (i64 r = m0; r < m0 + rows; ++r) {
            const i64 img = r / (ps.gh * ps.gw), gy = r / ps.gw % ps.gh, gx = r % ps.gw;
            const i64 y0 = ps.ya * gy + ps.yb, x0 = ps.xa * gx + ps.xb;
            for (i64 ii = 0; ii < ps.ni; ++ii) {  // the kernel rows' source rows, resident before any plane
                const i64 y = y0 + ii;
                base[ii] = y < 0 || y >= src.rows ? -1 : ring_row(ring, mem, src, slots, img, y, beats);
            }
            for (i64 p = 0; p < a_bits; ++p) {
                for (i64 wd = 0; wd < kw_words; ++wd) arow[wd] = 0;
                for (i64 ii = 0; ii < ps.ni; ++ii) {
                    if (base[ii] < 0) continue;  // a padding row: zeros
                    const word_t *plane = &ring.lb[base[ii] + p * src.rw];
                    for (i64 jj = 0; jj < ps.npix; ++jj) {
                        const i64 x = x0 + jj;
                        if (x < 0 || x >= src.width) continue;  // a padding pixel: zeros
                        copy_pixel(plane, x * src.cp, arow, (ii * ps.npix + jj) * src.cp, src.cp);
                    }
                }
                ones[p] = 0;
                for (i64 wd = 0; wd < kw_words; ++wd) {
#pragma HLS PIPELINE II = 1
                    out.write(arow[wd]);
                    ones[p] += popcount<T::D>(arow[wd]);
                }
                iters += kw_words;
            }
            if (sum_rows) sums.write(ConvSum{r, row_code_sum(ones, a_bits, a_signed)});
        }
    }

    // ------------------------------------------------------------------ weight gradient

    //: Geometry of the weight gradient's X chunk in the tensor buffer: channel row (img, c, plane) holds
    //: the stored input rows' bits, row-major (stored row index ci(y) times W plus the pixel).
    struct Chunk {
        i64 lo, hi;       // input rows [lo, hi) the band reaches
        bool sparse;      // kh < s (1 x 1 stride 2): only every s-th row is reached and stored
        i64 len;          // words of one channel row
        i64 stored(i64 y) const { return sparse ? (y - lo) / 2 : y - lo; }
    };

    //: Read the X chunk once, corner-turned: bit x Cp + c of row-plane (img, y, p) -> channel row (img, c, p).
    static void load_chunk(const typename T::bus_t *mem, const ConvGeom<Cfg> &g, ap_uint<64> a, const Chunk &ch,
                           word_t *xct, ap_uint<64> &beats, ap_uint<64> &iters) {
        const i64 cp = channel_pitch<T::D>(g.c), rw = row_words<T::D>(g.w, g.c);
        for (i64 img = 0; img < g.batch; ++img) {
            for (i64 y = ch.lo; y < ch.hi; y += ch.sparse ? 2 : 1) {
                for (i64 p = 0; p < g.a_bits; ++p) {
                    const ap_uint<64> at = a + ap_uint<64>(((img * g.h + y) * g.a_bits + p) * rw * T::WORD_BYTES);
                    for (i64 wd = 0; wd < rw; ++wd) {
                        const word_t word = read_word(mem, at + ap_uint<64>(wd * T::WORD_BYTES), beats);
                        ++iters;
                        for (unsigned b = 0; b < T::D; ++b) {
                            const i64 bit = wd * T::D + b, x = bit / cp, c = bit % cp;
                            if (x >= g.w || c >= g.c) continue;  // channel and row padding
                            set_bit(&xct[((img * g.c + c) * g.a_bits + p) * ch.len], ch.stored(y) * g.w + x, word[b]);
                        }
                    }
                }
            }
        }
    }

    //: Form and emit A rows [m0, m0 + rows): row (i, j, c), plane p, bit t = position (img, r, x) of the
    //: chunk: X[img, c, (band0 + r) s - p + i, x s - p + j], zero outside the image.
    static void form_shift_mask(const ConvGeom<Cfg> &g, const Chunk &ch, const word_t *xct, i64 m0, i64 rows,
                                bool sum_rows, hls::stream<word_t> &out, hls::stream<ConvSum> &sums,
                                ap_uint<64> &iters) {
        const i64 wo = g.wo(), band = g.rows(), positions = g.batch * band * wo;
        const i64 kw_words = cdiv(positions, T::D);
        i64 ones[T::P];
        for (i64 r = m0; r < m0 + rows; ++r) {
            const i64 c = r % g.c, tap = r / g.c, j = tap % g.kw, i = tap / g.kw;
            for (i64 p = 0; p < g.a_bits; ++p) {
                ones[p] = 0;
                for (i64 wd = 0; wd < kw_words; ++wd) {
#pragma HLS PIPELINE II = 1
                    word_t word = 0;
                    for (unsigned b = 0; b < T::D; ++b) {
                        const i64 t = wd * T::D + b;
                        if (t >= positions) break;
                        const i64 img = t / (band * wo), x = t % wo, y = (g.band0 + t / wo % band) * g.s - g.p + i;
                        const i64 xx = x * g.s - g.p + j;
                        if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) continue;
                        word[b] = get_bit(&xct[((img * g.c + c) * g.a_bits + p) * ch.len], ch.stored(y) * g.w + xx);
                    }
                    out.write(word);
                    ones[p] += popcount<T::D>(word);
                }
                iters += kw_words;
            }
            if (sum_rows) sums.write(ConvSum{r, row_code_sum(ones, g.a_bits, g.flag(Cfg::flag_a_signed_bit))});
        }
    }

    //: The E chunk's columns [n0, n0 + nb), corner-turned and emitted as a B block: bit t of word t / D of
    //: column kk, plane q is E[img, n0 + kk, band0 + r, x] for position t = (img, r, x).
    static void emit_e_block(const typename T::bus_t *mem, const ConvGeom<Cfg> &g, ap_uint<64> b, i64 n0, i64 nb,
                             word_t stage[T::BB][T::P][T::KW], bool col_sums, i64 *col_sum,
                             hls::stream<word_t> &out, ap_uint<64> &beats, ap_uint<64> &iters) {
        const i64 wo = g.wo(), band = g.rows(), kw_words = cdiv(g.batch * band * wo, T::D);
        const i64 cp = channel_pitch<T::D>(g.k), rw = row_words<T::D>(wo, g.k);
        for (i64 kk = 0; kk < nb; ++kk)
            for (i64 q = 0; q < g.b_bits; ++q)
                for (i64 wd = 0; wd < kw_words; ++wd) stage[kk][q][wd] = 0;
        for (i64 img = 0; img < g.batch; ++img) {
            for (i64 r = 0; r < band; ++r) {
                for (i64 q = 0; q < g.b_bits; ++q) {
                    const ap_uint<64> at =
                        b + ap_uint<64>(((img * g.ho() + g.band0 + r) * g.b_bits + q) * rw * T::WORD_BYTES);
                    for (i64 wd = 0; wd < rw; ++wd) {
                        const word_t word = read_word(mem, at + ap_uint<64>(wd * T::WORD_BYTES), beats);
                        ++iters;
                        for (unsigned bt = 0; bt < T::D; ++bt) {
                            const i64 bit = wd * T::D + bt, x = bit / cp, kk = bit % cp - n0;
                            if (x >= wo || kk < 0 || kk >= nb) continue;
                            set_bit(stage[kk][q], (img * band + r) * wo + x, word[bt]);
                        }
                    }
                }
            }
        }
        for (i64 kk = 0; kk < nb; ++kk)
            for (i64 q = 0; q < g.b_bits; ++q)
                for (i64 wd = 0; wd < kw_words; ++wd) {
#pragma HLS PIPELINE II = 1
                    out.write(stage[kk][q][wd]);
                }
        iters += nb * g.b_bits * kw_words;
        if (!col_sums) return;
        // SUMS: tap (i, j)'s sum of the block's E codes over the positions where the tap is real, from the
        // staged corner turn (the design has the array compute it as kh kw 1-bit tap-mask A rows).
        const bool e_signed = g.flag(Cfg::flag_b_signed_bit);
        i64 ones[T::P];
        for (i64 tap = 0; tap < g.kh * g.kw; ++tap) {
            const i64 i = tap / g.kw, j = tap % g.kw;
            for (i64 kk = 0; kk < nb; ++kk) {
                for (i64 q = 0; q < g.b_bits; ++q) {
                    ones[q] = 0;
                    for (i64 t = 0; t < g.batch * band * wo; ++t) {
                        const i64 y = (g.band0 + t / wo % band) * g.s - g.p + i, x = t % wo * g.s - g.p + j;
                        if (y >= 0 && y < g.h && x >= 0 && x < g.w) ones[q] += get_bit(stage[kk][q], t);
                    }
                }
                col_sum[kk * MK * MK + tap] = row_code_sum(ones, g.b_bits, e_signed);
            }
        }
    }

    //: The forward pass's B block, read as read_run does (same beats, same words), adding each column's
    //: code sum per tap (SUMS): bits t Cp + c, c < C, of every plane of column kk.
    static void read_weight_block(const typename T::bus_t *mem, const ConvGeom<Cfg> &g, ap_uint<64> at, i64 nb,
                                  i64 col_words, i64 *col_sum, hls::stream<word_t> &out, ap_uint<64> &beats) {
        const i64 cp = channel_pitch<T::D>(g.c), taps = g.kh * g.kw;
        const bool w_signed = g.flag(Cfg::flag_b_signed_bit);
        for (i64 kk = 0; kk < nb; ++kk) {
            for (i64 t = 0; t < taps; ++t) col_sum[kk * MK * MK + t] = 0;
            for (i64 q = 0; q < g.b_bits; ++q) {
                for (i64 wd = 0; wd < col_words; ++wd) {
                    const word_t word = read_word(mem, at + ap_uint<64>(((kk * g.b_bits + q) * col_words + wd) *
                                                                        T::WORD_BYTES), beats);
                    out.write(word);
                    for (unsigned bt = 0; bt < T::D; ++bt) {
                        const i64 bit = wd * T::D + bt, t = bit / cp;
                        if (t < taps && bit % cp < g.c && word[bt])
                            col_sum[kk * MK * MK + t] += plane_weight(q, g.b_bits, w_signed);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ the process

    //: The load process of a conv pass: read_operands' order, with every A tile (and the weight gradient's
    //: B blocks) formed.  Busy count: bus beats read plus words formed.  With SUMS it also sends the store
    //: stage the code sums in the order that stage writes them: block 0's row sums as its A tiles are
    //: formed (a re-formed tile 0 adds none), then after each block's tiles that block's column sums
    //: (index k kh kw + tap forward, tap K + k weight gradient).
    static void run(const typename T::bus_t *mem, const ConvGeom<Cfg> g, ap_uint<64> a, ap_uint<64> b,
                    const ConvPass ps, hls::stream<word_t> &out, hls::stream<ConvSum> &sums,
                    hls::stream<typename T::count_t> &count) {
#pragma HLS INLINE off
        static Ring ring;           // the tensor buffer as line buffer (forward, input gradient) ...
        static word_t stage[T::BB][T::P][T::KW];
        static i64 col_sum[T::BB * MK * MK];  // SUMS: the block's column sums per tap
        word_t *xct = ring.lb;      // ... or as the weight gradient's X chunk
        ap_uint<64> beats = 0, iters = 0;
        ConvSrc src;
        const bool dgrad = g.op == OP_DGRAD, with_sums = g.flag(Cfg::flag_sums_bit);
        const bool a_signed = g.flag(Cfg::flag_a_signed_bit);
        src.addr = a;
        src.rows = dgrad ? g.ho() : g.h;
        src.width = dgrad ? g.wo() : g.w;
        src.cp = channel_pitch<T::D>(dgrad ? g.k : g.c);
        src.rw = row_words<T::D>(src.width, dgrad ? g.k : g.c);
        src.bits = g.a_bits;
        const i64 slots = g.kh;     // rows one output row reaches: at most kh, consecutive
        Chunk ch;
        if (g.op == OP_WGRAD) {
            g.a_rows(ch.lo, ch.hi);
            ch.sparse = g.kh < g.s;
            ch.len = cdiv((ch.sparse ? cdiv(ch.hi - ch.lo, 2) : ch.hi - ch.lo) * g.w, T::D);
            load_chunk(mem, g, a, ch, xct, beats, iters);
        }
        const i64 b_col_words = g.b_bits * cdiv(ps.k, T::D), taps = g.kh * g.kw;
        const i64 rows0 = imin(ps.m, T::R);
        ring.reset();               // the ring persists between calls, DDR may not
    blocks:
        for (i64 n0 = 0; n0 < ps.n; n0 += T::BB) {
            const i64 nb = imin(ps.n - n0, T::BB);
            const bool first = n0 == 0;
            if (g.op == OP_WGRAD) {
                emit_e_block(mem, g, b, n0, nb, stage, with_sums, col_sum, out, beats, iters);
            } else if (with_sums) {
                read_weight_block(mem, g, ps.b + ap_uint<64>(n0 * b_col_words * T::WORD_BYTES), nb,
                                  cdiv(ps.k, T::D), col_sum, out, beats);
            } else {
                read_run<Cfg>(mem, ps.b / T::BUS_BYTES + ap_uint<64>(n0 * b_col_words * T::WB),
                              ap_uint<64>(nb * b_col_words), out, beats);
            }
            for (i64 m0 = first ? 0 : T::R; m0 < ps.m; m0 += T::R) {
                const i64 rows = imin(ps.m - m0, T::R);
                if (g.op == OP_WGRAD) form_shift_mask(g, ch, xct, m0, rows, with_sums && first, out, sums, iters);
                else form_im2col(mem, src, ps, slots, ring, m0, rows, g.a_bits, a_signed, with_sums && first, out,
                                 sums, beats, iters);
            }
            if (with_sums) {
                for (i64 kk = 0; kk < nb; ++kk)
                    for (i64 t = 0; t < taps; ++t)
                        sums.write(ConvSum{g.op == OP_WGRAD ? ps.m + t * g.k + n0 + kk : ps.m + (n0 + kk) * taps + t,
                                           col_sum[kk * MK * MK + t]});
            }
            if (ps.n - n0 > T::BB) {  // the next block's A tile 0, formed afresh
                ring.reset();
                if (g.op == OP_WGRAD) form_shift_mask(g, ch, xct, 0, rows0, false, out, sums, iters);
                else form_im2col(mem, src, ps, slots, ring, 0, rows0, g.a_bits, a_signed, false, out, sums, beats,
                                 iters);
            }
        }
        count.write(beats + iters);
    }
};

}  // namespace cpt

#endif  // CPT_CONV_READ_H
