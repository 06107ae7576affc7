`default_nettype none

// Leaf of the tree: popcount of three ANDed bit pairs (six inputs: one LUT6 per output bit).
// A module of its own so that synthesis maps each counter to LUTs separately (see docs/rtl.md).
module and_popcount_leaf (
    input  wire [2:0] a,
    input  wire [2:0] b,
    output wire [1:0] y
);
    wire [2:0] x = a & b;
    assign y = {(x[0] & x[1]) | (x[0] & x[2]) | (x[1] & x[2]), x[0] ^ x[1] ^ x[2]};
endmodule

`default_nettype wire
