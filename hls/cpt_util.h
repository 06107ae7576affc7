// cpt-hw HLS kernel: compile-time helpers and the types every stage shares.
//
// Hand-written and parameterised by a config struct (see build/<cfg>/hls/cpt_config.h, generated from
// cpt_hw.hw.config.HardwareConfig); nothing here repeats a number of the config.  C++11, so that Vivado HLS
// 2019/2020 and Vitis HLS compile it alike.
#ifndef CPT_UTIL_H
#define CPT_UTIL_H

#include <ap_int.h>
#include <hls_stream.h>
#include <stdint.h>

namespace cpt {

//: Bits needed to hold the unsigned value x (at least 1).
constexpr unsigned bits_for(unsigned long long x) { return x < 2 ? 1 : 1 + bits_for(x >> 1); }

//: ceil(a / b) for compile-time constants.
constexpr unsigned long long div_up(unsigned long long a, unsigned long long b) { return (a + b - 1) / b; }

constexpr unsigned long long max_of(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

//: Types and derived constants of one accelerator instance.  Cfg is the generated config struct.
template <class Cfg>
struct Types {
    static const unsigned D = Cfg::dot_width;            // bits per PE word
    static const unsigned R = Cfg::rows;                 // PE rows
    static const unsigned C = Cfg::cols;                 // PE columns
    static const unsigned P = Cfg::operand_bits;         // largest operand precision (planes)
    static const unsigned KW = Cfg::k_words;             // plane-row depth in D-bit words
    static const unsigned BB = Cfg::b_block_cols;        // columns of B on chip (multiple of C)
    static const unsigned BT = BB / C;                   // column tiles per B block
    static const unsigned AXI = Cfg::axi_data_width;     // bus beat width in bits
    static const unsigned WB = D / AXI;                  // bus beats per D-bit word (D % AXI == 0)
    static const unsigned BUS_BYTES = AXI / 8;
    static const unsigned WORD_BYTES = D / 8;
    static const unsigned RES_BITS = Cfg::result_bits;   // bits of one C element in DDR (32)
    static const unsigned EPB = AXI / RES_BITS;          // C elements per bus beat
    static const unsigned BPR = C * RES_BITS / AXI;      // bus beats per result-tile row
    static const unsigned SHIFT_W = bits_for(2 * (P - 1));        // width of a plane-pair shift i + j
    static const unsigned PC_W = bits_for(D);                     // width of a D-bit popcount
    static const unsigned TERM_W = PC_W + 2 * (P - 1) + 1;        // signed shifted popcount

    typedef ap_uint<D> word_t;                    // one D-bit slice of a bit-plane row
    typedef ap_uint<AXI> bus_t;                   // one AXI beat
    typedef ap_uint<Cfg::axi_addr_width> addr_t;  // a byte address on the bus
    typedef ap_int<Cfg::acc_width> acc_t;         // PE accumulator (wraps modulo 2^acc_width)
    typedef ap_int<RES_BITS> res_t;               // one C element as written to DDR
    typedef ap_uint<SHIFT_W> shift_t;
    typedef ap_uint<64> count_t;                  // pipelined-loop iteration counts
};

}  // namespace cpt

#endif  // CPT_UTIL_H
