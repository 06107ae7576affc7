// AXI4-Lite control slave of cpt_gemm: the ap_ctrl_hs handshake and the argument/result registers,
// behaving as the s_axi_control block Vivado HLS generates for the kernel (docs/registers.md).
//
// Register offsets and bit positions come from cpt_gemm_regmap.vh, which `cpt-hw generate` renders
// from cpt_hw.hw.regmap; nothing here repeats them.
//   * CTRL: ap_start (set by a write of 1, cleared at ap_ready unless auto_restart), ap_done and
//     ap_ready (clear on read), ap_idle, auto_restart, interrupt (read only).
//   * GIE / IER / ISR: ISR bits are set by ap_done / ap_ready when enabled in IER and toggled by
//     writing 1; interrupt = GIE & (ISR != 0).
//   * inputs: IN_WORDS plain 32-bit registers honouring WSTRB, at IN_OFFSETS, presented on `args` in
//     signature order (ARG_<NAME> gives each argument's position); the core samples them when it takes
//     ap_start.  The table comes from cpt_hw.hw.regmap.ARGUMENTS, so no argument is named here.
//   * outputs: OUT_WORDS data words sampled from `outs` at ap_done (OUT_RESET after reset: the ID word
//     for `id`, so it reads the config's ID at any time), each output with an ap_vld bit that a read
//     of its control word clears.
// Write channel: AW, then W, then B (one transaction at a time); read channel: AR, then R.

`default_nettype none

module cpt_control #(
    parameter integer CTRL_AW = 8,              // s_axi_control address bits: CTRL_ADDR_W of the register map
    parameter integer IN_W = 32,                // input argument bits: ARGS_W of the register map
    parameter integer OUT_W = 32                // output argument bits: OUTS_W of the register map
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
    input  wire               ap_done,          // pulse: the call finished (outs valid)
    input  wire [OUT_W-1:0]   outs,             // output arguments (OUT_<NAME> positions)
    output wire [IN_W-1:0]    args              // input arguments (ARG_<NAME> positions)
);
    `include "cpt_gemm_regmap.vh"

    initial begin
        if (CTRL_AW != CTRL_ADDR_W) begin
            $display("%m: error: CTRL_AW = %0d, but the register map needs %0d address bits", CTRL_AW, CTRL_ADDR_W);
            $finish;
        end
        if (IN_W != ARGS_W || OUT_W != OUTS_W) begin
            $display("%m: error: IN_W = %0d, OUT_W = %0d, but the register map has %0d input and %0d output bits",
                     IN_W, OUT_W, ARGS_W, OUTS_W);
            $finish;
        end
    end

    // Does address `a` select the register at offset `off`?
    function hit(input [CTRL_AW-1:0] a, input [31:0] off);
        hit = {{(32-CTRL_AW){1'b0}}, a} == off;
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
    reg [31:0] in_reg [0:IN_WORDS-1];           // input words, args[32 i +: 32]
    reg [31:0] out_reg [0:OUT_WORDS-1];         // output data words, sampled from outs at ap_done
    reg [N_OUTS-1:0] out_vld;                   // each output's ap_vld
    integer i;

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
            out_vld <= {N_OUTS{1'b0}};
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
            for (i = 0; i < N_OUTS; i = i + 1)
                if (ap_done) out_vld[i] <= 1'b1;
                else if (ar_hs && hit(ra, OUT_CTRL_OFFSETS[32*i +: 32])) out_vld[i] <= 1'b0;
        end
        for (i = 0; i < OUT_WORDS; i = i + 1) begin
            if (ap_done) out_reg[i] <= outs[32*i +: 32];
            if (rst) out_reg[i] <= OUT_RESET[32*i +: 32];
        end
        // arguments
        for (i = 0; i < IN_WORDS; i = i + 1) begin
            if (w_hs && hit(waddr, IN_OFFSETS[32*i +: 32])) in_reg[i] <= masked(in_reg[i], s_axi_wdata, s_axi_wstrb);
            if (rst) in_reg[i] <= 32'd0;
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
            for (i = 0; i < IN_WORDS; i = i + 1)
                if (hit(ra, IN_OFFSETS[32*i +: 32])) s_axi_rdata <= in_reg[i];
            for (i = 0; i < OUT_WORDS; i = i + 1)
                if (hit(ra, OUT_OFFSETS[32*i +: 32])) s_axi_rdata <= out_reg[i];
            for (i = 0; i < N_OUTS; i = i + 1)
                if (hit(ra, OUT_CTRL_OFFSETS[32*i +: 32])) s_axi_rdata <= {31'd0, out_vld[i]};
        end
    end

    assign interrupt = int_gie && (int_isr != 2'b00);
    // Byte offsets within a register word only matter through WSTRB.
    wire unused = &{1'b0, s_axi_awaddr[1:0], s_axi_araddr[1:0]};
    assign ap_start = int_ap_start;

    genvar g;
    generate
        for (g = 0; g < IN_WORDS; g = g + 1) begin : arg_word
            assign args[32*g +: 32] = in_reg[g];
        end
    endgenerate
endmodule

`default_nettype wire
