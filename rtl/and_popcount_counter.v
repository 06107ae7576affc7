`default_nettype none

// 6:3 counter: y = popcount(x), as a 64-entry table (one LUT6 per output bit).
module and_popcount_counter (
    input  wire [5:0] x,
    output wire [2:0] y
);
    localparam [191:0] POP6 = 192'hd6cb23b238dab238da8da691b238da8da6918da691691448;
    assign y = POP6[3*x +: 3];
endmodule

`default_nettype wire
