// cpt-hw HLS kernel, convolution engine (interface 4, generated with conv_engine = true): conv_top.
//
//   conv_top  op 0 (a GEMM call) goes to gemm_top unchanged.  A conv call (op 1..3) is checked
//             (cpt_conv_check.h; a refused call returns without a bus transaction) and run as GEMM passes:
//             one for the forward and the weight gradient, one per stride phase (s^2) for the input
//             gradient.  Each pass is a DATAFLOW region
//   run_pass  ConvRead::run -> (D-bit words) -> Compute::run -> (bus beats) -> write_pass
//             in which the load stage forms the operands on chip (cpt_conv_read.h) and Compute is
//             today's, unchanged: the pass's M, N, K give exactly the steps of a GEMM of that shape.
//
// A conv call also consumes a GEMM call's B prefetch hint (the next call, whatever it is, does): conv_top
// calls gemm_top with M = 0, which refuses without touching memory and clears the hint.  The weight
// gradient's own prefetch hint (next_a, next_b) is checked like an operand but not acted on: the kernel
// reads every chunk in its own call (results never depend on a prefetch).
//
// `cycles` of a conv call: the sum over its passes of the largest stage busy count (Compute's loop trips,
// the load stage's beats plus formed words, the store stage's beats and one per code sum), plus the beats
// of zero rows written for phases without taps; cpt_hw/hw/hls_cycles.py (conv_cycles) predicts it exactly.
#ifndef CPT_CONV_H
#define CPT_CONV_H

#include "cpt_conv_read.h"
#include "cpt_gemm.h"

namespace cpt {

//: C row of the pass's A row r (ConvPass: forward and weight gradient in order, input gradient phases s apart).
inline i64 result_row(const ConvPass &ps, i64 r) {
    const i64 img = r / (ps.gh * ps.gw), gy = r / ps.gw % ps.gh, gx = r % ps.gw;
    return img * ps.crow_img + (ps.ra * gy + ps.rb) * ps.crow_w + ps.ca * gx + ps.cb;
}

//: One code sum (SUMS) into its int32 of the sums area: read-modify-write of the beat that holds it, so the
//: bytes around the area (the beat is shared with them at its end) are untouched.  One beat written.
template <class Cfg>
void write_sum(typename Types<Cfg>::bus_t *mem, ap_uint<64> sums_at, const ConvSum &s) {
    typedef Types<Cfg> T;
    const ap_uint<64> byte = sums_at + ap_uint<64>(4 * s.idx);
    const unsigned lane = unsigned(byte % T::BUS_BYTES) / 4;
    typename T::bus_t beat = mem[byte / T::BUS_BYTES];
    beat(32 * lane + 31, 32 * lane) = ap_int<32>(s.v);
    mem[byte / T::BUS_BYTES] = beat;
}

//: The store stage of a pass: result-tile rows as Compute drains them (block, A tile, column tile, row),
//: each to its C row; int32 elements, or int16 with C16 (two drained beats' elements per written beat).
//: SUMS: block 0's row sums beside the rows' first column tile, each block's column sums after it (the
//: order ConvRead::run sends them); n_col_sums = kh kw, sums of one column per block.
template <class Cfg>
void write_pass(typename Types<Cfg>::bus_t *mem, ap_uint<64> c, const ConvPass ps, i64 n_cols, bool c16,
                bool with_sums, ap_uint<64> sums_at, i64 n_col_sums, hls::stream<typename Types<Cfg>::bus_t> &in,
                hls::stream<ConvSum> &sums, hls::stream<typename Types<Cfg>::count_t> &count) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    const unsigned eb = c16 ? 16 : 32;                              // bits of one C element in DDR
    const unsigned out_beats = T::C * eb / T::AXI;                  // beats of one written tile row
    const i64 stride = cdiv(n_cols, T::C) * out_beats;              // beats of one C row
    ap_uint<64> beats = 0;
    typename T::res_t row[T::C];
    for (i64 n0 = 0; n0 < ps.n; n0 += T::BB) {
        const i64 col_tiles = cdiv(imin(ps.n - n0, T::BB), T::C);
        for (i64 m0 = 0; m0 < ps.m; m0 += T::R) {
            for (i64 ct = 0; ct < col_tiles; ++ct) {
                for (i64 r = m0; r < imin(ps.m, m0 + T::R); ++r) {
                    for (unsigned q = 0; q < T::BPR; ++q) {  // the drained int32 elements of the row
                        const typename T::bus_t beat = in.read();
                        for (unsigned e = 0; e < T::EPB; ++e) row[q * T::EPB + e] = beat(32 * e + 31, 32 * e);
                    }
                    const ap_uint<64> base = c / T::BUS_BYTES + ap_uint<64>(result_row(ps, r) * stride) +
                                             ap_uint<64>((n0 / T::C + ct) * out_beats);
                    for (unsigned q = 0; q < out_beats; ++q) {
#pragma HLS PIPELINE II = 1
                        typename T::bus_t beat = 0;
                        for (unsigned e = 0; e < T::AXI / eb; ++e)
                            beat(eb * e + eb - 1, eb * e) = row[q * (T::AXI / eb) + e](eb - 1, 0);
                        mem[base + q] = beat;
                    }
                    beats += out_beats;
                    if (with_sums && n0 == 0 && ct == 0) {
                        write_sum<Cfg>(mem, sums_at, sums.read());
                        ++beats;
                    }
                }
            }
        }
        if (with_sums) {
            for (i64 q = 0; q < imin(ps.n - n0, T::BB) * n_col_sums; ++q) write_sum<Cfg>(mem, sums_at, sums.read());
            beats += imin(ps.n - n0, T::BB) * n_col_sums;
        }
    }
    count.write(beats);
}

//: Zero C rows for every pixel of a phase that no tap reaches (1 x 1 stride 2's odd phases): no array steps.
template <class Cfg>
ap_uint<64> write_zero_rows(typename Types<Cfg>::bus_t *mem, ap_uint<64> c, const ConvPass &ps, i64 n_cols, bool c16) {
    typedef Types<Cfg> T;
    const i64 row_beats = cdiv(n_cols, T::C) * T::C * (c16 ? 16 : 32) / T::AXI;
    for (i64 r = 0; r < ps.m; ++r) {
        const ap_uint<64> base = c / T::BUS_BYTES + ap_uint<64>(result_row(ps, r) * row_beats);
        for (i64 q = 0; q < row_beats; ++q) {
#pragma HLS PIPELINE II = 1
            mem[base + q] = 0;
        }
    }
    return ap_uint<64>(ps.m * row_beats);
}

//: One pass as a DATAFLOW region; busy = its largest stage count.
template <class Cfg>
void run_pass(typename Types<Cfg>::bus_t *mem, const ConvGeom<Cfg> g, ap_uint<64> a, ap_uint<64> b, ap_uint<64> c,
              ap_uint<64> sums_at, const ConvPass ps, ap_uint<64> &busy) {
#pragma HLS INLINE off
#pragma HLS DATAFLOW
    typedef Types<Cfg> T;
    // never read: a conv pass has no prefetched B block (Compute's b_hit is false)
    static const typename T::word_t no_pf[T::BT][T::C][T::P][T::KW] = {};
    hls::stream<typename T::word_t> words("cpt_conv_words");
#pragma HLS STREAM variable = words depth = 2 * Cfg::burst_beats
    hls::stream<typename T::bus_t> results("cpt_conv_results");
#pragma HLS STREAM variable = results depth = T::R * T::BPR
    // SUMS: the load stage forms a tile at most ahead of the store stage's rows; a block's column sums wait
    // for that block's results
    hls::stream<ConvSum> sums("cpt_conv_sums");
#pragma HLS STREAM variable = sums depth = 2 * T::R + T::BB * Cfg::max_kernel * Cfg::max_kernel
    hls::stream<typename T::count_t> n_rd("cpt_conv_n_rd"), n_cmp("cpt_conv_n_cmp"), n_wr("cpt_conv_n_wr");
    ConvRead<Cfg>::run(mem, g, a, b, ps, words, sums, n_rd);
    Compute<Cfg>::run(words, results, uint32_t(ps.m), uint32_t(ps.n), uint32_t(ps.k), uint32_t(g.a_bits),
                      uint32_t(g.b_bits), g.flags, false, no_pf, n_cmp);
    write_pass<Cfg>(mem, c, ps, g.n_cols(), g.flag(Cfg::flag_c16_bit), g.flag(Cfg::flag_sums_bit), sums_at,
                    g.kh * g.kw, results, sums, n_wr);
    combine_counts<Cfg>(n_rd, n_cmp, n_wr, busy);
}

//: The forward pass: A rows (img, ho, wo) of the band, im2col of X over kh x kw taps; K = kh kw Cp(C).
template <class Cfg>
ConvPass forward_pass(const ConvGeom<Cfg> &g, ap_uint<64> b) {
    ConvPass ps;
    ps.op = OP_FWD;
    ps.m = g.m();
    ps.n = g.k;
    ps.k = g.kh * g.kw * channel_pitch<Cfg::dot_width>(g.c);
    ps.b = b;
    ps.gh = g.rows();
    ps.gw = g.wo();
    ps.ya = g.s;
    ps.yb = g.band0 * g.s - g.p;
    ps.xa = g.s;
    ps.xb = -g.p;
    ps.ni = g.kh;
    ps.npix = g.kw;
    ps.crow_img = ps.gh * ps.gw;  // results in A-row order
    ps.ra = 1;
    ps.rb = 0;
    ps.crow_w = ps.gw;
    ps.ca = 1;
    ps.cb = 0;
    return ps;
}

//: The weight gradient's pass: A rows (i, j, c), K = the chunk's positions, N = K output channels.
template <class Cfg>
ConvPass wgrad_pass(const ConvGeom<Cfg> &g) {
    ConvPass ps = forward_pass<Cfg>(g, 0);
    ps.op = OP_WGRAD;
    ps.m = g.m();
    ps.k = g.reduction();
    ps.gh = ps.m;
    ps.gw = 1;
    ps.crow_img = ps.m;
    ps.crow_w = 1;
    return ps;
}

//: Input-gradient phase ph = ry s + rx: the dX pixels h = ry, w = rx (mod s) of the band; segment ii of
//: pixel (h, w) is E row (h + p - ti_first) / s + ii from pixel (w + p - tj_first) / s, nj pixels.
//: b: the phase's rotated weights (the phases before it stored first).
template <class Cfg>
ConvPass dgrad_pass(const ConvGeom<Cfg> &g, i64 ph, ap_uint<64> b) {
    const Taps ti = g.row_taps(ph), tj = g.col_taps(ph);
    const i64 ry = ph / g.s, rx = ph % g.s, end = g.band0 + g.rows();
    const i64 h0 = g.band0 + floor_mod(ry - g.band0, g.s);
    ConvPass ps;
    ps.op = OP_DGRAD;
    ps.gh = h0 < end ? cdiv(end - h0, g.s) : 0;
    ps.gw = rx < g.w ? cdiv(g.w - rx, g.s) : 0;
    ps.m = g.batch * ps.gh * ps.gw;
    ps.n = g.c;
    ps.k = ti.count * tj.count * channel_pitch<Cfg::dot_width>(g.k);
    ps.b = b;
    ps.ya = 1;
    ps.yb = ti.count ? floor_div(h0 + g.p - ti.first, g.s) : 0;
    ps.xa = 1;
    ps.xb = tj.count ? floor_div(rx + g.p - tj.first, g.s) : 0;
    ps.ni = ti.count;
    ps.npix = tj.count;
    ps.crow_img = g.rows() * g.w;
    ps.ra = g.s;
    ps.rb = h0 - g.band0;
    ps.crow_w = g.w;
    ps.ca = g.s;
    ps.cb = rx;
    return ps;
}

//: Run a legal conv call; returns its busy count.
template <class Cfg>
ap_uint<64> run_conv(typename Types<Cfg>::bus_t *mem, const typename Cfg::inputs &x, const ConvGeom<Cfg> &g) {
    typedef Types<Cfg> T;
    const ap_uint<64> a = x.a, b = x.b, c = x.c, sums_at = x.sums;
    ap_uint<64> total = 0, busy = 0;
    if (g.op != OP_DGRAD) {
        run_pass<Cfg>(mem, g, a, b, c, sums_at, g.op == OP_FWD ? forward_pass<Cfg>(g, b) : wgrad_pass<Cfg>(g), busy);
        return busy;
    }
    ap_uint<64> wb = b;  // the phases' rotated weights, one after another
    for (i64 ph = 0; ph < g.s * g.s; ++ph) {
        const ConvPass ps = dgrad_pass<Cfg>(g, ph, wb);
        wb += ap_uint<64>(g.c * g.b_bits * cdiv(ps.k, T::D) * T::WORD_BYTES);
        if (ps.m == 0) continue;
        if (ps.k == 0) {
            total += write_zero_rows<Cfg>(mem, c, ps, g.c, g.flag(Cfg::flag_c16_bit));
            continue;
        }
        run_pass<Cfg>(mem, g, a, b, c, sums_at, ps, busy);
        total += busy;
    }
    return total;
}

//: One call of the interface-4 kernel on the inputs `x` (cpt_config::inputs): a GEMM call (op 0) or a
//: conv call.  Outputs: status, cycles (busy count, 0 when refused), id.
template <class Cfg>
void conv_top(typename Types<Cfg>::bus_t *mem, const typename Cfg::inputs &x, typename Cfg::outputs &out) {
#pragma HLS INLINE
    ConvGeom<Cfg> g;
    g.decode(x);
    typename Cfg::inputs gemm = x;
    if (g.op != OP_GEMM) gemm.m = 0;  // refused by gemm_top untouched: only its prefetch hint is consumed
    gemm_top<Cfg>(mem, gemm, out);
    if (g.op == OP_GEMM) return;
    const ap_uint<32> st = check_conv_call<Cfg>(x, g);
    out.status = st.to_uint();
    out.cycles = st == 0 ? run_conv<Cfg>(mem, x, g).to_uint64() : 0;
    out.id = Cfg::id_word;
}

}  // namespace cpt

#endif  // CPT_CONV_H
