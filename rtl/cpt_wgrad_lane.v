// One read lane of the weight-gradient former (rtl/cpt_wgrad_former.v, whose header describes the storage and
// the two ways a request is formed): a request sequencer with its divider, the bank reads of its channel's two
// group parities, and the whole-word funnel or the segment placement into its own output register.  The former
// builds one lane per channel bank class it serves (lane l: the channels c with c mod LANES = l), sharing the
// banks and the geometry the former samples.

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_wgrad_lane #(
    parameter integer D = `CPT_D,               // config dot_width
    parameter integer CB = 2,                   // the former's channel banks
    parameter integer BAW = 12                  // a bank address
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,              // the former's start: a new chunk
    input  wire                   loaded,             // the chunk is stored: requests are taken

    // the geometry the former sampled on start
    input  wire                   fast,               // whole words a cycle
    input  wire [3:0]             lp,                 // log2 P
    input  wire [3:0]             lr,                 // log2 R
    input  wire [15:0]            batch_r,
    input  wire [15:0]            height_r,
    input  wire [15:0]            ho_r,
    input  wire [15:0]            wo_r,
    input  wire [1:0]             s_r,
    input  wire                   pad_r,
    input  wire [D-1:0]           wmask,              // W low bits
    input  wire [D-1:0]           womask,             // Wo low bits
    input  wire [31:0]            groups,             // ceil(N H / R)
    input  wire [15:0]            cc,                 // ceil(C / CB)
    input  wire [31:0]            bcc,                // bits cc

    // requests: words [rq_word0, rq_word0 + rq_count) of A row (rq_i, rq_j, rq_c), plane rq_plane
    input  wire                   rq_valid,
    output wire                   rq_ready,
    input  wire [1:0]             rq_i,
    input  wire [1:0]             rq_j,
    input  wire [15:0]            rq_c,
    input  wire [`CPT_BITS_W-1:0] rq_plane,
    input  wire [15:0]            rq_word0,
    input  wire [15:0]            rq_count,

    // bank reads: one word of each group parity (of every channel bank the lane reads); the data a cycle later,
    // of the channel bank rd_data_cb
    output wire                   rd_en,
    output wire [BAW-1:0]         rd_addr_even,
    output wire [BAW-1:0]         rd_addr_odd,
    output wire [$clog2(CB)-1:0]  rd_data_cb,         // the channel bank of the data now read
    input  wire [D-1:0]           q_even,
    input  wire [D-1:0]           q_odd,

    // A words out
    output reg                    m_valid,
    input  wire                   m_ready,
    output reg  [D-1:0]           m_data,
    output reg  [15:0]            m_word,
    output reg                    m_last
);
    localparam integer LD = $clog2(D);
    localparam integer LCB = $clog2(CB);
    localparam integer CHUNK_POS_W = 20;                // output positions N Ho Wo < 2^20
    localparam integer HW = 18;                         // signed rows
    localparam [31:0] CHUNK_POS_LAST32 = CHUNK_POS_W - 1;
    localparam [4:0] POS_LAST = CHUNK_POS_LAST32[4:0];
    localparam [31:0] D32 = D;
    localparam signed [17:0] D_S = D32[17:0];

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

    wire signed [2:0] col_off = $signed({1'b0, rq_j}) - $signed({2'b0, pad_r}); // j - pad: -1..2
    wire signed [2:0] row_off = $signed({1'b0, rq_i}) - $signed({2'b0, pad_r}); // i - pad: -1..2
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

    // ---------------------------------------------------------------- bank reads
    // group ga (the segment's row group, or the word's first group) and ga + 1, in the request's channel bank:
    // the word of the even group goes to the even bank, the odd one's to the odd bank
    wire signed [31:0] ga = fast ? fg : rb >>> lr;
    wire signed [31:0] gb = ga + 1'b1;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] addr_a = ($unsigned(ga) >> 1) * bcc + pcc;
    wire [31:0] addr_b = ($unsigned(gb) >> 1) * bcc + pcc;
    /* verilator lint_on UNUSEDSIGNAL */
    assign rd_en = issue;
    assign rd_addr_even = ga[0] ? addr_b[BAW-1:0] : addr_a[BAW-1:0];
    assign rd_addr_odd = ga[0] ? addr_a[BAW-1:0] : addr_b[BAW-1:0];

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
    assign rd_data_cb = d_clo;
    wire [D-1:0] q_a = d_par ? q_odd : q_even;
    wire [D-1:0] q_b = d_par ? q_even : q_odd;

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

    wire unused = &{1'b0, dnum[CHUNK_POS_W-2:0], dquo[CHUNK_POS_W-1:16], drem[15], rem_sub[16], n, batch_r};
endmodule

`default_nettype wire
