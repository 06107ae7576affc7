// Weight-gradient shift/mask former: the X chunk stored corner-turned, and the read side that forms the A rows
// of a weight-gradient GEMM (docs/architecture.md, "Weight gradient: chunks, corner turn, shift/mask former").
//
// A self-contained unit of the convolution engine; cpt_wgrad_walker uses two (X, and E as a 1x1 kernel).  Reference:
// cpt_hw.hw.conv_wgrad_former (bit-exact); functional reference: hls/cpt_conv_read.h, form_shift_mask.
//
// Write side: the chunk's row-planes (batch whole images) as the reader delivers them, in DDR order (image n,
// row y, plane p, then row_words = ceil(W Cp / D) words), one D-bit word per s_valid && s_ready.  A row-plane
// is gathered in a staging register and then corner-turned into C channel rows of W position bits (bit x of
// channel row (n, y, p, c) = bit x Cp + c of the row-plane), CB channel rows a cycle, while the next row-plane
// streams into a second staging register.
//
// Storage, packed rows: a channel row fills a slot of P = max(8, W rounded up to a power of two) bits, and the
// R = D / P consecutive chunk rows rb = n H + y of group g = rb div R share one word per plane and channel (slot
// rb mod R at bit (rb mod R) P).  The words sit in 2 CB banks, bank (g mod 2) CB + c mod CB at word
// ((g div 2) bits + p) ceil(C / CB) + c div CB, so that the turn writes CB channels a cycle (a slot's bytes in
// each of CB banks) and two consecutive groups of a channel are read in one cycle.
//
// Read side: once the whole chunk is stored, a request (tap i, j; channel c; plane p; words w0 .. w0 +
// count - 1) emits those words of A row (i, j, c, p): bit t mod D of word t div D is bit p of X[n, c,
// ho s - pad + i, wo s - pad + j] for output position t = (n Ho + ho) Wo + wo, zero where the tap falls
// outside the image.  Two ways, chosen per chunk:
//
//  * whole words, when stride 1, Wo = W = P, Ho = H and R divides H (3x3 padding 1 and 1x1 padding 0 on
//    power-of-two widths >= 8: ResNet's stride-1 layers, and every E chunk): output position t is then stream
//    bit t of the chunk's rows, so A word w is the funnel shift by off mod D of groups w + floor(off / D) and the
//    next (off = (i - pad) W + j - pad), masked at the row ends (column wo + j - pad outside the image) and in
//    an image's first or last row (row ho + i - pad outside it): one A word a cycle;
//  * segments, otherwise: per output row (n, ho) one read of the input row's group gives its channel row (its
//    slot); the segment is its even or odd columns (stride 2, fixed wiring), shifted by the tap's column offset
//    (zeros shifted in at the row ends), masked to Wo bits (all zero for a row outside the image) and placed
//    after the previous segment in a 2D-bit assembly register, which hands a word to the output register
//    whenever one is full: Wo / D words a cycle.
//
// A request first spends 2 CHUNK_POS_W + 3 cycles finding its first output row ((w0 D) div Wo, then div Ho)
// with one restoring divider, except one that starts at word 0 (the weight-gradient walker's: whole rows), whose
// first output row is (0, 0).  Geometry inputs are sampled by `start` and must not change until the chunk's
// requests are done; requests must be legal (i < kh, j < kw, c < C, p < bits, w0 + count <= the row's
// ceil(N Ho Wo / D) words).

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_wgrad_former #(
    parameter integer D = `CPT_D,               // config dot_width: bits of a row-plane word, a buffer word, an A word
    parameter integer OP_BITS = `CPT_OP_BITS,   // config: planes of a code at most
    parameter integer MAX_ROW_BITS = 2048,      // W Cp of the widest row-plane: the staging register
    parameter integer BUF_WORDS = 4096,         // channel rows of a chunk at most: N H bits C (the call's limit)
    parameter integer CB = 2                    // channel banks (a power of two >= 2): channel rows turned a cycle
) (
    input  wire                   clk,
    input  wire                   rst,                // synchronous, active high

    // Geometry of the chunk, sampled on `start` (a pulse that also empties the buffer).
    input  wire                   start,
    input  wire [15:0]            batch,              // N: whole images in the chunk
    input  wire [15:0]            channels,           // C
    input  wire [15:0]            cp,                 // channel pitch in bits: a power of two >= C
    input  wire [15:0]            width,              // W: pixels per row, <= D
    input  wire [15:0]            height,             // H: rows
    input  wire [1:0]             kh,                 // kernel rows, 1..3
    input  wire [1:0]             kw,                 // kernel columns, 1..3
    input  wire [1:0]             stride,             // 1 or 2
    input  wire                   pad,                // padding 0 or 1
    input  wire [`CPT_BITS_W-1:0] bits,               // planes per row, 1..OP_BITS
    output reg                    geom_err,           // the sampled geometry is not one this unit takes
    output wire                   loaded,             // the whole chunk is stored: requests are taken

    // Row-plane words in.
    input  wire                   s_valid,
    output wire                   s_ready,
    input  wire [D-1:0]           s_data,

    // Requests: words [rq_word0, rq_word0 + rq_count) of A row (rq_i, rq_j, rq_c), plane rq_plane.
    input  wire                   rq_valid,
    output wire                   rq_ready,
    input  wire [1:0]             rq_i,
    input  wire [1:0]             rq_j,
    input  wire [15:0]            rq_c,
    input  wire [`CPT_BITS_W-1:0] rq_plane,
    input  wire [15:0]            rq_word0,
    input  wire [15:0]            rq_count,           // >= 1

    // A words out.
    output reg                    m_valid,
    input  wire                   m_ready,
    output reg  [D-1:0]           m_data,
    output reg  [15:0]            m_word,             // the word's index in the A row
    output reg                    m_last              // the request's last word
);
    localparam integer LD = $clog2(D);
    localparam integer LMR = $clog2(MAX_ROW_BITS);
    localparam integer LCB = $clog2(CB);
    localparam integer NB = 2 * CB;                     // banks: group parity x channel bank
    // words a bank holds: a chunk of N H bits C <= BUF_WORDS channel rows puts at most BUF_WORDS / 2 + OP_BITS / 2
    // words in one bank (one channel, an odd number of groups); tests/test_conv_twin.py checks the bound
    localparam integer BANK_WORDS = BUF_WORDS / 2 + OP_BITS;
    localparam integer BAW = $clog2(BANK_WORDS);
    localparam integer CHUNK_POS_W = 20;                // output positions N Ho Wo < 2^20
    localparam integer HW = 18;                         // signed rows
    localparam [31:0] CHUNK_POS_LAST32 = CHUNK_POS_W - 1;
    localparam [4:0] POS_LAST = CHUNK_POS_LAST32[4:0];
    localparam [31:0] D32 = D;
    localparam signed [17:0] D_S = D32[17:0];

    initial begin
        if (D < 8 || (1 << LD) != D) begin
            $display("%m: error: D = %0d must be a power of two >= 8", D);
            $finish;
        end
        if (MAX_ROW_BITS < D || (1 << LMR) != MAX_ROW_BITS) begin
            $display("%m: error: MAX_ROW_BITS = %0d must be a power of two >= D (%0d)", MAX_ROW_BITS, D);
            $finish;
        end
        if (BUF_WORDS < 2) begin
            $display("%m: error: BUF_WORDS = %0d must be >= 2", BUF_WORDS);
            $finish;
        end
        if (CB < 2 || (1 << LCB) != CB) begin
            $display("%m: error: CB = %0d must be a power of two >= 2", CB);
            $finish;
        end
    end

    // ---------------------------------------------------------------- geometry, sampled on start
    localparam [15:0] D_X = D[15:0];
    localparam [`CPT_BITS_W-1:0] OP_BITS_X = OP_BITS[`CPT_BITS_W-1:0];
    localparam [31:0] MRB_X = MAX_ROW_BITS;
    localparam [31:0] BUF_X = BUF_WORDS;
    localparam [31:0] POS_X = 32'd1 << CHUNK_POS_W;
    localparam [31:0] CB_X = CB;
    localparam [3:0] LD_X = LD[3:0];

    // Ho = (H + 2 pad - kh) / s + 1, Wo likewise (negative numerators: the kernel does not fit)
    wire [16:0] h_span = {1'b0, height} + {15'd0, pad, 1'b0} - {15'd0, kh};
    wire [16:0] w_span = {1'b0, width} + {15'd0, pad, 1'b0} - {15'd0, kw};
    wire        fits = {1'b0, height} + {15'd0, pad, 1'b0} >= {15'd0, kh}
                       && {1'b0, width} + {15'd0, pad, 1'b0} >= {15'd0, kw};
    wire [15:0] in_ho = (stride == 2'd2 ? h_span[16:1] : h_span[15:0]) + 1'b1;
    wire [15:0] in_wo = (stride == 2'd2 ? w_span[16:1] : w_span[15:0]) + 1'b1;
    wire [31:0] in_img_pos = in_ho * in_wo;
    wire [47:0] in_pos = in_img_pos * {16'd0, batch};
    wire [31:0] in_rows = batch * height;
    wire [31:0] in_bc = {{(32-`CPT_BITS_W){1'b0}}, bits} * {16'd0, channels};
    wire [63:0] in_words = in_rows * in_bc;
    wire [31:0] in_row_bits = width * cp;
    reg  [4:0]  in_lcp;                                 // log2 cp (cp a power of two)
    reg  [3:0]  in_lp;                                  // log2 P: the smallest l >= 3 with W <= 2^l (W <= D)
    integer q;
    always @* begin
        in_lcp = 5'd0;
        for (q = 0; q < 16; q = q + 1)
            if (cp[q]) in_lcp = q[4:0];
        in_lp = LD_X;
        for (q = LD; q >= 3; q = q - 1)
            if ({16'd0, width} <= (32'd1 << q)) in_lp = q[3:0];
    end
    wire [3:0]  in_lr = LD_X - in_lp;                   // log2 R
    wire [15:0] in_rmask = ~(16'hffff << in_lr);        // R - 1
    wire        in_fast = stride == 2'd1 && width == in_wo && height == in_ho && width == (16'd1 << in_lp)
                          && (height & in_rmask) == 16'd0;
    wire [31:0] in_groups = (in_rows + {16'd0, in_rmask}) >> in_lr;
    wire [15:0] in_cc = (channels + CB_X[15:0] - 1'b1) >> LCB;   // channel rows per bank and (group, plane)
    wire [31:0] in_bcc = {{(32-`CPT_BITS_W){1'b0}}, bits} * {16'd0, in_cc};
    wire bad = cp == 0 || (cp & (cp - 1'b1)) != 0 || channels == 0 || channels > cp || batch == 0
               || width == 0 || width > D_X || in_wo > D_X || height == 0 || kh == 0 || kw == 0 || !fits
               || (stride != 2'd1 && stride != 2'd2) || bits == 0 || bits > OP_BITS_X
               || in_row_bits > MRB_X || in_words > {32'd0, BUF_X} || in_pos >= {16'd0, POS_X};

    reg             active;
    reg [15:0]      batch_r, chan_r, height_r, ho_r, wo_r;
    reg [`CPT_BITS_W-1:0] bits_r;
    reg [4:0]       lcp;
    reg [3:0]       lp, lr;                             // log2 P, log2 R
    reg             fast;                               // whole words a cycle
    reg [LMR:0]     row_words;                          // ceil(W Cp / D)
    reg [D-1:0]     wmask, womask;                      // W and Wo low bits
    reg [31:0]      nh;                                 // N H: rows of the chunk
    reg [31:0]      groups;                             // ceil(N H / R)
    reg [15:0]      cc;                                 // ceil(C / CB)
    reg [31:0]      bcc;                                // bits cc: words of a group pair per bank
    reg [1:0]       s_r;
    reg             pad_r;

    always @(posedge clk) begin
        if (rst) begin
            active <= 1'b0;
            geom_err <= 1'b0;
        end else if (start) begin
            active <= !bad;
            geom_err <= bad;
        end
        if (start) begin
            batch_r <= batch;
            chan_r <= channels;
            height_r <= height;
            ho_r <= in_ho;
            wo_r <= in_wo;
            bits_r <= bits;
            lcp <= in_lcp;
            lp <= in_lp;
            lr <= in_lr;
            fast <= in_fast;
            row_words <= {{LD{1'b0}}, in_row_bits[LMR:LD]} + {{LMR{1'b0}}, in_row_bits[LD-1:0] != 0};
            wmask <= ~({D{1'b1}} << width);
            womask <= ~({D{1'b1}} << in_wo);
            nh <= in_rows;
            groups <= in_groups;
            cc <= in_cc;
            bcc <= in_bcc;
            s_r <= stride;
            pad_r <= pad;
        end
    end

    // ---------------------------------------------------------------- write side: stage, then corner-turn
    // Two registers, so that the next row-plane streams in while one is turned: a row-plane is staged in
    // stg_in and moves to stg as the previous one's turn ends (or at once when none is being turned).
    reg [MAX_ROW_BITS-1:0] stg_in;                      // the row-plane streaming in
    reg [MAX_ROW_BITS-1:0] stg;                         // the row-plane turned; shifts right CB bits per cycle
    reg [LMR:0]            wr_word;                     // staging: words of the row-plane in
    reg                    staged;                      // stg_in holds a whole row-plane, waiting for stg
    reg [31:0]             st_count;                    // row-planes staged
    reg [31:0]             planes;                      // N H bits: row-planes of the chunk
    reg                    turning;                     // writing stg's channel rows
    reg [15:0]             wr_c;                        // the turn cycle's first channel (a multiple of CB)
    reg [`CPT_BITS_W-1:0]  wr_p;                        // the turned row-plane's plane
    reg [31:0]             wr_rb;                       // its chunk row n H + y
    assign loaded = active && wr_rb == nh;
    assign s_ready = active && !start && !staged && st_count != planes;
    wire wr = s_valid && s_ready;
    wire wr_last = wr && wr_word == row_words - 1'b1;   // a row-plane's last word
    wire turn_done = turning && {1'b0, wr_c} + CB_X[16:0] >= {1'b0, chan_r};
    reg [MAX_ROW_BITS-1:0] stg_in_w;                    // stg_in with this cycle's word
    always @* begin
        stg_in_w = stg_in;
        stg_in_w[{wr_word[LMR-LD-1:0], {LD{1'b0}}} +: D] = s_data;
    end

    // channel rows wr_c + k of the staged row-plane (stg already shifted by wr_c): bit x = stg[x Cp + k]
    reg [CB*D-1:0] turned;
    integer x, l, k;
    always @* begin
        turned = {(CB*D){1'b0}};
        // (the & only keeps the untaken selects' constant index in range, which Yosys warns about)
        for (k = 0; k < CB; k = k + 1)
            for (x = 0; x < D; x = x + 1)
                for (l = 0; l <= LMR; l = l + 1)
                    if ((x << l) + k < MAX_ROW_BITS && lcp == l[4:0])
                        turned[k*D + x] = stg[((x << l) + k) & (MAX_ROW_BITS - 1)] & wmask[x];
    end

    // where the turned rows go: group, slot, word address, the slot's bytes and bits
    wire [31:0]    wr_g = wr_rb >> lr;
    wire [31:0]    wr_slot = wr_rb & ~(32'hffffffff << lr);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]    wr_addr = ((wr_g >> 1) * {{(32-`CPT_BITS_W){1'b0}}, bits_r} + {{(32-`CPT_BITS_W){1'b0}}, wr_p})
                             * {16'd0, cc} + {16'd0, wr_c >> LCB};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [D/8-1:0] wr_bytes = ~({(D/8){1'b1}} << (16'd1 << (lp - 4'd3))) << (wr_slot[15:0] << (lp - 4'd3));
    wire [31:0]    wr_shift = wr_slot << lp;

    always @(posedge clk) begin
        if (start) planes <= in_rows * {{(32-`CPT_BITS_W){1'b0}}, bits};
        if (rst || start) begin
            wr_word <= 0;
            staged <= 1'b0;
            st_count <= 0;
            turning <= 1'b0;
            wr_c <= 0;
            wr_p <= 0;
            wr_rb <= 0;
        end else begin
            if (wr) begin
                stg_in <= stg_in_w;
                wr_word <= wr_last ? {(LMR+1){1'b0}} : wr_word + 1'b1;
            end
            if (wr_last) st_count <= st_count + 1'b1;
            if (turning && !turn_done) begin
                stg <= stg >> CB;
                wr_c <= wr_c + CB_X[15:0];
            end
            if (turn_done) begin
                wr_c <= 0;
                if (wr_p != bits_r - 1'b1) begin
                    wr_p <= wr_p + 1'b1;
                end else begin
                    wr_p <= 0;
                    wr_rb <= wr_rb + 1'b1;
                end
            end
            if (!turning || turn_done) begin            // stg is free: the waiting or the arriving row-plane
                if (staged) begin
                    stg <= stg_in;
                    staged <= 1'b0;
                    turning <= 1'b1;
                end else if (wr_last) begin
                    stg <= stg_in_w;
                    turning <= 1'b1;
                end else begin
                    turning <= 1'b0;
                end
            end else if (wr_last) begin
                staged <= 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- request sequencer
    // IDLE -> DIV (q = (w0 D) div Wo, r = its remainder) -> DIV (n = q div Ho, ho = q mod Ho) -> BASE -> RUN
    localparam [2:0] R_IDLE = 3'd0, R_DIV1 = 3'd1, R_DIV2 = 3'd2, R_BASE = 3'd3, R_RUN = 3'd4;
    reg [2:0]          state;
    reg [CHUNK_POS_W-1:0]    dnum, dquo;                // the divider: numerator shifting out, quotient in
    reg [15:0]         drem, dden;
    reg [4:0]          dstep;
    reg [15:0]         first_off;                       // (w0 D) mod Wo: bits of the first segment before word w0
    reg [1:0]          ri;
    reg [LCB-1:0]      c_lo;                            // the request's channel bank: c mod CB
    reg [31:0]         pcc;                             // p cc + c div CB: its word in a group pair of a bank
    reg [15:0]         n, ho;                           // segments: next output row
    reg signed [HW-1:0] ys;                             // its input row: ho s - pad + i
    reg signed [31:0]  rb;                              // n H + ys: its input row in the chunk
    reg                seg_end;                         // every output row issued
    reg [15:0]         left;                            // words of the request still to hand out
    // the tap's column treatment, constant in a request: stride-2 parity, one left shift, right shift 0..2
    reg                odd_cols, shl1;
    reg [1:0]          shr;
    // whole words: the group of the next word, its first output row's ho, words still to read, the funnel shift,
    // the masks' cases (top: slot 0 of an image's row 0 reads row -1; bottom: slot R - 1 of row Ho - 1 reads
    // row H; left/right: column 0 / W - 1 reads outside the row)
    reg signed [31:0]  fg;
    reg [15:0]         fho, fleft, fword;               // (fword: the next word's index in the A row)
    reg signed [17:0]  f_offw;                          // floor(off / D)
    reg [LD-1:0]       f_sh;                            // off mod D
    reg                f_top, f_bot, f_left, f_right;

    wire signed [2:0] col_off = $signed({1'b0, rq_j}) - $signed({2'b0, pad});   // j - pad: -1..2
    wire signed [2:0] row_off = $signed({1'b0, rq_i}) - $signed({2'b0, pad});   // i - pad: -1..2
    wire [16:0] rem_next = {drem, dnum[CHUNK_POS_W-1]};
    wire        rem_ge = rem_next >= {1'b0, dden};
    wire [16:0] rem_sub = rem_next - {1'b0, dden};
    // off = (i - pad) W + j - pad on the whole-word path (W = P, |i - pad| <= 1)
    wire signed [17:0] w_s = $signed({2'b0, 16'd1 << lp});
    wire signed [17:0] off = (row_off < 0 ? -w_s : row_off > 0 ? w_s : 18'sd0) + {{15{col_off[2]}}, col_off};
    wire signed [17:0] off_w = off >>> LD;

    wire [31:0] rq_c_x = {16'd0, rq_c};
    wire [31:0] pccf = {{(32-`CPT_BITS_W){1'b0}}, rq_plane} * {16'd0, cc} + (rq_c_x >> LCB);
    // input row of output row 0: i - pad
    wire signed [HW-1:0] y_first = $signed({{(HW-2){1'b0}}, ri}) - $signed({{(HW-1){1'b0}}, pad_r});
    reg  [15:0] m_word_next;
    reg  pend;                                          // the issued read's data waits for placement
    wire take;
    wire finish;                                        // segments: placement hands out the request's last word
    wire issue_seg = state == R_RUN && !fast && !seg_end && !finish && (!pend || take);
    wire issue_word = state == R_RUN && fast && fleft != 0 && (!pend || take);
    wire issue = issue_seg || issue_word;
    wire row_in = ys >= 0 && ys < $signed({{(HW-16){1'b0}}, height_r});
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] nh_q = {16'd0, dquo[15:0]} * {16'd0, height_r};
    /* verilator lint_on UNUSEDSIGNAL */
    wire signed [HW-1:0] y0 = $signed({2'b0, (s_r == 2'd2 ? {drem[14:0], 1'b0} : drem)})
                              - $signed({{(HW-1){1'b0}}, pad_r}) + $signed({{(HW-2){1'b0}}, ri});
    wire [15:0] fho_next = fho + (16'd1 << lr);         // the next word's first output row (R rows on)

    always @(posedge clk) begin
        if (rst || start) begin
            state <= R_IDLE;
        end else begin
            case (state)
                R_IDLE: if (rq_valid && rq_ready) begin
                    dnum <= {{(CHUNK_POS_W-16){1'b0}}, rq_word0} << LD;
                    dden <= wo_r;
                    drem <= 0;
                    dstep <= 0;
                    ri <= rq_i;
                    c_lo <= rq_c[LCB-1:0];
                    pcc <= pccf;
                    odd_cols <= s_r == 2'd2 && col_off[0];
                    shl1 <= col_off == -3'sd1;
                    shr <= s_r == 2'd2 ? (col_off == 3'sd2 ? 2'd1 : 2'd0)
                                       : (col_off > 0 ? col_off[1:0] : 2'd0);
                    fleft <= rq_count;
                    fword <= rq_word0;
                    f_offw <= off_w;
                    f_sh <= off[LD-1:0];
                    f_top <= row_off < 0;
                    f_bot <= row_off > 0;
                    f_left <= col_off < 0;
                    f_right <= col_off > 0;
                    state <= R_DIV1;
                    if (rq_word0 == 16'd0) begin        // a whole row from word 0: output row (0, 0), no division
                        dquo <= 0;
                        drem <= 0;
                        first_off <= 0;
                        state <= R_BASE;
                        if (fast) begin                 // whole words: the first word's groups are known now
                            fg <= {{14{off_w[17]}}, off_w};
                            fho <= 0;
                            state <= R_RUN;
                        end
                    end
                end
                R_DIV1, R_DIV2: begin
                    // restoring division, one quotient bit a cycle
                    drem <= rem_ge ? rem_sub[15:0] : rem_next[15:0];
                    dquo <= {dquo[CHUNK_POS_W-2:0], rem_ge};
                    dnum <= dnum << 1;
                    dstep <= dstep + 1'b1;
                    if (dstep == POS_LAST) begin
                        dstep <= 0;
                        if (state == R_DIV1) begin
                            dnum <= {dquo[CHUNK_POS_W-2:0], rem_ge};
                            dden <= ho_r;
                            drem <= 0;
                            first_off <= rem_ge ? rem_sub[15:0] : rem_next[15:0];
                            state <= R_DIV2;
                        end else begin
                            dquo <= {dquo[CHUNK_POS_W-2:0], rem_ge};
                            state <= R_BASE;
                        end
                    end
                end
                R_BASE: begin                           // dquo = n, drem = ho
                    n <= dquo[15:0];
                    ho <= drem;
                    ys <= y0;
                    rb <= $signed(nh_q) + {{(32-HW){y0[HW-1]}}, y0};
                    seg_end <= 1'b0;
                    fg <= $signed({16'd0, fword}) + {{14{f_offw[17]}}, f_offw};
                    fho <= drem;
                    state <= R_RUN;
                end
                R_RUN: begin
                    if (issue_seg) begin
                        if (ho != ho_r - 1'b1) begin
                            ho <= ho + 1'b1;
                            ys <= ys + $signed({{(HW-2){1'b0}}, s_r});
                            rb <= rb + $signed({30'd0, s_r});
                        end else begin
                            ho <= 0;
                            n <= n + 1'b1;
                            ys <= y_first;
                            rb <= rb + $signed({30'd0, s_r}) + $signed({16'd0, height_r})
                                  - $signed({16'd0, ho_r} << (s_r == 2'd2));
                            if (n == batch_r - 1'b1) seg_end <= 1'b1;
                        end
                    end
                    if (issue_word) begin
                        fg <= fg + 1'b1;
                        fho <= fho_next == ho_r ? 16'd0 : fho_next;
                        fleft <= fleft - 1'b1;
                        fword <= fword + 1'b1;
                        // the last word read: the next request is taken while this one's words drain (each
                        // word carries what the data cycle needs)
                        if (fleft == 16'd1) state <= R_IDLE;
                    end
                    if (finish) state <= R_IDLE;
                end
                default: state <= R_IDLE;
            endcase
        end
    end
    assign rq_ready = loaded && !start && state == R_IDLE;

    // ---------------------------------------------------------------- the banks
    // group ga (the segment's row group, or the word's first group) and ga + 1, in the request's channel bank
    wire signed [31:0] ga = fast ? fg : rb >>> lr;
    wire signed [31:0] gb = ga + 1'b1;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] addr_a = ($unsigned(ga) >> 1) * bcc + pcc;
    wire [31:0] addr_b = ($unsigned(gb) >> 1) * bcc + pcc;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [NB*D-1:0] rdata;
    genvar gk;
    generate
        for (gk = 0; gk < NB; gk = gk + 1) begin : bank
            localparam integer CBANK = gk % CB;         // its channel bank
            localparam [31:0] GPAR32 = gk / CB;         // the bank's group parity
            localparam [31:0] CBANK32 = CBANK;
            localparam [0:0] GPAR = GPAR32[0];
            localparam [16:0] CBANK_X = CBANK32[16:0];
            wire [D/8-1:0] we = turning && GPAR == wr_g[0] && {1'b0, wr_c} + CBANK_X < {1'b0, chan_r}
                                ? wr_bytes : {(D/8){1'b0}};
            wire [D-1:0] wdata = turned[CBANK*D +: D] << wr_shift;
            wire [BAW-1:0] raddr = GPAR == ga[0] ? addr_a[BAW-1:0] : addr_b[BAW-1:0];
            sdp_ram_be #(.WIDTH(D), .DEPTH(BANK_WORDS), .AW(BAW)) ram (
                .clk(clk), .we(we), .waddr(wr_addr[BAW-1:0]), .wdata(wdata),
                .re(issue), .raddr(raddr), .rdata(rdata[gk*D +: D]));
        end
    endgenerate

    // what the data cycle needs of the read
    reg              d_ok;                              // segments: the read row lies inside the image
    reg              d_par;                             // group ga's parity
    reg [LD-1:0]     d_slot_sh;                         // segments: the row's slot, in bits
    reg              d_va, d_vb;                        // words: groups ga, ga + 1 lie inside the chunk
    reg              d_top, d_bot;                      // words: slot 0 / R - 1 reads outside the image
    reg [LCB-1:0]    d_clo;                             // the request's channel bank
    reg [LD-1:0]     d_sh;                              // words: the funnel shift
    reg              d_left, d_right;                   // words: column 0 / W - 1 masked
    reg [15:0]       d_word;                            // words: the word's index
    reg              d_last;                            // words: the request's last word
    always @(posedge clk)
        if (issue) begin
            d_clo <= c_lo;
            d_sh <= f_sh;
            d_left <= f_left;
            d_right <= f_right;
            d_word <= fword;
            d_last <= fleft == 16'd1;
            d_ok <= row_in;
            d_par <= ga[0];
            d_slot_sh <= (rb[LD-1:0] & ~({LD{1'b1}} << lr)) << lp;
            d_va <= fg >= 0 && $unsigned(fg) < groups;
            d_vb <= fg >= -1 && $unsigned(fg + 1'b1) < groups;
            d_top <= f_top && fho == 16'd0;
            d_bot <= f_bot && fho_next == ho_r;
        end
    wire [LCB:0] bank_a = {d_par, d_clo};
    wire [LCB:0] bank_b = {!d_par, d_clo};
    wire [D-1:0] q_a = rdata[bank_a*D +: D];
    wire [D-1:0] q_b = rdata[bank_b*D +: D];

    // ---------------------------------------------------------------- whole words: funnel and masks
    reg  [D-1:0] word_mask;
    integer b;
    always @* begin
        for (b = 0; b < D; b = b + 1) begin
            word_mask[b] = !((d_left && (b & ~(-1 << lp)) == 0) || (d_right && (b & ~(-1 << lp)) == (1 << lp) - 1)
                             || (d_top && b < (1 << lp)) || (d_bot && b >= D - (1 << lp)));
        end
    end
    wire [2*D-1:0] pair = {d_vb ? q_b : {D{1'b0}}, d_va ? q_a : {D{1'b0}}};
    wire [D-1:0]   whole = pair[{1'b0, d_sh} +: D] & word_mask;

    // ---------------------------------------------------------------- segments: slot, columns, placement
    wire [D-1:0] chrow = (q_a >> d_slot_sh) & wmask;
    reg [D-1:0] evens, odds;
    integer u;
    always @* begin
        evens = {D{1'b0}};
        odds = {D{1'b0}};
        for (u = 0; u < D / 2; u = u + 1) begin
            evens[u] = chrow[2*u];
            odds[u] = chrow[2*u+1];
        end
    end
    wire [D-1:0] cols = s_r != 2'd2 ? chrow : odd_cols ? odds : evens;
    wire [D-1:0] seg = d_ok ? (shl1 ? cols << 1 : cols >> shr) & womask : {D{1'b0}};

    reg  [2*D-1:0]      acc;                            // assembled bits: acc[0] is the next word's bit 0
    reg  signed [17:0]  seg_at;                         // where the next segment's bit 0 goes (may be < 0)
    wire signed [17:0]  wo_s = $signed({2'b0, wo_r});
    wire [2*D-1:0]      seg_w = {{D{1'b0}}, seg};
    wire [2*D-1:0]      placed = seg_at >= 0 ? acc | (seg_w << seg_at) : acc | (seg_w >> (-seg_at));
    wire signed [17:0]  seg_at_next = seg_at + wo_s;
    wire                full = fast || seg_at_next >= D_S;     // a whole word is one placement
    wire                out_free = !m_valid || m_ready;
    wire                flush = state == R_RUN && !fast && seg_end && !pend && left != 0;  // the last, partial word
    assign take = pend && (!full || out_free);
    wire                emit = (take && full) || (flush && out_free);
    assign finish = !fast && emit && left == 16'd1;

    always @(posedge clk) begin
        if (rst || start) begin
            pend <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            if (finish) pend <= 1'b0;                   // a read issued ahead is not needed
            else if (issue) pend <= 1'b1;
            else if (take) pend <= 1'b0;
            if (state == R_BASE) begin
                acc <= 0;
                seg_at <= -$signed({2'b0, first_off});
            end else if (take) begin
                acc <= seg_at_next >= D_S ? placed >> D : placed;
                seg_at <= seg_at_next >= D_S ? seg_at_next - D_S : seg_at_next;
            end
            if (m_valid && m_ready) m_valid <= 1'b0;
            if (state == R_IDLE && rq_valid && rq_ready) begin
                left <= rq_count;
                m_word_next <= rq_word0;
            end
            if (emit) begin
                m_valid <= 1'b1;
                m_data <= fast ? whole : take ? placed[D-1:0] : acc[D-1:0];
                m_word <= fast ? d_word : m_word_next;
                m_last <= fast ? d_last : left == 16'd1;
                m_word_next <= m_word_next + 1'b1;
                left <= left - 1'b1;
            end
        end
    end

    wire unused = &{1'b0, in_img_pos, in_pos, in_words[63:32], in_bc, in_row_bits, batch_r, groups[31:16],
                    dnum[CHUNK_POS_W-2:0], dquo[CHUNK_POS_W-1:16], drem[15], rem_sub[16], h_span[0], w_span[0],
                    wr_slot[31:16], wr_shift[31:LD], n};
endmodule

`default_nettype wire
