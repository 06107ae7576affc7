// Code sums of a weight gradient's errors per tap (flags SUMS, weight-gradient calls): for each tap (i, j) and
// error channel k, the sum of the E codes over the output positions where that tap reads a real pixel of X
// (not padding), counted from the B words the weight-gradient walker writes into the B banks.
//
// B column k of a weight gradient holds b_bits planes of Kw words, bit t of the plane row being bit q of
// E[n, k, ho, wo] at output position t = (n Ho + ho) Wo + wo (cpt_wgrad_walker; zero past the call's P
// positions), and the walker writes each column's words in that order, column after column, block after block.
// With padding <= 1 and kernels <= 3 a tap reads padding only in the first or last output row or column: tap
// (i, j) reads row ho s - pad + i, so row 0 is outside for i < pad and row Ho - 1 for (Ho - 1) s - pad + i >= H
// (likewise the columns).  So each column needs nine masked counts of its words -- all positions, the first and
// the last output row, the first and the last output column and the four corners -- and tap (i, j)'s sum is
// all, less its excluded rows and columns, plus the corners it excluded twice.  (With Ho = 1 the first row is
// the last: the "last row" mask is then empty and row 0 is excluded for either reason; likewise Wo = 1.)
//
// The masks of word w depend on w only: at the call's start a generator walks the positions, one a cycle, and
// stores each word's four masks (first/last row, first/last column) in a table of Kw entries; the walker's
// blocks wait for it (`hold`).  A hit of the prefetch hint (`own` low) keeps the table: the hinting call had the
// same geometry and SUMS (the hint's key includes the flag, cpt_core).
//
// Pipeline: a written word is registered with its table entry (stage 1), its nine counts weighed by the plane
// (the top plane -2^(b_bits-1) when signed) and added into nine accumulators (stage 2); at a column's last word
// its nine sums go to an entry RAM of two block slots, written at (slot, column in the block).  A block's sums
// leave, once its last column is in, tap-major -- (t, k) at idx = M + t K + k, so the columns of a block make
// runs -- one a cycle through a small queue.  A block of the next call (the hint's block 0, which the walker
// forms at the end of a prefetching call) is counted into a slot that is parked until the next call: a hit
// sends it as its block 0 first; any other call drops it.

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_sums_etaps #(
    parameter integer D = `CPT_D,                           // config dot_width
    parameter integer K_WORDS = `CPT_K_WORDS,               // config k_words: Kw at most
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS,     // config b_block_cols
    parameter integer MAX_KERNEL = `CPT_MAX_KERNEL          // config max_kernel
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    start,          // pulse: a call runs; what follows is valid
    input  wire                    enable,         // a weight gradient whose code sums are wanted
    input  wire                    own,            // 0: the call hits the hint (its block 0 was counted before)
    input  wire [`CPT_BITS_W-1:0]  b_bits,
    input  wire                    b_signed,
    input  wire [`CPT_KW_W-1:0]    k_words,        // Kw: words per plane row of B
    // geometry (cpt_conv_setup), stable during the call
    input  wire [`CPT_DIM_W-1:0]   batch,
    input  wire [15:0]             height,         // H
    input  wire [15:0]             width,          // W
    input  wire [15:0]             ho,             // Ho
    input  wire [15:0]             wo,             // Wo
    input  wire [1:0]              ker_h,
    input  wire [1:0]              ker_w,
    input  wire [1:0]              stride,
    input  wire                    pad,
    input  wire [`CPT_DIM_W-1:0]   m,              // kh kw C result rows: the index of the first error sum
    input  wire [`CPT_DIM_W-1:0]   n,              // K
    // the walker's B writes
    input  wire                    b_write,
    input  wire [D-1:0]            b_wdata,
    output wire                    hold,           // the walker starts no block
    output wire                    busy,           // a written word is still being counted
    // the sums, tap-major per block
    output wire                    s_valid,
    input  wire                    s_ready,
    output wire [31:0]             s_idx,
    output wire [`CPT_SUM_W-1:0]   s_value,
    output wire                    s_last
);
    localparam integer LOG_D = $clog2(D);
    localparam integer PC_W = $clog2(D + 1);
    localparam integer SW = `CPT_SUM_W;                 // a code sum (int32)
    localparam integer NC = 9;                          // counts per column: all, 4 borders, 4 corners
    localparam integer COL_AW = B_BLOCK_COLS < 2 ? 1 : $clog2(B_BLOCK_COLS);
    localparam integer TA_W = K_WORDS < 2 ? 1 : $clog2(K_WORDS);
    localparam [`CPT_POS_W-1:0] BBC_X = B_BLOCK_COLS[`CPT_POS_W-1:0];
    localparam integer D_LAST_I = D - 1;                // a word's last bit (a parameter: it is part-selected)
    localparam [LOG_D-1:0] D_LAST = D_LAST_I[LOG_D-1:0];

    reg en;
    always @(posedge clk) begin
        if (rst) en <= 1'b0;
        else if (start) en <= enable;
    end
    wire [`CPT_POS_W-1:0] n_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, n};
    wire [`CPT_KW_W-1:0]  kw_last = k_words - 1'b1;

    // ---------------------------------------------------------------- which rows and columns a tap loses
    // ex_r0[i]: tap row i reads padding in output row 0; ex_r1[i]: in output row Ho - 1 (Ho > 1); columns alike
    reg  [MAX_KERNEL-1:0] ex_r0, ex_r1, ex_c0, ex_c1;
    reg  [17:0] last_r, last_c, i18;
    integer i;
    always @* begin
        for (i = 0; i < MAX_KERNEL; i = i + 1) begin
            i18 = i[17:0];
            last_r = ({2'd0, ho} - 18'd1) * {16'd0, stride} + i18 - {17'd0, pad};
            last_c = ({2'd0, wo} - 18'd1) * {16'd0, stride} + i18 - {17'd0, pad};
            ex_r0[i] = i < pad || (ho == 16'd1 && last_r >= {2'd0, height});
            ex_r1[i] = ho != 16'd1 && last_r >= {2'd0, height};
            ex_c0[i] = i < pad || (wo == 16'd1 && last_c >= {2'd0, width});
            ex_c1[i] = wo != 16'd1 && last_c >= {2'd0, width};
        end
    end

    // ---------------------------------------------------------------- the mask table
    // Word w's masks of the output positions t = w D + b in the first / last output row and column, one position
    // a cycle into shift registers, a table entry each D positions, Kw entries (zero past the P positions).
    reg                   gen, ready;
    reg  [15:0]           g_wo, g_ho;
    reg  [`CPT_DIM_W-1:0] g_n;
    reg  [LOG_D-1:0]      g_b;
    reg  [TA_W-1:0]       g_w;
    reg  [D-2:0]          sr_rf, sr_rl, sr_cf, sr_cl;     // the word's positions so far, the newest on top
    wire                  live = g_n < batch;
    wire                  bit_rf = live && g_ho == 16'd0;
    wire                  bit_rl = live && ho != 16'd1 && g_ho == ho - 16'd1;
    wire                  bit_cf = live && g_wo == 16'd0;
    wire                  bit_cl = live && wo != 16'd1 && g_wo == wo - 16'd1;
    wire [D-1:0]          nx_rf = {bit_rf, sr_rf}, nx_rl = {bit_rl, sr_rl};
    wire [D-1:0]          nx_cf = {bit_cf, sr_cf}, nx_cl = {bit_cl, sr_cl};
    wire                  g_word = gen && g_b == D_LAST;
    wire [TA_W-1:0]       kw_last_t = kw_last[TA_W-1:0];
    always @(posedge clk) begin
        if (rst) begin
            gen <= 1'b0;
            ready <= 1'b0;
        end else if (start) begin
            // a hit keeps the hinting call's table (same geometry); any other call with SUMS makes its own
            if (enable && (own || !ready)) begin
                gen <= 1'b1;
                ready <= 1'b0;
            end
            g_wo <= 16'd0;
            g_ho <= 16'd0;
            g_n <= {`CPT_DIM_W{1'b0}};
            g_b <= {LOG_D{1'b0}};
            g_w <= {TA_W{1'b0}};
        end else if (gen) begin
            sr_rf <= nx_rf[D-1:1];
            sr_rl <= nx_rl[D-1:1];
            sr_cf <= nx_cf[D-1:1];
            sr_cl <= nx_cl[D-1:1];
            g_b <= g_b + 1'b1;
            if (g_word) begin
                g_w <= g_w + 1'b1;
                if (g_w == kw_last_t) begin
                    gen <= 1'b0;
                    ready <= 1'b1;
                end
            end
            if (live) begin
                if (g_wo != wo - 16'd1) begin
                    g_wo <= g_wo + 16'd1;
                end else begin
                    g_wo <= 16'd0;
                    if (g_ho != ho - 16'd1) begin
                        g_ho <= g_ho + 16'd1;
                    end else begin
                        g_ho <= 16'd0;
                        g_n <= g_n + 1'b1;
                    end
                end
            end
        end
    end
    wire [4*D-1:0] t_rdata;
    reg  [TA_W-1:0] w_t;
    sdp_ram #(.WIDTH(4 * D), .DEPTH(K_WORDS), .AW(TA_W)) masks (
        .clk(clk), .we(g_word), .waddr(g_w), .wdata({nx_cl, nx_cf, nx_rl, nx_rf}),
        .re(en && b_write), .raddr(w_t), .rdata(t_rdata)
    );
    // the last word's positions past P: the low (P mod D) bits are real (all of them when D divides P)
    reg  [D-1:0] tail;
    reg  [`CPT_DIM_W+31:0] p_pos;
    integer b;
    always @* begin
        p_pos = batch * ho * wo;
        for (b = 0; b < D; b = b + 1) tail[b] = p_pos[LOG_D-1:0] == {LOG_D{1'b0}} || b < p_pos[LOG_D-1:0];
    end

    // ---------------------------------------------------------------- stage 0: where the written word lies
    reg  [`CPT_KW_W-1:0]  w;                        // word in its plane row
    reg  [`CPT_BITS_W-1:0] q;                       // plane
    reg  [`CPT_POS_W-1:0] col, c_n0;                // column in the block, the block's first column
    reg                   c_pre;                    // the block is the next call's block 0
    wire [`CPT_POS_W-1:0] left_cols = n_w - c_n0;
    wire [`CPT_POS_W-1:0] c_cols = left_cols < BBC_X ? left_cols : BBC_X;
    wire                  last_word = w == kw_last;
    wire                  col_end = last_word && q == b_bits - 1'b1;
    wire                  blk_end = col_end && col == c_cols - 1'b1;
    wire                  take = en && b_write;
    reg  [1:0]            occ;                      // block slots taken (counting, full or parked)
    reg                   s1_we, s1_end, s1_blk_end, s1_pre, s1_lastw;
    reg  [D-1:0]          s1_word;
    reg  [`CPT_BITS_W-1:0] s1_q;
    reg  [`CPT_POS_W-1:0] s1_n0, s1_cols;
    reg  [COL_AW-1:0]     s1_col;
    always @* w_t = w[TA_W-1:0];
    always @(posedge clk) begin
        s1_we <= 1'b0;
        if (rst || start) begin
            w <= {`CPT_KW_W{1'b0}};
            q <= {`CPT_BITS_W{1'b0}};
            col <= {`CPT_POS_W{1'b0}};
            // a hit's own blocks start at block 1; with no own block left the words are the next call's
            c_n0 <= !enable || own ? {`CPT_POS_W{1'b0}} : n_w > BBC_X ? BBC_X : {`CPT_POS_W{1'b0}};
            c_pre <= enable && !own && n_w <= BBC_X;
        end else if (take) begin
            s1_we <= 1'b1;
            s1_end <= col_end;
            s1_blk_end <= blk_end;
            s1_pre <= c_pre;
            s1_lastw <= last_word;
            s1_word <= b_wdata;
            s1_q <= q;
            s1_col <= col[COL_AW-1:0];
            s1_n0 <= c_n0;
            s1_cols <= c_cols;
            w <= last_word ? {`CPT_KW_W{1'b0}} : w + 1'b1;
            if (last_word) q <= col_end ? {`CPT_BITS_W{1'b0}} : q + 1'b1;
            if (col_end) col <= blk_end ? {`CPT_POS_W{1'b0}} : col + 1'b1;
            if (blk_end && !c_pre) begin
                if (c_n0 + BBC_X < n_w) begin
                    c_n0 <= c_n0 + BBC_X;
                end else begin
                    c_n0 <= {`CPT_POS_W{1'b0}};
                    c_pre <= 1'b1;
                end
            end
        end
    end
    wire alloc = take && w == {`CPT_KW_W{1'b0}} && q == {`CPT_BITS_W{1'b0}} && col == {`CPT_POS_W{1'b0}};

    // ---------------------------------------------------------------- stage 1: nine counts, accumulate
    wire [D-1:0] m_rf = t_rdata[0 +: D], m_rl = t_rdata[D +: D], m_cf = t_rdata[2*D +: D], m_cl = t_rdata[3*D +: D];
    wire [NC*D-1:0] cmask = {m_rl & m_cl, m_rl & m_cf, m_rf & m_cl, m_rf & m_cf, m_cl, m_cf, m_rl, m_rf,
                             s1_lastw ? tail : {D{1'b1}}};
    wire [NC*PC_W-1:0] cnt;
    genvar gc;
    generate
        for (gc = 0; gc < NC; gc = gc + 1) begin : count
            and_popcount #(.D(D)) popcount (.a(s1_word), .b(cmask[gc*D +: D]), .count(cnt[gc*PC_W +: PC_W]));
        end
    endgenerate
    reg  [SW-1:0] acc [0:NC-1];
    reg  [NC*SW-1:0] entry;
    reg  [SW-1:0] add;
    integer x;
    always @* begin
        for (x = 0; x < NC; x = x + 1) begin
            add = {{(SW-PC_W){1'b0}}, cnt[x*PC_W +: PC_W]} << s1_q;
            if (b_signed && s1_q == b_bits - 1'b1) add = -add;
            entry[x*SW +: SW] = acc[x] + add;
        end
    end
    reg  [1:0] full, park;                          // per slot: a block's sums are in; they are the next call's
    reg        wslot, rslot;                        // the slot being counted into, the next one out
    reg  [`CPT_POS_W-1:0] sn0 [0:1];
    reg  [`CPT_POS_W-1:0] scols [0:1];
    wire       drain_done;                          // the slot rslot has left (below)
    wire       kept = enable && !own && park[!wslot];
    always @(posedge clk) begin
        if (rst || start) begin
            for (x = 0; x < NC; x = x + 1) acc[x] <= {SW{1'b0}};
        end else if (s1_we) begin
            for (x = 0; x < NC; x = x + 1) acc[x] <= s1_end ? {SW{1'b0}} : entry[x*SW +: SW];
        end
    end
    always @(posedge clk) begin
        if (rst) begin
            full <= 2'b00;
            park <= 2'b00;
            occ <= 2'd0;
            wslot <= 1'b0;
            rslot <= 1'b0;
        end else if (start) begin
            // a hit with SUMS sends the parked block (counted last, in slot !wslot) first; anything else drops it
            full <= kept ? full & park : 2'b00;
            park <= 2'b00;
            occ <= kept ? 2'd1 : 2'd0;
            rslot <= kept ? !wslot : wslot;
        end else begin
            occ <= occ + {1'b0, alloc} - {1'b0, drain_done};
            if (s1_we && s1_blk_end) begin
                full[wslot] <= 1'b1;
                park[wslot] <= s1_pre;
                sn0[wslot] <= s1_n0;
                scols[wslot] <= s1_cols;
                wslot <= !wslot;
            end
            if (drain_done) begin
                full[rslot] <= 1'b0;
                rslot <= !rslot;
            end
        end
    end
    wire [NC*SW-1:0] e_rdata;
    reg  [COL_AW-1:0] d_col;
    sdp_ram #(.WIDTH(NC * SW), .DEPTH(2 << COL_AW), .AW(COL_AW + 1)) columns (
        .clk(clk), .we(s1_we && s1_end), .waddr({wslot, s1_col}), .wdata(entry),
        .re(1'b1), .raddr({rslot, d_col}), .rdata(e_rdata)
    );

    // ---------------------------------------------------------------- out: (t, k) tap-major, one a cycle
    reg  [3:0] d_t;
    reg  [1:0] d_i, d_j;
    reg  [31:0] d_toff;                             // t K
    reg        p_valid, p_last;
    reg  [1:0] p_i, p_j;
    reg  [31:0] p_idx;
    wire [2:0] o_count;
    wire       o_empty, o_full;
    wire [`CPT_POS_W-1:0] d_cols = scols[rslot];
    wire [3:0]  taps = {2'd0, ker_h} * {2'd0, ker_w};
    wire       d_run = full[rslot] && !park[rslot];
    wire       issue = d_run && {1'b0, o_count} + {3'd0, p_valid} < 4'd3;
    wire       d_col_last = {{(`CPT_POS_W-COL_AW){1'b0}}, d_col} == d_cols - 1'b1;
    wire       d_tap_last = d_t == taps - 4'd1;
    assign drain_done = issue && d_col_last && d_tap_last;
    wire [31:0] m32 = {{(32-`CPT_DIM_W){1'b0}}, m};
    wire [31:0] n32 = {{(32-`CPT_DIM_W){1'b0}}, n};
    always @(posedge clk) begin
        p_valid <= 1'b0;
        if (rst || start) begin
            d_col <= {COL_AW{1'b0}};
            d_t <= 4'd0;
            d_i <= 2'd0;
            d_j <= 2'd0;
            d_toff <= 32'd0;
        end else if (issue) begin
            p_valid <= 1'b1;
            p_i <= d_i;
            p_j <= d_j;
            p_idx <= m32 + d_toff + {{(32-`CPT_POS_W){1'b0}}, sn0[rslot]} + {{(32-COL_AW){1'b0}}, d_col};
            p_last <= d_col_last && d_tap_last && sn0[rslot] + d_cols == n_w;
            d_col <= d_col_last ? {COL_AW{1'b0}} : d_col + 1'b1;
            if (d_col_last) begin
                if (d_tap_last) begin
                    d_t <= 4'd0;
                    d_i <= 2'd0;
                    d_j <= 2'd0;
                    d_toff <= 32'd0;
                end else begin
                    d_t <= d_t + 4'd1;
                    d_toff <= d_toff + n32;
                    if (d_j == ker_w - 2'd1) begin
                        d_j <= 2'd0;
                        d_i <= d_i + 2'd1;
                    end else begin
                        d_j <= d_j + 2'd1;
                    end
                end
            end
        end
    end
    // the tap's sum: all positions, less its excluded first/last row and column, plus the corners taken twice
    wire r0 = ex_r0[p_i], r1 = ex_r1[p_i], c0 = ex_c0[p_j], c1 = ex_c1[p_j];
    wire [SW-1:0] e_all = e_rdata[0 +: SW], e_rf = e_rdata[SW +: SW], e_rl = e_rdata[2*SW +: SW];
    wire [SW-1:0] e_cf = e_rdata[3*SW +: SW], e_cl = e_rdata[4*SW +: SW];
    wire [SW-1:0] e_ff = e_rdata[5*SW +: SW], e_fl = e_rdata[6*SW +: SW];
    wire [SW-1:0] e_lf = e_rdata[7*SW +: SW], e_ll = e_rdata[8*SW +: SW];
    wire [SW-1:0] tap_sum = e_all - (r0 ? e_rf : {SW{1'b0}}) - (r1 ? e_rl : {SW{1'b0}})
                            - (c0 ? e_cf : {SW{1'b0}}) - (c1 ? e_cl : {SW{1'b0}})
                            + (r0 && c0 ? e_ff : {SW{1'b0}}) + (r0 && c1 ? e_fl : {SW{1'b0}})
                            + (r1 && c0 ? e_lf : {SW{1'b0}}) + (r1 && c1 ? e_ll : {SW{1'b0}});
    wire [32+SW:0] o_head;
    sync_fifo #(.WIDTH(33 + SW), .DEPTH(4), .AW(2)) out (
        .clk(clk), .rst(rst || start), .push(p_valid), .din({p_last, p_idx, tap_sum}), .pop(s_valid && s_ready),
        .dout(o_head), .empty(o_empty), .full(o_full), .count(o_count)
    );
    assign s_valid = !o_empty;
    assign s_last = o_head[32 + SW];
    assign s_idx = o_head[SW +: 32];
    assign s_value = o_head[SW-1:0];
    // a block waits for the mask table and for a free slot (one may be counted while the other leaves)
    assign hold = en && (!ready || occ == 2'd2);
    assign busy = s1_we;

    wire unused = &{1'b0, o_full, p_pos[`CPT_DIM_W+31:LOG_D]};
endmodule

`default_nettype wire
`endif
