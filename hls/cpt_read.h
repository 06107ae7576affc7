// cpt-hw HLS kernel: the load stage.  Streams the packed operands from DDR as D-bit words, in exactly
// the order the compute stage consumes them: for every block of b_block_cols columns, the B block, then
// every A tile of `rows` rows -- except that a later block's first A tile comes before its B block (the
// compute stage loads it while it still computes the previous block's last tile, as the Verilog twin's
// reader does).  On a prefetch hit block 0's B is already on chip and is not read.
//
// Both are contiguous in the DDR layout (docs/ddr-layout.md: A row-major by row, plane, word; B stored
// transposed), so each is one sequential run of bus beats that the tool turns into AXI bursts.
#ifndef CPT_READ_H
#define CPT_READ_H

#include "cpt_util.h"

namespace cpt {

//: Read `words` D-bit words starting at bus beat `beat0`; beats are little-endian within a word.
template <class Cfg>
void read_run(const typename Types<Cfg>::bus_t *mem, ap_uint<64> beat0, ap_uint<64> words,
              hls::stream<typename Types<Cfg>::word_t> &out, ap_uint<64> &beats) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    typename T::word_t word = 0;
    ap_uint<bits_for(T::WB)> q = 0;
    const ap_uint<64> n = words * T::WB;
read_beats:
    for (ap_uint<64> i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096
        const typename T::bus_t beat = mem[beat0 + i];
        word(T::AXI * q + T::AXI - 1, T::AXI * q) = beat;
        if (q == T::WB - 1) {
            out.write(word);
            q = 0;
        } else {
            ++q;
        }
    }
    beats += n;
}

//: The load process of the dataflow region.  a, b: byte addresses.
template <class Cfg>
void read_operands(const typename Types<Cfg>::bus_t *mem, typename Types<Cfg>::addr_t a,
                   typename Types<Cfg>::addr_t b, uint32_t m, uint32_t n, uint32_t k, uint32_t a_bits,
                   uint32_t b_bits, bool b_hit, ap_uint<64> prefetch_beats,
                   hls::stream<typename Types<Cfg>::word_t> &out, hls::stream<typename Types<Cfg>::count_t> &count) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    const uint32_t kw = (k + T::D - 1) / T::D;  // D-bit words per plane row
    const ap_uint<64> a_beat = a / T::BUS_BYTES, b_beat = b / T::BUS_BYTES;
    const ap_uint<64> a_row_words = ap_uint<64>(a_bits) * kw;  // D-bit words of one packed A row
    const ap_uint<64> b_col_words = ap_uint<64>(b_bits) * kw;  // ... of one packed B column
    ap_uint<64> beats = prefetch_beats;  // the prefetch's beats share the port (read after the region)
    const uint32_t rows0 = m < T::R ? m : T::R;  // rows of A tile 0
blocks:
    for (uint32_t n0 = 0; n0 < n; n0 += T::BB) {
        const uint32_t nb = n - n0 < T::BB ? n - n0 : T::BB;
        if (n0 != 0 || !b_hit) read_run<Cfg>(mem, b_beat + n0 * b_col_words * T::WB, nb * b_col_words, out, beats);
        if (n0 == 0) read_run<Cfg>(mem, a_beat, rows0 * a_row_words, out, beats);
    tiles:
        for (uint32_t m0 = T::R; m0 < m; m0 += T::R) {
            const uint32_t rows = m - m0 < T::R ? m - m0 : T::R;
            read_run<Cfg>(mem, a_beat + m0 * a_row_words * T::WB, rows * a_row_words, out, beats);
        }
        if (n - n0 > T::BB) read_run<Cfg>(mem, a_beat, rows0 * a_row_words, out, beats);  // next block's A tile 0
    }
    count.write(beats);
}

//: The B prefetch: the first min(n, b_block_cols) columns of the B operand at byte address b, stored
//: as the compute stage's B buffer holds a block (column tile, column, plane, word).
template <class Cfg>
void read_prefetch(const typename Types<Cfg>::bus_t *mem, typename Types<Cfg>::addr_t b, uint32_t n, uint32_t k,
                   uint32_t b_bits, typename Types<Cfg>::word_t buf[Types<Cfg>::BT][Types<Cfg>::C][Types<Cfg>::P]
                                                                        [Types<Cfg>::KW]) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    const uint32_t kw = (k + T::D - 1) / T::D;
    const uint32_t cols = n < T::BB ? n : T::BB;
    const ap_uint<64> b_beat = b / T::BUS_BYTES;
    typename T::word_t word = 0;
    ap_uint<bits_for(T::WB)> q = 0;
    ap_uint<32> ct = 0, c = 0, j = 0, w = 0;
    const ap_uint<64> total = ap_uint<64>(cols) * b_bits * kw * T::WB;
prefetch_beats:
    for (ap_uint<64> i = 0; i < total; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096
        word(T::AXI * q + T::AXI - 1, T::AXI * q) = mem[b_beat + i];
        if (q != T::WB - 1) {
            ++q;
            continue;
        }
        q = 0;
        buf[ct][c][j][w] = word;
        if (w == kw - 1) {
            w = 0;
            if (j == b_bits - 1) {
                j = 0;
                if (c == T::C - 1) {
                    c = 0;
                    ++ct;
                } else {
                    ++c;
                }
            } else {
                ++j;
            }
        } else {
            ++w;
        }
    }
}

}  // namespace cpt

#endif  // CPT_READ_H
