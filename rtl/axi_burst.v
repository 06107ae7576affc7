// Length of the next AXI4 INCR burst: as many beats as remain, at most MAX_BEATS, and never across a
// 4 KiB boundary (AXI forbids it).  Addresses are beat aligned.  Combinational.

`default_nettype none

module axi_burst #(
    parameter integer BYTES = 8,                // bytes per beat (AXI data width / 8), a power of two
    parameter integer MAX_BEATS = 16,           // longest burst, a power of two <= 256
    parameter integer RW = 32                   // width of `remaining`
) (
    input  wire [11:0]   addr,                  // address bits 11:0
    input  wire [RW-1:0] remaining,             // beats still to transfer, >= 1
    output wire [8:0]    beats                  // 1..MAX_BEATS
);
    localparam integer SHIFT = $clog2(BYTES);

    initial begin
        if ((1 << SHIFT) != BYTES || MAX_BEATS < 1 || MAX_BEATS > 256 || MAX_BEATS * BYTES > 4096) begin
            $display("%m: error: BYTES = %0d, MAX_BEATS = %0d: need powers of two, MAX_BEATS * BYTES <= 4096",
                     BYTES, MAX_BEATS);
            $finish;
        end
    end

    localparam integer W = (RW > 13) ? RW : 13;               // common width of the comparison

    wire [12:0] to_boundary = 13'd4096 - {1'b0, addr};        // 1..4096 bytes
    wire [12:0] boundary_beats = to_boundary >> SHIFT;
    wire [12:0] cap = (boundary_beats < MAX_BEATS[12:0]) ? boundary_beats : MAX_BEATS[12:0];
    wire [W-1:0] rem_w, cap_w;
    generate
        if (RW < W) begin : widen_rem
            assign rem_w = {{(W-RW){1'b0}}, remaining};
        end else begin : keep_rem
            assign rem_w = remaining;
        end
        if (W > 13) begin : widen_cap
            assign cap_w = {{(W-13){1'b0}}, cap};
        end else begin : keep_cap
            assign cap_w = cap;
        end
    endgenerate
    wire [W-1:0] n = (rem_w < cap_w) ? rem_w : cap_w;
    assign beats = n[8:0];                     // n <= MAX_BEATS <= 256
    wire unused = &{1'b0, n};
endmodule

`default_nettype wire
