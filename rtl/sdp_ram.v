// Simple dual-port RAM: one synchronous write port, one synchronous read port (read-first, one cycle
// latency).  Written so that Yosys and Vivado infer block RAM (or LUT RAM when small).

`default_nettype none

module sdp_ram #(
    parameter integer WIDTH = 64,               // bits per word
    parameter integer DEPTH = 512,              // words
    parameter integer AW = 9                    // address bits, >= clog2(DEPTH)
) (
    input  wire             clk,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire             re,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
    initial begin
        if (DEPTH < 1 || (1 << AW) < DEPTH) begin
            $display("%m: error: DEPTH = %0d does not fit AW = %0d address bits", DEPTH, AW);
            $finish;
        end
    end

    reg [WIDTH-1:0] mem [0:DEPTH-1];

    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        if (re) rdata <= mem[raddr];
    end
endmodule

`default_nettype wire
