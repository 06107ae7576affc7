// Code sums of the weight columns per tap (flags SUMS, forward calls): for each output channel k and tap t,
// the sum over the channels of the weight codes, counted from the B words the reader writes into the B banks.
//
// A forward call's B column k holds b_bits planes of Kw words, bit t Cp + c of plane q being bit q of
// W[k, c, tap t] (docs/ddr-layout.md; the padding channels c >= C and the bits past the taps are zero, as the
// layout requires), and the reader writes each column's words in that order, column after column, block after
// block.  So bit b of word w belongs to tap (w D + b) div Cp: with Cp < D (a power of two) a word holds D / Cp
// taps, t0 + b div Cp from t0 = w D / Cp; with Cp a multiple of D it lies in one tap, which a counter follows.
// The sum of tap t is sum over its bits of 2^q (the top plane -2^(b_bits-1) when signed).
//
// Pipeline: a written word and its tap position are registered (stage 1), then each tap's bits are counted
// and added (stage 2); a column's MAX_TAPS sums go to a FIFO as one entry at its last word and leave it as
// (idx, value) one a cycle, idx = M + k kh kw + t (the order of docs/registers.md: K-major).  The FIFO holds a
// whole block; `hold` keeps the reader from loading the next block (cpt_core shows it the B buffer busy) until
// it is empty again.

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_sums_taps #(
    parameter integer D = `CPT_D,                           // config dot_width
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS,     // config b_block_cols
    parameter integer MAX_TAPS = `CPT_MAX_KERNEL * `CPT_MAX_KERNEL
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    start,          // pulse: a call runs; what follows is valid
    input  wire                    enable,         // this call's weight sums are wanted
    input  wire [`CPT_BITS_W-1:0]  b_bits,
    input  wire                    b_signed,
    input  wire [`CPT_KW_W-1:0]    kw,             // words per plane row of B
    input  wire [15:0]             cp,             // Cp of X
    input  wire [3:0]              taps,           // kh kw
    input  wire [`CPT_DIM_W-1:0]   m,              // result rows: the index of the first tap sum
    input  wire [`CPT_DIM_W-1:0]   n,              // columns (K)
    // the reader's B writes
    input  wire                    b_write,
    input  wire [D-1:0]            b_wdata,
    output wire                    hold,
    // the sums, K-major
    output wire                    s_valid,
    input  wire                    s_ready,
    output wire [31:0]             s_idx,
    output wire [`CPT_SUM_W-1:0]   s_value,
    output wire                    s_last
);
    localparam integer LOG_D = $clog2(D);
    localparam integer PC_W = $clog2(D + 1);
    localparam integer SW = `CPT_SUM_W;                 // a code sum (int32)
    localparam integer COL_AW = B_BLOCK_COLS < 2 ? 1 : $clog2(B_BLOCK_COLS);

    reg en;
    reg multi;                                      // Cp < D: a word holds several taps
    reg [4:0] lcp;                                  // log2 Cp (Cp < D)
    reg [15:0] tap_words;                           // Cp / D (Cp >= D)
    integer i;
    always @(posedge clk) begin
        if (rst) en <= 1'b0;
        else if (start) en <= enable;
        if (start) begin
            multi <= {16'd0, cp} < D;
            lcp <= 5'd0;
            for (i = 0; i < 16; i = i + 1) if (cp == (16'd1 << i)) lcp <= i[4:0];
            tap_words <= cp >> LOG_D;
        end
    end

    // ---------------------------------------------------------------- where the written word lies
    reg [`CPT_KW_W-1:0]  w;                         // word in its plane row
    reg [`CPT_BITS_W-1:0] q;                        // plane
    reg [15:0]           tw, wt;                    // Cp >= D: the word's tap, the word's place in it
    reg [`CPT_DIM_W-1:0] col;
    wire last_word = w == kw - 1'b1;
    wire col_end = last_word && q == b_bits - 1'b1;
    reg                  s1_we, s1_end;
    reg [D-1:0]          s1_word;
    reg [`CPT_BITS_W-1:0] s1_q;
    // where each tap lies in the written word: s1_in[t], it has bits there; s1_rel[t], its segment of Cp bits
    // (bits b with b div Cp = s1_rel[t]) when a word holds several taps, else the whole word
    reg [MAX_TAPS-1:0]   s1_in;
    reg [MAX_TAPS*LOG_D-1:0] s1_rel;
    wire [15:0]          t0 = multi ? {{(16-`CPT_KW_W){1'b0}}, w} << (LOG_D[4:0] - lcp) : tw;   // the tap of bit 0
    wire [15:0]          segs = D[15:0] >> lcp;   // taps a word holds (Cp < D)
    reg  [15:0]          rel;
    reg  [MAX_TAPS-1:0]  in_word;
    reg  [MAX_TAPS*LOG_D-1:0] rel_word;
    integer t;
    always @* begin
        for (t = 0; t < MAX_TAPS; t = t + 1) begin
            rel = t[15:0] - t0;
            in_word[t] = multi ? t[15:0] >= t0 && rel < segs : t[15:0] == t0;
            rel_word[t*LOG_D +: LOG_D] = rel[LOG_D-1:0];
        end
    end
    always @(posedge clk) begin
        s1_we <= 1'b0;
        s1_end <= 1'b0;
        if (rst || start) begin
            w <= 0;
            q <= 0;
            tw <= 16'd0;
            wt <= 16'd0;
            col <= 0;
        end else if (en && b_write) begin
            s1_we <= 1'b1;
            s1_end <= col_end && col < n;
            s1_word <= b_wdata;
            s1_q <= q;
            s1_in <= in_word;
            s1_rel <= rel_word;
            w <= last_word ? {`CPT_KW_W{1'b0}} : w + 1'b1;
            if (last_word) begin                    // a plane row starts with tap 0
                tw <= 16'd0;
                wt <= 16'd0;
            end else if (wt == tap_words - 16'd1) begin
                tw <= tw + 16'd1;
                wt <= 16'd0;
            end else begin
                wt <= wt + 16'd1;
            end
            if (last_word) begin
                q <= col_end ? {`CPT_BITS_W{1'b0}} : q + 1'b1;
                if (col_end) col <= col + 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- stage 2: count per tap, accumulate
    reg  [SW-1:0] acc [0:MAX_TAPS-1];
    reg  [MAX_TAPS*SW-1:0] entry;
    reg  [SW-1:0] add;
    reg  [LOG_D-1:0] seg;
    reg  [MAX_TAPS*D-1:0] mask;                     // the bits of the word each tap owns
    wire [MAX_TAPS*PC_W-1:0] cnt;                   // and how many of them are set
    integer b;
    genvar gt;
    generate
        for (gt = 0; gt < MAX_TAPS; gt = gt + 1) begin : tap
            and_popcount #(.D(D)) popcount (.a(s1_word), .b(mask[gt*D +: D]), .count(cnt[gt*PC_W +: PC_W]));
        end
    endgenerate
    wire fifo_full, fifo_empty;
    wire [MAX_TAPS*SW-1:0] head;
    reg  [3:0]  ot;                                 // the FIFO head's next tap out
    reg  [31:0] idx;
    wire        ot_last = ot == taps - 4'd1;
    always @* begin
        for (t = 0; t < MAX_TAPS; t = t + 1) begin
            for (b = 0; b < D; b = b + 1) begin
                seg = b[LOG_D-1:0] >> lcp;
                mask[t*D + b] = s1_in[t] && (!multi || seg == s1_rel[t*LOG_D +: LOG_D]);
            end
            add = {{(SW-PC_W){1'b0}}, cnt[t*PC_W +: PC_W]} << s1_q;
            if (b_signed && s1_q == b_bits - 1'b1) add = -add;
            entry[t*SW +: SW] = acc[t] + add;
        end
    end
    always @(posedge clk) begin
        if (rst || start) begin
            for (t = 0; t < MAX_TAPS; t = t + 1) acc[t] <= {SW{1'b0}};
        end else if (s1_we) begin
            for (t = 0; t < MAX_TAPS; t = t + 1) acc[t] <= s1_end ? {SW{1'b0}} : entry[t*SW +: SW];
        end
    end
    /* verilator lint_off PINCONNECTEMPTY */
    sync_fifo #(.WIDTH(MAX_TAPS * SW), .DEPTH(1 << COL_AW), .AW(COL_AW)) columns (
        .clk(clk), .rst(rst || start), .push(s1_we && s1_end), .din(entry), .pop(s_valid && s_ready && ot_last),
        .dout(head), .empty(fifo_empty), .full(fifo_full), .count()
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // ---------------------------------------------------------------- out: one sum a cycle
    always @(posedge clk) begin
        if (rst || start) begin
            ot <= 4'd0;
            idx <= {{(32-`CPT_DIM_W){1'b0}}, m};
        end else if (s_valid && s_ready) begin
            ot <= ot_last ? 4'd0 : ot + 4'd1;
            idx <= idx + 32'd1;
        end
    end
    assign s_valid = !fifo_empty;
    assign s_idx = idx;
    assign s_value = head[ot*SW +: SW];
    wire [31:0] n_taps = {{(32-`CPT_DIM_W){1'b0}}, n} * {28'd0, taps};
    assign s_last = ot_last && idx == {{(32-`CPT_DIM_W){1'b0}}, m} + n_taps - 32'd1;
    // the next block waits until this one's sums have left (the FIFO holds one block)
    assign hold = en && (!fifo_empty || s1_we);

    wire unused = &{1'b0, fifo_full};
endmodule

`default_nettype wire
`endif
