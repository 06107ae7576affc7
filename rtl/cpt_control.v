// AXI4-Lite control slave of cpt_gemm: the ap_ctrl_hs handshake and the argument/result registers,
// behaving as the s_axi_control block Vivado HLS generates for the kernel (docs/registers.md).
//
// Register offsets and bit positions come from cpt_gemm_regmap.vh, which `cpt-hw generate` renders
// from cpt_hw.regmap; nothing here repeats them.
//   * CTRL: ap_start (set by a write of 1, cleared at ap_ready unless auto_restart), ap_done and
//     ap_ready (clear on read), ap_idle, auto_restart, interrupt (read only).
//   * GIE / IER / ISR: ISR bits are set by ap_done / ap_ready when enabled in IER and toggled by
//     writing 1; interrupt = GIE & (ISR != 0).
//   * inputs (a, b, c, m, n, k, a_bits, b_bits, flags, win_base, win_limit and the prefetch hint
//     next_b, next_n, next_k, next_b_bits): plain registers honouring
//     WSTRB; the core samples them when it takes ap_start.
//   * outputs (status, cycles, id): written at ap_done, each with an ap_vld bit that a read of its
//     control word clears; `id` reads the config's ID word at any time.
// Write channel: AW, then W, then B (one transaction at a time); read channel: AR, then R.

`default_nettype none

module cpt_control #(
    parameter integer AW = 64,                  // pointer / window width: config axi_addr_width
    parameter integer CTRL_AW = 8               // s_axi_control address bits (regmap addr_width)
) (
    input  wire               clk,
    input  wire               rst,

    input  wire               s_axi_awvalid,
    output wire               s_axi_awready,
    input  wire [CTRL_AW-1:0] s_axi_awaddr,
    input  wire               s_axi_wvalid,
    output wire               s_axi_wready,
    input  wire [31:0]        s_axi_wdata,
    input  wire [3:0]         s_axi_wstrb,
    output wire               s_axi_bvalid,
    input  wire               s_axi_bready,
    output wire [1:0]         s_axi_bresp,
    input  wire               s_axi_arvalid,
    output wire               s_axi_arready,
    input  wire [CTRL_AW-1:0] s_axi_araddr,
    output wire               s_axi_rvalid,
    input  wire               s_axi_rready,
    output reg  [31:0]        s_axi_rdata,
    output wire [1:0]         s_axi_rresp,
    output wire               interrupt,

    output wire               ap_start,         // level: a call is requested
    input  wire               ap_idle,          // the core is idle
    input  wire               ap_done,          // pulse: the call finished (results below valid)
    input  wire [31:0]        status_in,
    input  wire [63:0]        cycles_in,

    output wire [AW-1:0]      arg_a,
    output wire [AW-1:0]      arg_b,
    output wire [AW-1:0]      arg_c,
    output wire [31:0]        arg_m,
    output wire [31:0]        arg_n,
    output wire [31:0]        arg_k,
    output wire [31:0]        arg_a_bits,
    output wire [31:0]        arg_b_bits,
    output wire [31:0]        arg_flags,
    output wire [AW-1:0]      arg_win_base,
    output wire [AW-1:0]      arg_win_limit,
    output wire [AW-1:0]      arg_next_b,
    output wire [31:0]        arg_next_n,
    output wire [31:0]        arg_next_k,
    output wire [31:0]        arg_next_b_bits
);
    `include "cpt_gemm_regmap.vh"

    initial begin
        if (CTRL_AW != CTRL_ADDR_W) begin
            $display("%m: error: CTRL_AW = %0d, but the register map needs %0d address bits", CTRL_AW, CTRL_ADDR_W);
            $finish;
        end
        if (AW != 32 && AW != 64) begin
            $display("%m: error: AW = %0d must be 32 or 64", AW);
            $finish;
        end
    end

    // Does address `a` select the register at offset `off` (-1: no such register)?
    function hit(input [CTRL_AW-1:0] a, input integer off);
        hit = (off >= 0) && ({{(32-CTRL_AW){1'b0}}, a} == off[31:0]);
    endfunction

    // Byte-masked update of a 32-bit register.
    function [31:0] masked(input [31:0] old, input [31:0] data, input [3:0] strb);
        integer i;
        begin
            for (i = 0; i < 4; i = i + 1)
                masked[8*i +: 8] = strb[i] ? data[8*i +: 8] : old[8*i +: 8];
        end
    endfunction

    // ---------------------------------------------------------------- write channel
    localparam [1:0] WR_IDLE = 2'd0, WR_DATA = 2'd1, WR_RESP = 2'd2;
    reg [1:0] wstate;
    reg [CTRL_AW-1:0] waddr;
    assign s_axi_awready = (wstate == WR_IDLE);
    assign s_axi_wready = (wstate == WR_DATA);
    assign s_axi_bvalid = (wstate == WR_RESP);
    assign s_axi_bresp = 2'b00;
    wire w_hs = s_axi_wvalid && s_axi_wready;

    always @(posedge clk) begin
        if (rst) begin
            wstate <= WR_IDLE;
        end else begin
            case (wstate)
                WR_IDLE: if (s_axi_awvalid) wstate <= WR_DATA;
                WR_DATA: if (s_axi_wvalid) wstate <= WR_RESP;
                default: if (s_axi_bready) wstate <= WR_IDLE;
            endcase
        end
        // Registers are words: the byte offset within the word only matters through WSTRB.
        if (s_axi_awvalid && s_axi_awready) waddr <= {s_axi_awaddr[CTRL_AW-1:2], 2'b00};
    end

    // ---------------------------------------------------------------- read channel
    reg rstate;                                 // 0: idle (ARREADY), 1: data (RVALID)
    assign s_axi_arready = !rstate;
    assign s_axi_rvalid = rstate;
    assign s_axi_rresp = 2'b00;
    wire ar_hs = s_axi_arvalid && s_axi_arready;

    always @(posedge clk) begin
        if (rst) rstate <= 1'b0;
        else if (ar_hs) rstate <= 1'b1;
        else if (s_axi_rready) rstate <= 1'b0;
    end

    // ---------------------------------------------------------------- registers
    reg        int_ap_start, int_ap_done, int_ap_ready, int_auto_restart, int_gie;
    reg [1:0]  int_ier, int_isr;
    reg [31:0] reg_a [0:1], reg_b [0:1], reg_c [0:1], reg_wb [0:1], reg_wl [0:1];
    reg [31:0] reg_m, reg_n, reg_k, reg_a_bits, reg_b_bits, reg_flags;
    reg [31:0] reg_nb [0:1];
    reg [31:0] reg_nn, reg_nk, reg_nbb;
    reg [31:0] out_status;
    reg [63:0] out_cycles;
    reg        vld_status, vld_cycles, vld_id;

    wire [CTRL_AW-1:0] ra = {s_axi_araddr[CTRL_AW-1:2], 2'b00};
    wire wr_ctrl = w_hs && hit(waddr, REG_CTRL);

    always @(posedge clk) begin
        if (rst) begin
            int_ap_start <= 1'b0;
            int_ap_done <= 1'b0;
            int_ap_ready <= 1'b0;
            int_auto_restart <= 1'b0;
            int_gie <= 1'b0;
            int_ier <= 2'b00;
            int_isr <= 2'b00;
            vld_status <= 1'b0;
            vld_cycles <= 1'b0;
            vld_id <= 1'b0;
        end else begin
            // CTRL
            if (wr_ctrl && s_axi_wstrb[0] && s_axi_wdata[CTRL_AP_START]) int_ap_start <= 1'b1;
            else if (ap_done && !int_auto_restart) int_ap_start <= 1'b0;
            if (wr_ctrl && s_axi_wstrb[CTRL_AUTO_RESTART / 8])
                int_auto_restart <= s_axi_wdata[CTRL_AUTO_RESTART];
            if (ap_done) int_ap_done <= 1'b1;
            else if (ar_hs && hit(ra, REG_CTRL)) int_ap_done <= 1'b0;
            if (ap_done) int_ap_ready <= 1'b1;
            else if (ar_hs && hit(ra, REG_CTRL)) int_ap_ready <= 1'b0;
            // interrupts
            if (w_hs && hit(waddr, REG_GIE) && s_axi_wstrb[0]) int_gie <= s_axi_wdata[0];
            if (w_hs && hit(waddr, REG_IER) && s_axi_wstrb[0]) int_ier <= s_axi_wdata[1:0];
            if (int_ier[IRQ_DONE] && ap_done) int_isr[IRQ_DONE] <= 1'b1;
            else if (w_hs && hit(waddr, REG_ISR) && s_axi_wstrb[0])
                int_isr[IRQ_DONE] <= int_isr[IRQ_DONE] ^ s_axi_wdata[IRQ_DONE];
            if (int_ier[IRQ_READY] && ap_done) int_isr[IRQ_READY] <= 1'b1;
            else if (w_hs && hit(waddr, REG_ISR) && s_axi_wstrb[0])
                int_isr[IRQ_READY] <= int_isr[IRQ_READY] ^ s_axi_wdata[IRQ_READY];
            // outputs' ap_vld: set at ap_done, cleared by reading the control word
            if (ap_done) vld_status <= 1'b1;
            else if (ar_hs && hit(ra, REG_STATUS_CTRL)) vld_status <= 1'b0;
            if (ap_done) vld_cycles <= 1'b1;
            else if (ar_hs && hit(ra, REG_CYCLES_CTRL)) vld_cycles <= 1'b0;
            if (ap_done) vld_id <= 1'b1;
            else if (ar_hs && hit(ra, REG_ID_CTRL)) vld_id <= 1'b0;
        end
        if (ap_done) begin
            out_status <= status_in;
            out_cycles <= cycles_in;
        end
        if (rst) begin
            out_status <= 32'd0;
            out_cycles <= 64'd0;
        end
        // arguments
        if (w_hs) begin
            if (hit(waddr, REG_A_W0)) reg_a[0] <= masked(reg_a[0], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_A_W1)) reg_a[1] <= masked(reg_a[1], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_B_W0)) reg_b[0] <= masked(reg_b[0], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_B_W1)) reg_b[1] <= masked(reg_b[1], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_C_W0)) reg_c[0] <= masked(reg_c[0], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_C_W1)) reg_c[1] <= masked(reg_c[1], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_M_W0)) reg_m <= masked(reg_m, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_N_W0)) reg_n <= masked(reg_n, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_K_W0)) reg_k <= masked(reg_k, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_A_BITS_W0)) reg_a_bits <= masked(reg_a_bits, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_B_BITS_W0)) reg_b_bits <= masked(reg_b_bits, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_FLAGS_W0)) reg_flags <= masked(reg_flags, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_WIN_BASE_W0)) reg_wb[0] <= masked(reg_wb[0], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_WIN_BASE_W1)) reg_wb[1] <= masked(reg_wb[1], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_WIN_LIMIT_W0)) reg_wl[0] <= masked(reg_wl[0], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_WIN_LIMIT_W1)) reg_wl[1] <= masked(reg_wl[1], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_NEXT_B_W0)) reg_nb[0] <= masked(reg_nb[0], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_NEXT_B_W1)) reg_nb[1] <= masked(reg_nb[1], s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_NEXT_N_W0)) reg_nn <= masked(reg_nn, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_NEXT_K_W0)) reg_nk <= masked(reg_nk, s_axi_wdata, s_axi_wstrb);
            if (hit(waddr, REG_NEXT_B_BITS_W0)) reg_nbb <= masked(reg_nbb, s_axi_wdata, s_axi_wstrb);
        end
        if (rst) begin
            reg_a[0] <= 0; reg_a[1] <= 0; reg_b[0] <= 0; reg_b[1] <= 0; reg_c[0] <= 0; reg_c[1] <= 0;
            reg_wb[0] <= 0; reg_wb[1] <= 0; reg_wl[0] <= 0; reg_wl[1] <= 0;
            reg_m <= 0; reg_n <= 0; reg_k <= 0; reg_a_bits <= 0; reg_b_bits <= 0; reg_flags <= 0;
            reg_nb[0] <= 0; reg_nb[1] <= 0; reg_nn <= 0; reg_nk <= 0; reg_nbb <= 0;
        end
    end

    // Read data, registered at the AR handshake (clear-on-read effects happen at the same edge).
    wire [31:0] ctrl_word = ({31'd0, int_ap_start} << CTRL_AP_START) | ({31'd0, int_ap_done} << CTRL_AP_DONE)
                          | ({31'd0, ap_idle} << CTRL_AP_IDLE) | ({31'd0, int_ap_ready} << CTRL_AP_READY)
                          | ({31'd0, int_auto_restart} << CTRL_AUTO_RESTART)
                          | ({31'd0, interrupt} << CTRL_INTERRUPT);
    always @(posedge clk) begin
        if (ar_hs) begin
            s_axi_rdata <= 32'd0;
            if (hit(ra, REG_CTRL)) s_axi_rdata <= ctrl_word;
            if (hit(ra, REG_GIE)) s_axi_rdata <= {31'd0, int_gie};
            if (hit(ra, REG_IER)) s_axi_rdata <= {30'd0, int_ier};
            if (hit(ra, REG_ISR)) s_axi_rdata <= {30'd0, int_isr};
            if (hit(ra, REG_A_W0)) s_axi_rdata <= reg_a[0];
            if (hit(ra, REG_A_W1)) s_axi_rdata <= reg_a[1];
            if (hit(ra, REG_B_W0)) s_axi_rdata <= reg_b[0];
            if (hit(ra, REG_B_W1)) s_axi_rdata <= reg_b[1];
            if (hit(ra, REG_C_W0)) s_axi_rdata <= reg_c[0];
            if (hit(ra, REG_C_W1)) s_axi_rdata <= reg_c[1];
            if (hit(ra, REG_M_W0)) s_axi_rdata <= reg_m;
            if (hit(ra, REG_N_W0)) s_axi_rdata <= reg_n;
            if (hit(ra, REG_K_W0)) s_axi_rdata <= reg_k;
            if (hit(ra, REG_A_BITS_W0)) s_axi_rdata <= reg_a_bits;
            if (hit(ra, REG_B_BITS_W0)) s_axi_rdata <= reg_b_bits;
            if (hit(ra, REG_FLAGS_W0)) s_axi_rdata <= reg_flags;
            if (hit(ra, REG_WIN_BASE_W0)) s_axi_rdata <= reg_wb[0];
            if (hit(ra, REG_WIN_BASE_W1)) s_axi_rdata <= reg_wb[1];
            if (hit(ra, REG_WIN_LIMIT_W0)) s_axi_rdata <= reg_wl[0];
            if (hit(ra, REG_WIN_LIMIT_W1)) s_axi_rdata <= reg_wl[1];
            if (hit(ra, REG_NEXT_B_W0)) s_axi_rdata <= reg_nb[0];
            if (hit(ra, REG_NEXT_B_W1)) s_axi_rdata <= reg_nb[1];
            if (hit(ra, REG_NEXT_N_W0)) s_axi_rdata <= reg_nn;
            if (hit(ra, REG_NEXT_K_W0)) s_axi_rdata <= reg_nk;
            if (hit(ra, REG_NEXT_B_BITS_W0)) s_axi_rdata <= reg_nbb;
            if (hit(ra, REG_STATUS_W0)) s_axi_rdata <= out_status;
            if (hit(ra, REG_STATUS_CTRL)) s_axi_rdata <= {31'd0, vld_status};
            if (hit(ra, REG_CYCLES_W0)) s_axi_rdata <= out_cycles[31:0];
            if (hit(ra, REG_CYCLES_W1)) s_axi_rdata <= out_cycles[63:32];
            if (hit(ra, REG_CYCLES_CTRL)) s_axi_rdata <= {31'd0, vld_cycles};
            if (hit(ra, REG_ID_W0)) s_axi_rdata <= ID_WORD;
            if (hit(ra, REG_ID_CTRL)) s_axi_rdata <= {31'd0, vld_id};
        end
    end

    assign interrupt = int_gie && (int_isr != 2'b00);
    // Byte offsets within a register word only matter through WSTRB.
    wire unused = &{1'b0, s_axi_awaddr[1:0], s_axi_araddr[1:0]};
    assign ap_start = int_ap_start;

    generate
        if (AW == 64) begin : addr64
            assign arg_a = {reg_a[1], reg_a[0]};
            assign arg_b = {reg_b[1], reg_b[0]};
            assign arg_c = {reg_c[1], reg_c[0]};
            assign arg_win_base = {reg_wb[1], reg_wb[0]};
            assign arg_win_limit = {reg_wl[1], reg_wl[0]};
            assign arg_next_b = {reg_nb[1], reg_nb[0]};
        end else begin : addr32
            assign arg_a = reg_a[0];
            assign arg_b = reg_b[0];
            assign arg_c = reg_c[0];
            assign arg_win_base = reg_wb[0];
            assign arg_win_limit = reg_wl[0];
            assign arg_next_b = reg_nb[0];
        end
    endgenerate
    assign arg_m = reg_m;
    assign arg_n = reg_n;
    assign arg_k = reg_k;
    assign arg_a_bits = reg_a_bits;
    assign arg_b_bits = reg_b_bits;
    assign arg_flags = reg_flags;
    assign arg_next_n = reg_nn;
    assign arg_next_k = reg_nk;
    assign arg_next_b_bits = reg_nbb;
endmodule

`default_nettype wire
