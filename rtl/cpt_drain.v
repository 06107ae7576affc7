// Drain: moves finished tiles from the PE array's shadow registers into the C row FIFO.
//
// A tile's last step is emitted by the feeder (last_emit); ROWS + COLS + 2 cycles later the array
// reports tile_ready.  As soon as the FIFO has room for ROWS rows the drain shifts the shadows ROWS
// times on consecutive cycles, pushing rows ROWS-1 .. 0 (bottom first), each sign-extended from ACC_W to
// the RESULT_W-bit words of C.  drain_busy covers the whole span from last_emit to the end of the drain:
// the feeder holds the next tile's last step meanwhile, so no shadow is overwritten before it is
// drained, and a drain never shifts a shadow that already took the next tile.

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_drain #(
    parameter integer ROWS = `CPT_ROWS,           // config: PE array rows
    parameter integer COLS = `CPT_COLS,           // config: PE array columns
    parameter integer ACC_W = `CPT_ACC_W          // config: accumulator bits
) (
    input  wire                          clk,
    input  wire                          rst,
    input  wire                          last_emit,
    output reg                           drain_busy,
    input  wire                          tile_ready,
    input  wire [COLS*ACC_W-1:0]         c_out,
    output wire                          drain,
    input  wire [`CPT_FIFO_AW:0]         fifo_count,        // rows in the C FIFO
    output wire                          fifo_push,
    output wire [COLS*`CPT_RESULT_W-1:0] fifo_din
);
    localparam integer DEPTH = 1 << `CPT_FIFO_AW;      // C FIFO rows

    initial begin
        if (DEPTH < ROWS || ACC_W > `CPT_RESULT_W) begin
            $display("%m: error: FIFO depth %0d < ROWS = %0d or ACC_W = %0d > %0d", DEPTH, ROWS, ACC_W, `CPT_RESULT_W);
            $finish;
        end
    end

    localparam [`CPT_RV_W-1:0] LAST_K = ROWS[`CPT_RV_W-1:0] - 1'b1;
    // the fill level that leaves a tile of room
    localparam [`CPT_FIFO_AW:0] ROOM = DEPTH[`CPT_FIFO_AW:0] - ROWS[`CPT_FIFO_AW:0];

    reg pending, draining;
    reg [`CPT_RV_W-1:0] k;                     // row being shifted out, 0..ROWS-1
    wire room = fifo_count <= ROOM;

    assign drain = draining;
    assign fifo_push = draining;

    genvar c;
    generate
        for (c = 0; c < COLS; c = c + 1) begin : sext
            wire [ACC_W-1:0] v = c_out[c*ACC_W +: ACC_W];
            if (ACC_W < `CPT_RESULT_W) begin : extend
                assign fifo_din[c*`CPT_RESULT_W +: `CPT_RESULT_W] = {{(`CPT_RESULT_W-ACC_W){v[ACC_W-1]}}, v};
            end else begin : same
                assign fifo_din[c*`CPT_RESULT_W +: `CPT_RESULT_W] = v;
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            drain_busy <= 1'b0;
            pending <= 1'b0;
            draining <= 1'b0;
        end else begin
            if (last_emit) drain_busy <= 1'b1;
            if (tile_ready) pending <= 1'b1;
            if ((pending || tile_ready) && !draining && room) begin
                pending <= 1'b0;
                draining <= 1'b1;
                k <= 0;
            end
            if (draining) begin
                k <= k + 1'b1;
                if (k == LAST_K) begin
                    draining <= 1'b0;
                    drain_busy <= 1'b0;
                end
            end
        end
    end
endmodule

`default_nettype wire
