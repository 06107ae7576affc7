// Output-stationary ROWS x COLS systolic array of bit-serial PEs.
//
// The ports are *aligned*: in every cycle the controller presents one step, i.e. the A plane word of
// each row (a_in), the B plane word of each column (b_in) and the step's control (ctl_in).  The array
// skews them itself: row r's A word and control are delayed r cycles, column c's B word c cycles, and
// from there they travel one PE per cycle to the right (A, control) and down (B), so PE (r, c) sees
// the step r + c cycles after it entered and every PE sees the same sequence of steps.
//
// Results: on a step flagged "last" each PE copies its finished sum to its shadow register.  PE
// (ROWS-1, COLS-1) copies last; `tile_ready` pulses in the cycle its shadow holds the sum, i.e.
// ROWS + COLS + 1 cycles after the last step entered.  From then on c_out shows the bottom row of
// shadows; every cycle with `drain` high shifts all shadows one row down, so ROWS drain cycles read
// rows ROWS-1, ROWS-2, ..., 0.  The controller must not let the next "last" step copy into a shadow
// that still holds an undrained row (see cpt_feeder.v).

`include "cpt_gemm_widths.vh"

`default_nettype none

module pe_array #(
    parameter integer ROWS = `CPT_ROWS,         // config rows
    parameter integer COLS = `CPT_COLS,         // config cols
    parameter integer D = `CPT_D,               // config dot_width
    parameter integer ACC_W = `CPT_ACC_W        // config acc_width
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire [ROWS*D-1:0]     a_in,          // row r: bits [r*D +: D]
    input  wire [3:0]            ctl_in,        // {last, neg, shift, valid} of the step
    input  wire [COLS*D-1:0]     b_in,          // column c: bits [c*D +: D]
    input  wire                  drain,
    output wire [COLS*ACC_W-1:0] c_out,         // bottom row of shadows, column c at [c*ACC_W +: ACC_W]
    output wire                  tile_ready
);
    initial begin
        if (ROWS < 1 || ROWS > 64 || COLS < 1 || COLS > 64) begin
            $display("%m: error: ROWS = %0d, COLS = %0d must be in 1..64", ROWS, COLS);
            $finish;
        end
    end

    // Systolic links: a/ctl of PE (r, c) come from a_link[r][c], it drives a_link[r][c+1]; likewise b.
    wire [D-1:0]     a_link [0:ROWS-1][0:COLS];
    wire [3:0]       ctl_link [0:ROWS-1][0:COLS];
    wire [D-1:0]     b_link [0:ROWS][0:COLS-1];
    wire [ACC_W-1:0] shadow_link [0:ROWS][0:COLS-1];
    wire             copied [0:ROWS-1][0:COLS-1];

    genvar r, c, k;
    generate
        // Input skew: row r waits r cycles, column c waits c cycles.
        for (r = 0; r < ROWS; r = r + 1) begin : row_skew
            if (r == 0) begin : direct
                assign a_link[0][0] = a_in[0 +: D];
                assign ctl_link[0][0] = ctl_in;
            end else begin : delayed
                reg [D-1:0] a_dly [0:r-1];
                reg [3:0]   ctl_dly [0:r-1];
                always @(posedge clk) begin
                    a_dly[0] <= a_in[r*D +: D];
                    ctl_dly[0] <= rst ? 4'd0 : ctl_in;
                end
                for (k = 1; k < r; k = k + 1) begin : stage
                    always @(posedge clk) begin
                        a_dly[k] <= a_dly[k-1];
                        ctl_dly[k] <= rst ? 4'd0 : ctl_dly[k-1];
                    end
                end
                assign a_link[r][0] = a_dly[r-1];
                assign ctl_link[r][0] = ctl_dly[r-1];
            end
        end
        for (c = 0; c < COLS; c = c + 1) begin : col_skew
            if (c == 0) begin : direct
                assign b_link[0][0] = b_in[0 +: D];
            end else begin : delayed
                reg [D-1:0] b_dly [0:c-1];
                always @(posedge clk) b_dly[0] <= b_in[c*D +: D];
                for (k = 1; k < c; k = k + 1) begin : stage
                    always @(posedge clk) b_dly[k] <= b_dly[k-1];
                end
                assign b_link[0][c] = b_dly[c-1];
            end
            assign shadow_link[0][c] = {ACC_W{1'b0}};
            assign c_out[c*ACC_W +: ACC_W] = shadow_link[ROWS][c];
        end

        for (r = 0; r < ROWS; r = r + 1) begin : row
            for (c = 0; c < COLS; c = c + 1) begin : col
                pe #(.D(D), .ACC_W(ACC_W)) pe_i (
                    .clk(clk), .rst(rst),
                    .a_in(a_link[r][c]), .ctl_in(ctl_link[r][c]), .b_in(b_link[r][c]),
                    .a_out(a_link[r][c+1]), .ctl_out(ctl_link[r][c+1]), .b_out(b_link[r+1][c]),
                    .drain(drain), .shadow_in(shadow_link[r][c]), .shadow_out(shadow_link[r+1][c]),
                    .copied(copied[r][c])
                );
            end
        end
    endgenerate

    assign tile_ready = copied[ROWS-1][COLS-1];
endmodule

`default_nettype wire
