// Bit-serial processing element of the output-stationary systolic array.
//
// Every valid step the PE ANDs a D-bit word of one A bit plane with a D-bit word of one B bit plane,
// popcounts it and folds the count into its accumulator, Horner style: the controller orders the
// plane pairs (i, j) by falling weight i + j, so instead of shifting each count by i + j the PE
// doubles the accumulator once whenever the weight drops ("shift") and adds or subtracts the count
// ("neg": exactly one of the two planes is the top plane of a signed operand).  No barrel shifter:
// one adder per PE.  The step that ends a tile ("last") copies the finished sum into a shadow
// register and clears the accumulator (the flip-flops' synchronous reset: no "clear" mux in front of
// the adder), so the next tile starts at once while the shadows are drained: on `drain` every
// shadow takes the value of the shadow above it (column-wise shift towards the bottom edge).
//
// Pipeline (identical in every PE, so the array's skew is preserved):
//   cycle 0: a_in/b_in/ctl_in at the ports      -> registered, forwarded to the neighbours
//   cycle 1: popcount(a & b) of the registered words -> count register
//   cycle 2: accumulate (and copy to the shadow on "last")
//
// ctl bits: valid, shift (double the accumulator before adding), neg (subtract), last (copy to the
// shadow, clear the accumulator).  Values wrap modulo 2^ACC_W, as in cpt_hw.hw.golden.

`include "cpt_gemm_widths.vh"

`default_nettype none

module pe #(
    parameter integer D = `CPT_D,               // bits ANDed and popcounted per step (config dot_width)
    parameter integer ACC_W = `CPT_ACC_W        // accumulator width (config acc_width)
) (
    input  wire             clk,
    input  wire             rst,                // synchronous, active high: control pipeline, accumulator

    input  wire [D-1:0]     a_in,               // A plane word from the left neighbour
    input  wire [3:0]       ctl_in,             // {last, neg, shift, valid}, travels with A
    input  wire [D-1:0]     b_in,               // B plane word from the neighbour above
    output wire [D-1:0]     a_out,              // to the right neighbour, one cycle later
    output wire [3:0]       ctl_out,
    output wire [D-1:0]     b_out,              // to the neighbour below, one cycle later

    input  wire             drain,              // shift the shadow column down by one PE
    input  wire [ACC_W-1:0] shadow_in,          // shadow of the PE above (0 in the top row)
    output wire [ACC_W-1:0] shadow_out,         // this PE's shadow, to the PE below / the bottom edge
    output wire             copied              // the shadow took a finished tile this cycle (delayed 1)
);
    localparam integer CW = $clog2(D + 1);     // width of a popcount of D bits

    initial begin
        if (D < 3 || D > 1024) begin
            $display("%m: error: D = %0d must be in 3..1024", D);
            $finish;
        end
        if (ACC_W < CW + 1 || ACC_W > 64) begin
            $display("%m: error: ACC_W = %0d must be in %0d..64 (a popcount of D = %0d bits is %0d bits)",
                     ACC_W, CW + 1, D, CW);
            $finish;
        end
    end

    // ---- stage 0: systolic registers
    reg [D-1:0] a_reg, b_reg;
    reg [3:0]   ctl_reg;
    always @(posedge clk) begin
        a_reg <= a_in;
        b_reg <= b_in;
        ctl_reg <= rst ? 4'd0 : ctl_in;
    end
    assign a_out = a_reg;
    assign b_out = b_reg;
    assign ctl_out = ctl_reg;

    // ---- stage 1: AND + popcount
    wire [CW-1:0] count;
    and_popcount #(.D(D)) popcount_i (.a(a_reg), .b(b_reg), .count(count));

    reg [CW-1:0] count_reg;
    reg [3:0]    ctl1_reg;
    always @(posedge clk) begin
        count_reg <= count;
        ctl1_reg <= rst ? 4'd0 : ctl_reg;
    end

    wire valid = ctl1_reg[0];
    wire shift = ctl1_reg[1];
    wire neg   = ctl1_reg[2];
    wire last  = ctl1_reg[3];

    // ---- stage 2: shift-accumulate.  base +/- count as one adder with a carry in:
    // {count ^ neg, neg} + {base, 1} = 2 ((count ^ neg) + neg + base) + 1 + neg.  The addend is the
    // first operand because Yosys feeds the carry chain's DI from it: above the count's width it is
    // the net `neg` itself, so the shift mux and the XOR fit one LUT per bit.
    reg  [ACC_W-1:0] acc_reg, shadow_reg;
    wire [ACC_W-1:0] base = shift ? {acc_reg[ACC_W-2:0], 1'b0} : acc_reg;
    wire [ACC_W-1:0] addend = {{(ACC_W-CW){1'b0}}, count_reg} ^ {ACC_W{neg}};
    /* verilator lint_off UNUSEDSIGNAL */
    wire [ACC_W:0]   sum = {addend, neg} + {base, 1'b1};     // sum[0] only carries neg into bit 1
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACC_W-1:0] acc_next = sum[ACC_W:1];

    reg copied_reg;
    always @(posedge clk) begin
        if (rst || (valid && last)) acc_reg <= {ACC_W{1'b0}};
        else if (valid) acc_reg <= acc_next;
        if (valid && last) shadow_reg <= acc_next;
        else if (drain) shadow_reg <= shadow_in;
        copied_reg <= !rst && valid && last;
    end
    assign shadow_out = shadow_reg;
    assign copied = copied_reg;
endmodule

`default_nettype wire
