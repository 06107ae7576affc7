// Code sums of the result rows (flags SUMS): each A row's sum of codes, counted from the words the walker
// writes into the A banks (docs/architecture.md, "Code sums for the zero-point corrections").
//
// A forward call's A row m is the im2col row of result pixel m: its code sum is the window sum of X that the
// zero-point corrections need.  A row holds a_bits planes of Kw words (bank r of the tile, address half + plane
// Kw + word; the padding channels and taps are zero words or zero bits), so its sum is
//     sum over its words of popcount(word) x 2^plane, the top plane weighed -2^(a_bits-1) when signed.
// Every word of a tile is written exactly once before the walker reports the tile loaded (a_loaded) and the next
// tile's words follow only after that, so one accumulator per bank suffices; the plane of a write is found from
// its address (a compare with p Kw, p = 1 .. OP_BITS - 1).  Only the first ceil(M / ROWS) tiles count: the walker
// forms block 0's tiles first, in row order, and forms them again for every further B block.
//
// Pipeline: the bank writes' popcounts and planes are registered (stage 1), then added (stage 2); a tile's sums
// go to a shadow register that moves them, one a cycle, into a queue of four tiles' sums, which sends them out
// as (idx, value) at idx = the row.  `hold` asks the walker not to start a tile (cpt_core shows it both A halves
// busy) until the shadow is free again.

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_sums_rows #(
    parameter integer ROWS = `CPT_ROWS,         // config rows: A banks, rows of a tile
    parameter integer D = `CPT_D,               // config dot_width
    parameter integer OP_BITS = `CPT_OP_BITS    // config operand_bits
) (
    input  wire                        clk,
    input  wire                        rst,
    input  wire                        start,          // pulse: a call runs; what follows is valid
    input  wire                        enable,         // this call's row sums are wanted
    input  wire [`CPT_BITS_W-1:0]      a_bits,
    input  wire                        a_signed,
    input  wire [`CPT_KW_W-1:0]        kw,             // words per plane row of A
    input  wire [`CPT_DIM_W-1:0]       m,              // result rows of the call
    // the A banks' writes (cpt_core's bank mux) and the walker's tile-loaded pulse
    input  wire [ROWS-1:0]             bank_we,
    input  wire [ROWS*`CPT_A_AW-1:0]   bank_waddr,
    input  wire [ROWS*D-1:0]           bank_wdata,
    input  wire                        a_loaded,
    output wire                        hold,
    // the sums, in row order
    output wire                        s_valid,
    input  wire                        s_ready,
    output wire [31:0]                 s_idx,
    output wire [`CPT_SUM_W-1:0]       s_value,
    output wire                        s_last
);
    localparam integer HALF = `CPT_A_HALF;
    localparam integer PC_W = $clog2(D + 1);
    localparam integer SW = `CPT_SUM_W;                 // a code sum (int32)
    localparam integer PL_W = `CPT_BITS_W;
    localparam integer IX_W = ROWS < 2 ? 1 : $clog2(ROWS);          // a row of the shadow
    localparam integer Q_AW = $clog2(4 * ROWS);                      // the queue: four tiles' sums
    localparam [`CPT_A_AW-1:0] HALF_A = HALF[`CPT_A_AW-1:0];

    reg en;
    reg [`CPT_A_AW-1:0] thr [1:OP_BITS];                // p Kw: where plane p starts in a half
    integer p;
    always @(posedge clk) begin
        if (rst) en <= 1'b0;
        else if (start) en <= enable;
        if (start)
            for (p = 1; p <= OP_BITS; p = p + 1) thr[p] <= p[`CPT_A_AW-1:0] * {{(`CPT_A_AW-`CPT_KW_W){1'b0}}, kw};
    end

    wire [ROWS*PC_W-1:0] pc;                            // each bank write's popcount
    genvar gb;
    generate
        for (gb = 0; gb < ROWS; gb = gb + 1) begin : bank
            and_popcount #(.D(D)) popcount (.a(bank_wdata[gb*D +: D]), .b({D{1'b1}}), .count(pc[gb*PC_W +: PC_W]));
        end
    endgenerate

    // ---------------------------------------------------------------- stage 1: popcount and plane per bank
    reg  [ROWS-1:0]      s1_we;
    reg  [ROWS*PC_W-1:0] s1_pc;
    reg  [ROWS*PL_W-1:0] s1_plane;
    reg                  s1_loaded;
    integer g, q;
    reg [`CPT_A_AW-1:0]  off;
    reg [ROWS*PL_W-1:0]  plane;                         // each bank write's plane
    always @* begin
        for (g = 0; g < ROWS; g = g + 1) begin
            off = bank_waddr[g*`CPT_A_AW +: `CPT_A_AW];
            if (off >= HALF_A) off = off - HALF_A;
            plane[g*PL_W +: PL_W] = {PL_W{1'b0}};
            for (q = 1; q < OP_BITS; q = q + 1)
                if (q[PL_W-1:0] < a_bits && off >= thr[q]) plane[g*PL_W +: PL_W] = q[PL_W-1:0];
        end
    end
    always @(posedge clk) begin
        s1_loaded <= en && a_loaded && !rst && !start;
        s1_plane <= plane;
        for (g = 0; g < ROWS; g = g + 1) begin
            s1_we[g] <= en && bank_we[g] && !rst && !start;
            s1_pc[g*PC_W +: PC_W] <= pc[g*PC_W +: PC_W];
        end
    end

    // ---------------------------------------------------------------- stage 2: accumulate, take a tile
    reg  [SW-1:0] acc [0:ROWS-1];
    reg  [SW-1:0] shadow [0:ROWS-1];
    reg  [`CPT_RV_W-1:0] left, at;                           // sums in the shadow, the next one out
    wire sh_valid = left != {`CPT_RV_W{1'b0}};
    wire q_full, q_empty;
    reg  [31:0] idx0, rows_done;                        // the shadow's first row; rows taken so far
    wire [31:0] m32 = {{(32-`CPT_DIM_W){1'b0}}, m};
    wire [31:0] rest = m32 - rows_done;
    reg  [ROWS*SW-1:0] add;                             // each bank's last write, weighed
    always @* begin
        for (g = 0; g < ROWS; g = g + 1) begin
            add[g*SW +: SW] = {{(SW-PC_W){1'b0}}, s1_pc[g*PC_W +: PC_W]} << s1_plane[g*PL_W +: PL_W];
            if (a_signed && s1_plane[g*PL_W +: PL_W] == a_bits - 1'b1) add[g*SW +: SW] = -add[g*SW +: SW];
            if (!s1_we[g]) add[g*SW +: SW] = {SW{1'b0}};
        end
    end
    always @(posedge clk) begin
        if (rst || start) begin
            left <= {`CPT_RV_W{1'b0}};
            at <= {`CPT_RV_W{1'b0}};
            rows_done <= 32'd0;
            for (g = 0; g < ROWS; g = g + 1) acc[g] <= {SW{1'b0}};
        end else begin
            for (g = 0; g < ROWS; g = g + 1) begin
                acc[g] <= s1_loaded ? {SW{1'b0}} : acc[g] + add[g*SW +: SW];
                if (s1_loaded) shadow[g] <= acc[g] + add[g*SW +: SW];
            end
            if (s1_loaded) begin
                if (rows_done < m32) begin               // block 0's tiles; later blocks' repeat them
                    left <= rest < ROWS ? rest[`CPT_RV_W-1:0] : ROWS[`CPT_RV_W-1:0];
                    at <= {`CPT_RV_W{1'b0}};
                    idx0 <= rows_done;
                    rows_done <= rows_done + ROWS;
                end
            end else if (sh_valid && !q_full) begin
                at <= at + 1'b1;
                left <= left - 1'b1;
            end
        end
    end

    // the shadow drains into a queue of four tiles' sums, so that the walker goes on while the sums wait for
    // the write channel (their bursts follow the C bursts accepted before them)
    wire [`CPT_RV_W+IX_W-1:0] at_x = {{IX_W{1'b0}}, at};     // (a width that holds both)
    wire unused_at = &{1'b0, at_x};
    wire [31+SW:0] q_out;
    /* verilator lint_off PINCONNECTEMPTY */
    sync_fifo #(.WIDTH(32 + SW), .DEPTH(1 << Q_AW), .AW(Q_AW)) queue (
        .clk(clk), .rst(rst || start), .push(sh_valid && !q_full),
        .din({idx0 + {{(32-`CPT_RV_W){1'b0}}, at}, shadow[at_x[IX_W-1:0]]}), .pop(s_valid && s_ready),
        .dout(q_out), .empty(q_empty), .full(q_full), .count()
    );
    /* verilator lint_on PINCONNECTEMPTY */
    assign s_valid = !q_empty;
    assign s_idx = q_out[SW +: 32];
    assign s_value = q_out[SW-1:0];
    assign s_last = s_idx == m32 - 32'd1;
    // the walker starts no tile while a tile's sums are on their way to the shadow or still in it
    assign hold = en && (a_loaded || s1_loaded || sh_valid);
endmodule

`default_nettype wire
`endif
