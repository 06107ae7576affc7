// Simple dual-port RAM with byte write enables: one synchronous write port writing the bytes whose `we` bit is
// set, one synchronous read port (read-first, one cycle latency).  Written in the byte-enable form that Yosys and
// Vivado map to block RAM write enables (the weight-gradient former writes one row slot of a word at a time).

`default_nettype none

module sdp_ram_be #(
    parameter integer WIDTH = 64,               // bits per word, a multiple of 8
    parameter integer DEPTH = 512,              // words
    parameter integer AW = 9                    // address bits, >= clog2(DEPTH)
) (
    input  wire               clk,
    input  wire [WIDTH/8-1:0] we,               // one bit per byte
    input  wire [AW-1:0]      waddr,
    input  wire [WIDTH-1:0]   wdata,
    input  wire               re,
    input  wire [AW-1:0]      raddr,
    output reg  [WIDTH-1:0]   rdata
);
    initial begin
        if (WIDTH < 8 || WIDTH % 8 != 0 || DEPTH < 1 || (1 << AW) < DEPTH) begin
            $display("%m: error: WIDTH = %0d (a multiple of 8), DEPTH = %0d in AW = %0d address bits", WIDTH,
                     DEPTH, AW);
            $finish;
        end
    end

    reg [WIDTH-1:0] mem [0:DEPTH-1];

    integer b;
    always @(posedge clk) begin
        for (b = 0; b < WIDTH / 8; b = b + 1)
            if (we[b]) mem[waddr][8*b +: 8] <= wdata[8*b +: 8];
        if (re) rdata <= mem[raddr];
    end
endmodule

`default_nettype wire
