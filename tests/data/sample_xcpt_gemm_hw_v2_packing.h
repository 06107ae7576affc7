// ==============================================================
// Vitis HLS - High-Level Synthesis from C, C++ and OpenCL v2023.2 (64-bit)
// Tool Version Limit: 2023.10
// Copyright 1986-2022 Xilinx, Inc. All Rights Reserved.
// Copyright 2022-2023 Advanced Micro Devices, Inc. All Rights Reserved.
// 
// ==============================================================
// control
// 0x00 : Control signals
//        bit 0  - ap_start (Read/Write/COH)
//        bit 1  - ap_done (Read/COR)
//        bit 2  - ap_idle (Read)
//        bit 3  - ap_ready (Read/COR)
//        bit 7  - auto_restart (Read/Write)
//        bit 9  - interrupt (Read)
//        others - reserved
// 0x04 : Global Interrupt Enable Register
//        bit 0  - Global Interrupt Enable (Read/Write)
//        others - reserved
// 0x08 : IP Interrupt Enable Register (Read/Write)
//        bit 0 - enable ap_done interrupt (Read/Write)
//        bit 1 - enable ap_ready interrupt (Read/Write)
//        others - reserved
// 0x0c : IP Interrupt Status Register (Read/TOW)
//        bit 0 - ap_done (Read/TOW)
//        bit 1 - ap_ready (Read/TOW)
//        others - reserved
// 0x10 : Data signal of a
//        bit 31~0 - a[31:0] (Read/Write)
// 0x14 : Data signal of a
//        bit 31~0 - a[63:32] (Read/Write)
// 0x18 : reserved
// 0x1c : Data signal of b
//        bit 31~0 - b[31:0] (Read/Write)
// 0x20 : Data signal of b
//        bit 31~0 - b[63:32] (Read/Write)
// 0x24 : reserved
// 0x28 : Data signal of c
//        bit 31~0 - c[31:0] (Read/Write)
// 0x2c : Data signal of c
//        bit 31~0 - c[63:32] (Read/Write)
// 0x30 : reserved
// 0x34 : Data signal of m
//        bit 31~0 - m[31:0] (Read/Write)
// 0x38 : reserved
// 0x3c : Data signal of n
//        bit 31~0 - n[31:0] (Read/Write)
// 0x40 : reserved
// 0x44 : Data signal of k
//        bit 31~0 - k[31:0] (Read/Write)
// 0x48 : reserved
// 0x4c : Data signal of a_bits
//        bit 31~0 - a_bits[31:0] (Read/Write)
// 0x50 : reserved
// 0x54 : Data signal of b_bits
//        bit 31~0 - b_bits[31:0] (Read/Write)
// 0x58 : reserved
// 0x5c : Data signal of flags
//        bit 31~0 - flags[31:0] (Read/Write)
// 0x60 : reserved
// 0x64 : Data signal of win_base
//        bit 31~0 - win_base[31:0] (Read/Write)
// 0x68 : Data signal of win_base
//        bit 31~0 - win_base[63:32] (Read/Write)
// 0x6c : reserved
// 0x70 : Data signal of win_limit
//        bit 31~0 - win_limit[31:0] (Read/Write)
// 0x74 : Data signal of win_limit
//        bit 31~0 - win_limit[63:32] (Read/Write)
// 0x78 : reserved
// 0x7c : Data signal of status
//        bit 31~0 - status[31:0] (Read)
// 0x80 : Control signal of status
//        bit 0  - status_ap_vld (Read/COR)
//        others - reserved
// 0x84 : Data signal of cycles
//        bit 31~0 - cycles[31:0] (Read)
// 0x88 : Data signal of cycles
//        bit 31~0 - cycles[63:32] (Read)
// 0x8c : Control signal of cycles
//        bit 0  - cycles_ap_vld (Read/COR)
//        others - reserved
// 0x90 : Data signal of id
//        bit 31~0 - id[31:0] (Read)
// 0x94 : Control signal of id
//        bit 0  - id_ap_vld (Read/COR)
//        others - reserved
// 0x98 : Data signal of next_b
//        bit 31~0 - next_b[31:0] (Read/Write)
// 0x9c : Data signal of next_b
//        bit 31~0 - next_b[63:32] (Read/Write)
// 0xa0 : reserved
// 0xa4 : Data signal of next_n
//        bit 31~0 - next_n[31:0] (Read/Write)
// 0xa8 : reserved
// 0xac : Data signal of next_k
//        bit 31~0 - next_k[31:0] (Read/Write)
// 0xb0 : reserved
// 0xb4 : Data signal of next_b_bits
//        bit 31~0 - next_b_bits[31:0] (Read/Write)
// 0xb8 : reserved
// (SC = Self Clear, COR = Clear on Read, TOW = Toggle on Write, COH = Clear on Handshake)

#define XCPT_GEMM_CONTROL_ADDR_AP_CTRL        0x00
#define XCPT_GEMM_CONTROL_ADDR_GIE            0x04
#define XCPT_GEMM_CONTROL_ADDR_IER            0x08
#define XCPT_GEMM_CONTROL_ADDR_ISR            0x0c
#define XCPT_GEMM_CONTROL_ADDR_A_DATA         0x10
#define XCPT_GEMM_CONTROL_BITS_A_DATA         64
#define XCPT_GEMM_CONTROL_ADDR_B_DATA         0x1c
#define XCPT_GEMM_CONTROL_BITS_B_DATA         64
#define XCPT_GEMM_CONTROL_ADDR_C_DATA         0x28
#define XCPT_GEMM_CONTROL_BITS_C_DATA         64
#define XCPT_GEMM_CONTROL_ADDR_M_DATA         0x34
#define XCPT_GEMM_CONTROL_BITS_M_DATA         32
#define XCPT_GEMM_CONTROL_ADDR_N_DATA         0x3c
#define XCPT_GEMM_CONTROL_BITS_N_DATA         32
#define XCPT_GEMM_CONTROL_ADDR_K_DATA         0x44
#define XCPT_GEMM_CONTROL_BITS_K_DATA         32
#define XCPT_GEMM_CONTROL_ADDR_A_BITS_DATA    0x4c
#define XCPT_GEMM_CONTROL_BITS_A_BITS_DATA    32
#define XCPT_GEMM_CONTROL_ADDR_B_BITS_DATA    0x54
#define XCPT_GEMM_CONTROL_BITS_B_BITS_DATA    32
#define XCPT_GEMM_CONTROL_ADDR_FLAGS_DATA     0x5c
#define XCPT_GEMM_CONTROL_BITS_FLAGS_DATA     32
#define XCPT_GEMM_CONTROL_ADDR_WIN_BASE_DATA  0x64
#define XCPT_GEMM_CONTROL_BITS_WIN_BASE_DATA  64
#define XCPT_GEMM_CONTROL_ADDR_WIN_LIMIT_DATA 0x70
#define XCPT_GEMM_CONTROL_BITS_WIN_LIMIT_DATA 64
#define XCPT_GEMM_CONTROL_ADDR_STATUS_DATA    0x7c
#define XCPT_GEMM_CONTROL_BITS_STATUS_DATA    32
#define XCPT_GEMM_CONTROL_ADDR_STATUS_CTRL    0x80
#define XCPT_GEMM_CONTROL_ADDR_CYCLES_DATA    0x84
#define XCPT_GEMM_CONTROL_BITS_CYCLES_DATA    64
#define XCPT_GEMM_CONTROL_ADDR_CYCLES_CTRL    0x8c
#define XCPT_GEMM_CONTROL_ADDR_ID_DATA        0x90
#define XCPT_GEMM_CONTROL_BITS_ID_DATA        32
#define XCPT_GEMM_CONTROL_ADDR_ID_CTRL        0x94
#define XCPT_GEMM_CONTROL_ADDR_NEXT_B_DATA      0x98
#define XCPT_GEMM_CONTROL_BITS_NEXT_B_DATA      64
#define XCPT_GEMM_CONTROL_ADDR_NEXT_N_DATA      0xa4
#define XCPT_GEMM_CONTROL_BITS_NEXT_N_DATA      32
#define XCPT_GEMM_CONTROL_ADDR_NEXT_K_DATA      0xac
#define XCPT_GEMM_CONTROL_BITS_NEXT_K_DATA      32
#define XCPT_GEMM_CONTROL_ADDR_NEXT_B_BITS_DATA 0xb4
#define XCPT_GEMM_CONTROL_BITS_NEXT_B_BITS_DATA 32

