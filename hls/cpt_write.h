// cpt-hw HLS kernel: the store stage.  Writes result-tile rows (cols int32 elements, BPR bus beats each)
// to C in the order the compute stage drains them: block, A tile, column tile, row.
//
// C is int32, row-major with row stride round_up(N, cols) (docs/ddr-layout.md), so every tile row is
// whole bus beats at a beat-aligned address; the padding columns past N are written with the zeros the
// compute stage produced for them.
#ifndef CPT_WRITE_H
#define CPT_WRITE_H

#include "cpt_util.h"

namespace cpt {

template <class Cfg>
void write_results(typename Types<Cfg>::bus_t *mem, typename Types<Cfg>::addr_t c, uint32_t m, uint32_t n,
                   hls::stream<typename Types<Cfg>::bus_t> &in, hls::stream<typename Types<Cfg>::count_t> &count) {
#pragma HLS INLINE off
    typedef Types<Cfg> T;
    const ap_uint<64> c_beat = c / T::BUS_BYTES;
    const ap_uint<64> stride = ap_uint<64>((n + T::C - 1) / T::C) * T::BPR;  // beats per C row
    ap_uint<64> beats = 0;
blocks:
    for (uint32_t n0 = 0; n0 < n; n0 += T::BB) {
        const uint32_t nb = n - n0 < T::BB ? n - n0 : T::BB;
        const uint32_t col_tiles = (nb + T::C - 1) / T::C;
    tiles:
        for (uint32_t m0 = 0; m0 < m; m0 += T::R) {
            const uint32_t rows = m - m0 < T::R ? m - m0 : T::R;
        col_tiles_loop:
            for (uint32_t ct = 0; ct < col_tiles; ++ct) {
            tile_rows:
                for (uint32_t r = 0; r < rows; ++r) {
                    const ap_uint<64> base = c_beat + (m0 + r) * stride + ap_uint<64>(n0 / T::C + ct) * T::BPR;
                row_beats:
                    for (unsigned q = 0; q < T::BPR; ++q) {
#pragma HLS PIPELINE II = 1
                        mem[base + q] = in.read();
                    }
                    beats += T::BPR;
                }
            }
        }
    }
    count.write(beats);
}

}  // namespace cpt

#endif  // CPT_WRITE_H
