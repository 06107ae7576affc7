// Synchronous FIFO, first-word fall-through: `dout` shows the oldest entry whenever `!empty`.
// `count` is the number of entries, so producers can reserve room for a burst of pushes.

`default_nettype none

module sync_fifo #(
    parameter integer WIDTH = 32,               // bits per entry
    parameter integer DEPTH = 4,                // entries, a power of two >= 2
    parameter integer AW = 2                    // log2(DEPTH)
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             push,               // ignored when full
    input  wire [WIDTH-1:0] din,
    input  wire             pop,                // ignored when empty
    output wire [WIDTH-1:0] dout,
    output wire             empty,
    output wire             full,
    output wire [AW:0]      count
);
    initial begin
        if (DEPTH < 2 || (1 << AW) != DEPTH) begin
            $display("%m: error: DEPTH = %0d must be 2^AW (AW = %0d), at least 2", DEPTH, AW);
            $finish;
        end
    end

    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AW:0] wptr, rptr;

    assign count = wptr - rptr;
    assign empty = (wptr == rptr);
    assign full = (count == DEPTH[AW:0]);
    assign dout = mem[rptr[AW-1:0]];

    always @(posedge clk) begin
        if (push && !full) mem[wptr[AW-1:0]] <= din;
        if (rst) begin
            wptr <= 0;
            rptr <= 0;
        end else begin
            if (push && !full) wptr <= wptr + 1'b1;
            if (pop && !empty) rptr <= rptr + 1'b1;
        end
    end
endmodule

`default_nettype wire
