// cpt-hw HLS kernel, convolution engine (interface 4): a conv call's geometry and its status word.
//
// A faithful port of cpt_hw/hw/conv_calls.py (ConvArgs, conv_status, operand_ranges) and of the buffer
// rules it takes from cpt_hw/hw/conv_model.py (channel_pitch, row_words, input_rows_read, line_buffer_bits,
// wgrad_x_bits): every error bit comes from the register values alone, before any memory access, so a
// refused call makes no bus transaction.  Only present in a kernel generated with conv_engine = true.
// Arithmetic is 64-bit signed (the products of 16-bit fields and 4096 images cannot overflow it), and
// divisions that may see a negative numerator floor, as Python's // does.
#ifndef CPT_CONV_CHECK_H
#define CPT_CONV_CHECK_H

#include "cpt_check.h"

namespace cpt {

typedef long long i64;

//: floor(a / b) for b > 0 (C++ truncates towards zero).
inline i64 floor_div(i64 a, i64 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
//: a mod b in [0, b) for b > 0.
inline i64 floor_mod(i64 a, i64 b) { return a - floor_div(a, b) * b; }
inline i64 cdiv(i64 a, i64 b) { return (a + b - 1) / b; }
inline i64 imin(i64 a, i64 b) { return a < b ? a : b; }
inline i64 imax(i64 a, i64 b) { return a > b ? a : b; }

enum ConvOp { OP_GEMM = 0, OP_FWD = 1, OP_DGRAD = 2, OP_WGRAD = 3 };

//: Cp: bits one pixel's channels take in a row-plane (conv_model.channel_pitch): the next power of two
//: below D, whole D-bit words from D up, so a pixel never straddles a word.
template <unsigned D>
i64 channel_pitch(i64 channels) {
    if (channels >= i64(D)) return cdiv(channels, D) * D;
    i64 p = 1;
    while (p < channels) p <<= 1;
    return p;
}

//: D-bit words of one row-plane of `width` pixels (conv_model.row_words).
template <unsigned D>
i64 row_words(i64 width, i64 channels) { return cdiv(width * channel_pitch<D>(channels), D); }

//: Distinct input rows in [0, size) that output rows [out0, out1) reach (conv_model.input_rows_read): the
//: union of the windows [o s - p, o s - p + k), which start in increasing order.
inline i64 input_rows_read(i64 size, i64 k, i64 s, i64 p, i64 out0, i64 out1) {
    i64 count = 0, covered = 0;  // rows below `covered` are counted already
    for (i64 o = out0; o < out1; ++o) {
        const i64 lo = imax(imax(o * s - p, covered), 0), hi = imin(o * s - p + k, size);
        if (hi > lo) count += hi - lo;
        covered = imax(covered, hi);
    }
    return count;
}

//: Kernel taps of one stride phase r of the input gradient (conv_calls.ConvArgs.phases): taps i in
//: size-1 .. 0 (the 180-degree rotation) with i = r + p (mod s).  first: the largest; count: how many.
struct Taps {
    i64 first, count;
};
inline Taps phase_taps(i64 r, i64 size, i64 s, i64 p) {
    Taps t;
    t.first = -1;
    t.count = 0;
    for (i64 i = size - 1; i >= 0; --i) {
        if (floor_mod(i - r - p, s) == 0) {
            if (t.count == 0) t.first = i;
            ++t.count;
        }
    }
    return t;
}

//: The decoded `conv`, `batch`, `channels`, `size`, `band` registers and what follows from them
//: (conv_calls.ConvArgs; forward terms throughout: input (batch, c, h, w), weights (k, c, kh, kw)).
template <class Cfg>
struct ConvGeom {
    static const unsigned D = Cfg::dot_width;
    i64 op, kh, kw, s, p, reserved, batch, c, k, h, w, band0, band_rows, a_bits, b_bits;
    uint32_t flags;

    void decode(const typename Cfg::inputs &x) {
        const uint32_t v = x.conv;
        op = v & 3;
        kh = v >> 4 & 0xF;
        kw = v >> 8 & 0xF;
        s = v >> 12 & 3;
        p = v >> 14 & 3;
        reserved = v & ~uint32_t(0xFFF3);  // bits 3:2 and 31:16 have no meaning
        batch = x.batch;
        c = x.channels & 0xFFFF;
        k = x.channels >> 16;
        h = x.size & 0xFFFF;
        w = x.size >> 16;
        band0 = x.band & 0xFFFF;
        band_rows = x.band >> 16;
        a_bits = x.a_bits;
        b_bits = x.b_bits;
        flags = x.flags;
    }
    bool flag(unsigned bit) const { return (flags >> bit) & 1; }
    i64 ho() const { return floor_div(h + 2 * p - kh, s) + 1; }
    i64 wo() const { return floor_div(w + 2 * p - kw, s) + 1; }
    //: Result rows of an image: output rows (forward, weight gradient), dX rows (input gradient).
    i64 rows_per_image() const { return op == OP_DGRAD ? h : ho(); }
    i64 rows() const { return band_rows ? band_rows : rows_per_image() - band0; }
    i64 n_cols() const { return op == OP_DGRAD ? c : k; }
    i64 m() const {
        if (op == OP_WGRAD) return kh * kw * c;
        return batch * rows() * (op == OP_DGRAD ? w : wo());
    }
    //: The square kernel side of conv_model's rules (conv_calls.model_kernel).
    i64 model_kernel() const {
        const i64 side = imax(kh, kw);
        return imin(h, w) + 2 * p >= side ? side : imin(kh, kw);
    }
    //: Phase ph = ry s + rx of the input gradient: its row and column taps.
    Taps row_taps(i64 ph) const { return phase_taps(ph / s, kh, s, p); }
    Taps col_taps(i64 ph) const { return phase_taps(ph % s, kw, s, p); }
    //: The longest single-pass reduction (what k_max bounds).
    i64 reduction() const {
        if (op == OP_FWD) return kh * kw * channel_pitch<D>(c);
        if (op == OP_WGRAD) return batch * rows() * wo();
        i64 most = 0;
        for (i64 ph = 0; ph < s * s; ++ph) most = imax(most, row_taps(ph).count * col_taps(ph).count);
        return most * channel_pitch<D>(k);
    }
    i64 k_real() const {
        if (op == OP_FWD) return kh * kw * c;
        if (op == OP_DGRAD) return kh * kw * k;
        return batch * rows() * wo();
    }
    //: D-bit words of one weight column (one plane); the input gradient's phases one after another.
    i64 weight_words() const {
        if (op == OP_FWD) return cdiv(kh * kw * channel_pitch<D>(c), D);
        i64 words = 0;
        for (i64 ph = 0; ph < s * s; ++ph) words += cdiv(row_taps(ph).count * col_taps(ph).count * channel_pitch<D>(k), D);
        return words;
    }
    //: [lo, hi) rows of the tensor `a` points at that the band reaches, clipped to the image (lo = hi: none).
    void a_rows(i64 &lo, i64 &hi) const {
        const i64 r0 = band0, r1 = band0 + rows();
        const i64 limit = op == OP_DGRAD ? ho() : h;
        lo = limit;
        hi = -1;
        for (i64 o = r0; o < r1; ++o) {
            for (i64 i = 0; i < kh; ++i) {
                i64 r;
                if (op == OP_DGRAD) {
                    if (floor_mod(o + p - i, s) != 0) continue;
                    r = floor_div(o + p - i, s);
                } else {
                    r = o * s - p + i;
                }
                if (r < 0 || r >= limit) continue;
                lo = imin(lo, r);
                hi = imax(hi, r + 1);
            }
        }
        if (hi <= lo) lo = hi = 0;
    }
    //: (address, bytes) of rows [lo, hi) of every image of a row-plane tensor (docs: "DMA window and halos").
    void tensor_range(ap_uint<64> addr, i64 bits, i64 channels, i64 height, i64 width, i64 lo, i64 hi,
                      ap_uint<64> &at, ap_uint<64> &size) const {
        at = addr;
        size = 0;
        if (hi <= lo) return;
        const i64 row = bits * row_words<D>(width, channels) * (D / 8);
        at = addr + ap_uint<64>(lo * row);
        size = ap_uint<64>((batch - 1) * height * row + (hi - lo) * row);
    }
    void a_range(ap_uint<64> addr, ap_uint<64> &at, ap_uint<64> &size) const {
        i64 lo, hi;
        a_rows(lo, hi);
        if (op == OP_DGRAD) tensor_range(addr, a_bits, k, ho(), wo(), lo, hi, at, size);
        else tensor_range(addr, a_bits, c, h, w, lo, hi, at, size);
    }
    void b_range(ap_uint<64> addr, ap_uint<64> &at, ap_uint<64> &size) const {
        if (op == OP_WGRAD) {  // the E chunk: the band's error rows
            tensor_range(addr, b_bits, k, ho(), wo(), band0, band0 + rows(), at, size);
            return;
        }
        at = addr;
        size = ap_uint<64>(n_cols() * b_bits * weight_words() * (D / 8));
    }
    i64 result_bytes() const { return flag(Cfg::flag_c16_bit) ? 2 : 4; }
    i64 c_bytes() const { return m() * cdiv(n_cols(), Cfg::cols) * Cfg::cols * result_bytes(); }
    i64 sums_count() const { return m() + kh * kw * k; }
};

//: The line buffer / X chunk limits and the C16 width rule (conv_calls._buffer_or_width_err).
template <class Cfg>
bool conv_buffer_or_width_err(const ConvGeom<Cfg> &g) {
    const unsigned D = Cfg::dot_width;
    const i64 tb_bits = i64(Cfg::tensor_buffer_words) * D;
    // conv_model's ConvShape of the call: a square kernel of side model_kernel()
    const i64 kk = g.model_kernel();
    const i64 out_h = floor_div(g.h + 2 * g.p - kk, g.s) + 1, out_w = floor_div(g.w + 2 * g.p - kk, g.s) + 1;
    if (g.op == OP_WGRAD) {
        const i64 rows_in = input_rows_read(g.h, kk, g.s, g.p, g.band0, g.band0 + g.rows());
        if (g.batch * g.c * g.a_bits * (cdiv(rows_in * g.w, D) * D) > tb_bits / 2) return true;
    } else {
        const i64 tile_w = g.op == OP_FWD ? out_w : g.w;
        const i64 span = imin(g.op == OP_FWD ? out_h : g.h, 2 * cdiv(Cfg::rows, tile_w) + 1);
        i64 bits;
        if (g.op == OP_FWD)
            bits = input_rows_read(g.h, kk, g.s, g.p, 0, span) * g.a_bits * row_words<D>(g.w, g.c) * D;
        else
            bits = (span / g.s + kk) * g.a_bits * row_words<D>(out_w, g.k) * D;
        if (bits > tb_bits) return true;
    }
    const i64 worst = g.k_real() * ((i64(1) << g.a_bits) - 1) * ((i64(1) << g.b_bits) - 1);
    return g.flag(Cfg::flag_c16_bit) && worst >= (i64(1) << 15);
}

//: [x, x + size) inside [base, limit); an empty range is always inside (conv_calls._inside).
inline bool conv_inside(ap_uint<64> x, ap_uint<64> size, ap_uint<64> base, ap_uint<64> limit) {
    return size == 0 || in_window(x, size, base, limit);
}

//: The status word of a conv call (op 1..3): 0 when it runs (conv_calls.conv_status, bit for bit).
template <class Cfg>
ap_uint<32> check_conv_call(const typename Cfg::inputs &x, const ConvGeom<Cfg> &g) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    bool geometry_err = g.reserved != 0 || g.kh < 1 || g.kh > i64(Cfg::max_kernel) || g.kw < 1 ||
                        g.kw > i64(Cfg::max_kernel) || g.s < 1 || g.s > 2 || g.p > 1;
    bool dim_err = imin(imin(g.batch, g.c), imin(imin(g.k, g.h), g.w)) == 0 || g.batch > i64(Cfg::max_dim);
    const bool bits_err = g.a_bits < 1 || g.a_bits > i64(T::P) || g.b_bits < 1 || g.b_bits > i64(T::P);
    if (!geometry_err && !dim_err) {
        if (g.ho() < 1 || g.wo() < 1) {
            geometry_err = true;  // the kernel does not fit the padded input
        } else if (g.band0 >= g.rows_per_image() || g.band0 + g.rows() > g.rows_per_image()) {
            geometry_err = true;  // a band outside the image
        } else {
            dim_err = g.n_cols() > i64(Cfg::max_dim) || g.m() > i64(Cfg::max_dim) || g.reduction() > i64(Cfg::k_max);
            if (!dim_err && !bits_err) geometry_err = conv_buffer_or_width_err<Cfg>(g);
        }
    }
    const bool sums = g.flag(Cfg::flag_sums_bit), pf = g.flag(Cfg::flag_prefetch_b_bit);
    if (g.op == OP_DGRAD && sums) geometry_err = true;  // the input gradient's rank-one term is the host's
    const bool prefetch = pf && g.op == OP_WGRAD;
    const typename T::addr_t a = x.a, b = x.b, c = x.c, sums_at = x.sums, next_a = x.next_a, next_b = x.next_b;
    const bool align_err = a % T::WORD_BYTES != 0 || b % T::WORD_BYTES != 0 || c % T::WORD_BYTES != 0 ||
                           (sums && sums_at % T::WORD_BYTES != 0) ||
                           (prefetch && (next_a % T::WORD_BYTES != 0 || next_b % T::WORD_BYTES != 0));
    // the conv prefetch hint serves weight-gradient chains only
    const bool flags_err = (g.flags & ~Cfg::conv_flags_mask) != 0 || (pf && g.op != OP_WGRAD);
    bool window_err = false;
    if (!geometry_err && !dim_err && !bits_err) {
        const ap_uint<64> base = x.win_base, limit = x.win_limit;
        ap_uint<64> at, size;
        g.a_range(a, at, size);
        window_err |= !conv_inside(at, size, base, limit);
        g.b_range(b, at, size);
        window_err |= !conv_inside(at, size, base, limit);
        window_err |= !conv_inside(c, ap_uint<64>(g.c_bytes()), base, limit);
        if (sums) window_err |= !conv_inside(sums_at, ap_uint<64>(4 * g.sums_count()), base, limit);
        if (prefetch) {
            g.a_range(next_a, at, size);
            window_err |= !conv_inside(at, size, base, limit);
            g.b_range(next_b, at, size);
            window_err |= !conv_inside(at, size, base, limit);
        }
    }
    ap_uint<32> status = 0;
    status[Cfg::err_conv_bit] = geometry_err;
    status[Cfg::err_dim_bit] = dim_err;
    status[Cfg::err_bits_bit] = bits_err;
    status[Cfg::err_align_bit] = align_err;
    status[Cfg::err_window_bit] = window_err;
    status[Cfg::err_flags_bit] = flags_err;
    return status;
}

}  // namespace cpt

#endif  // CPT_CONV_CHECK_H
