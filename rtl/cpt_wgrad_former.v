// Weight-gradient shift/mask former: the X chunk stored corner-turned, and the read side that forms the A rows
// of a weight-gradient GEMM (docs/architecture.md, "Weight gradient: chunks, corner turn, shift/mask former").
//
// A self-contained unit of the convolution engine; cpt_wgrad_walker uses two (X, and E as a 1x1 kernel).  Reference:
// cpt_hw.hw.conv_wgrad_former (bit-exact); functional reference: hls/cpt_conv_read.h, form_shift_mask.
//
// Write side: the chunk's row-planes (batch whole images) as the reader delivers them, in DDR order (image n,
// row y, plane p, then row_words = ceil(W Cp / D) words), one D-bit word per s_valid && s_ready.  A row-plane
// is gathered in a staging register and then corner-turned into C channel rows of W position bits (bit x of
// channel row (n, y, p, c) = bit x Cp + c of the row-plane), one buffer word per channel row and cycle, while
// s_ready is low.  Channel row (n, y, p, c) lives at word ((n H + y) bits + p) C + c.
//
// Read side: once the whole chunk is stored, a request (tap i, j; channel c; plane p; words w0 .. w0 +
// count - 1) emits those words of A row (i, j, c, p): bit t mod D of word t div D is bit p of X[n, c,
// ho s - pad + i, wo s - pad + j] for output position t = (n Ho + ho) Wo + wo, zero where the tap falls
// outside the image.  Per output row (n, ho) one buffer read gives the input row's channel row; the segment
// is its even or odd columns (stride 2, fixed wiring), shifted by the tap's column offset (zeros shifted in
// at the row ends), masked to Wo bits (all zero for a row outside the image) and placed after the previous
// segment in a 2D-bit assembly register, which hands a word to the output register whenever one is full.
//
// Rate: one output row (segment) per cycle, i.e. one A word a cycle when Wo = D and Wo / D words a cycle
// below; a request first spends 2 CHUNK_POS_W + 3 cycles finding its first output row ((w0 D) div Wo, then
// div Ho) with one restoring divider, except one that starts at word 0 (the weight-gradient walker's: whole
// rows), whose first output row is (0, 0).  Geometry inputs are sampled by `start` and must not change until the
// chunk's requests are done; requests must be legal (i < kh, j < kw, c < C, p < bits, w0 + count <= the
// row's ceil(N Ho Wo / D) words).

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_wgrad_former #(
    parameter integer D = `CPT_D,               // config dot_width: bits of a row-plane word, a channel row, an A word
    parameter integer OP_BITS = `CPT_OP_BITS,   // config: planes of a code at most
    parameter integer MAX_ROW_BITS = 2048,      // W Cp of the widest row-plane: the staging register
    parameter integer BUF_WORDS = 4096          // channel rows the buffer holds: N H bits C at most
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
    localparam integer AW = $clog2(BUF_WORDS);
    localparam integer CHUNK_POS_W = 20;                      // output positions N Ho Wo < 2^20
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
        if (BUF_WORDS < 2 || (1 << AW) != BUF_WORDS) begin
            $display("%m: error: BUF_WORDS = %0d must be a power of two >= 2", BUF_WORDS);
            $finish;
        end
    end

    // ---------------------------------------------------------------- geometry, sampled on start
    localparam [15:0] D_X = D[15:0];
    localparam [`CPT_BITS_W-1:0] OP_BITS_X = OP_BITS[`CPT_BITS_W-1:0];
    localparam [31:0] MRB_X = MAX_ROW_BITS;
    localparam [31:0] BUF_X = BUF_WORDS;
    localparam [31:0] POS_X = 32'd1 << CHUNK_POS_W;

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
    integer q;
    always @* begin
        in_lcp = 5'd0;
        for (q = 0; q < 16; q = q + 1)
            if (cp[q]) in_lcp = q[4:0];
    end
    wire bad = cp == 0 || (cp & (cp - 1'b1)) != 0 || channels == 0 || channels > cp || batch == 0
               || width == 0 || width > D_X || in_wo > D_X || height == 0 || kh == 0 || kw == 0 || !fits
               || (stride != 2'd1 && stride != 2'd2) || bits == 0 || bits > OP_BITS_X
               || in_row_bits > MRB_X || in_words > {32'd0, BUF_X} || in_pos >= {16'd0, POS_X};

    reg             active;
    reg [15:0]      batch_r, chan_r, height_r, ho_r, wo_r;
    reg [4:0]       lcp;
    reg [LMR:0]     row_words;                          // ceil(W Cp / D)
    reg [D-1:0]     wmask, womask;                      // W and Wo low bits
    reg [AW:0]      bc;                                 // bits C: channel rows per input row
    reg [AW:0]      total;                              // N H bits C: channel rows of the chunk
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
            lcp <= in_lcp;
            row_words <= {{LD{1'b0}}, in_row_bits[LMR:LD]} + {{LMR{1'b0}}, in_row_bits[LD-1:0] != 0};
            wmask <= ~({D{1'b1}} << width);
            womask <= ~({D{1'b1}} << in_wo);
            bc <= in_bc[AW:0];
            total <= in_words[AW:0];
            s_r <= stride;
            pad_r <= pad;
        end
    end

    // ---------------------------------------------------------------- write side: stage, then corner-turn
    reg [MAX_ROW_BITS-1:0] stg;                         // the row-plane; shifts right one bit per channel row
    reg [LMR:0]            wr_word;                     // staging: words of the row-plane in
    reg                    turning;                     // writing the row-plane's channel rows
    reg [15:0]             wr_c;
    reg [AW:0]             wa;                          // channel rows written
    assign loaded = active && wa == total;
    assign s_ready = active && !start && !turning && !loaded;
    wire wr = s_valid && s_ready;

    // channel row of the staged row-plane's channel 0 (stg already shifted by c): bit x = stg[x Cp]
    reg [D-1:0] turned;
    integer x, l;
    always @* begin
        turned = {D{1'b0}};
        // (the & only keeps the untaken selects' constant index in range, which Yosys warns about)
        for (x = 0; x < D; x = x + 1)
            for (l = 0; l <= LMR; l = l + 1)
                if ((x << l) < MAX_ROW_BITS && lcp == l[4:0]) turned[x] = stg[(x << l) & (MAX_ROW_BITS - 1)];
        turned = turned & wmask;
    end

    always @(posedge clk) begin
        if (rst || start) begin
            wr_word <= 0;
            turning <= 1'b0;
            wr_c <= 0;
            wa <= 0;
        end else if (turning) begin
            stg <= stg >> 1;
            wa <= wa + 1'b1;
            if (wr_c != chan_r - 1'b1) begin
                wr_c <= wr_c + 1'b1;
            end else begin
                wr_c <= 0;
                turning <= 1'b0;
            end
        end else if (wr) begin
            stg[{wr_word[LMR-LD-1:0], {LD{1'b0}}} +: D] <= s_data;
            if (wr_word != row_words - 1'b1) begin
                wr_word <= wr_word + 1'b1;
            end else begin
                wr_word <= 0;
                turning <= 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- request sequencer
    // IDLE -> DIV (q = (w0 D) div Wo, r = its remainder) -> DIV (n = q div Ho, ho = q mod Ho) -> BASE -> RUN
    localparam [2:0] R_IDLE = 3'd0, R_DIV1 = 3'd1, R_DIV2 = 3'd2, R_BASE = 3'd3, R_RUN = 3'd4;
    reg [2:0]          state;
    reg [CHUNK_POS_W-1:0]    dnum, dquo;                      // the divider: numerator shifting out, quotient in
    reg [15:0]         drem, dden;
    reg [4:0]          dstep;
    reg [15:0]         first_off;                       // (w0 D) mod Wo: bits of the first segment before word w0
    reg [1:0]          ri;
    reg [AW:0]         pc;                              // p C + c: the channel row within an input row
    reg [15:0]         n, ho;                           // next segment's output row
    reg signed [HW-1:0] ys;                             // its input row: ho s - pad + i
    reg signed [31:0]  rb;                              // n H + ys: its input row in the chunk
    reg                seg_end;                         // every output row issued
    reg [15:0]         left;                            // words of the request still to hand out
    // the tap's column treatment, constant in a request: stride-2 parity, one left shift, right shift 0..2
    reg                odd_cols, shl1;
    reg [1:0]          shr;

    wire signed [2:0] col_off = $signed({1'b0, rq_j}) - $signed({2'b0, pad});   // j - pad: -1..2
    wire [16:0] rem_next = {drem, dnum[CHUNK_POS_W-1]};
    wire        rem_ge = rem_next >= {1'b0, dden};
    wire [16:0] rem_sub = rem_next - {1'b0, dden};

    wire [15:0] rq_plane_x = {{(16-`CPT_BITS_W){1'b0}}, rq_plane};
    // input row of output row 0: i - pad
    wire signed [HW-1:0] y_first = $signed({{(HW-2){1'b0}}, ri}) - $signed({{(HW-1){1'b0}}, pad_r});
    reg  [15:0] m_word_next;
    reg  pend;                                          // the issued read's data waits for placement
    wire take;
    wire finish;                                        // placement hands out the request's last word
    wire issue = state == R_RUN && !seg_end && !finish && (!pend || take);
    wire row_in = ys >= 0 && ys < $signed({{(HW-16){1'b0}}, height_r});
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] raddr_full = rb * $signed({{(31-AW){1'b0}}, bc}) + $signed({{(31-AW){1'b0}}, pc});
    wire [31:0] pcf = {16'd0, rq_plane_x} * {16'd0, chan_r} + {16'd0, rq_c};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [31:0] nh = {16'd0, dquo[15:0]} * {16'd0, height_r};
    wire signed [HW-1:0] y0 = $signed({2'b0, (s_r == 2'd2 ? {drem[14:0], 1'b0} : drem)})
                              - $signed({{(HW-1){1'b0}}, pad_r}) + $signed({{(HW-2){1'b0}}, ri});

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
                    pc <= pcf[AW:0];
                    odd_cols <= s_r == 2'd2 && col_off[0];
                    shl1 <= col_off == -3'sd1;
                    shr <= s_r == 2'd2 ? (col_off == 3'sd2 ? 2'd1 : 2'd0)
                                       : (col_off > 0 ? col_off[1:0] : 2'd0);
                    state <= R_DIV1;
                    if (rq_word0 == 16'd0) begin        // a whole row from word 0: output row (0, 0), no division
                        dquo <= 0;
                        drem <= 0;
                        first_off <= 0;
                        state <= R_BASE;
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
                    rb <= $signed(nh) + {{(32-HW){y0[HW-1]}}, y0};
                    seg_end <= 1'b0;
                    state <= R_RUN;
                end
                R_RUN: begin
                    if (issue) begin
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
                    if (finish) state <= R_IDLE;
                end
                default: state <= R_IDLE;
            endcase
        end
    end
    assign rq_ready = loaded && !start && state == R_IDLE;

    // ---------------------------------------------------------------- the buffer
    wire [D-1:0] rdata;
    sdp_ram #(.WIDTH(D), .DEPTH(BUF_WORDS), .AW(AW)) buffer (
        .clk(clk), .we(turning), .waddr(wa[AW-1:0]), .wdata(turned),
        .re(issue), .raddr(raddr_full[AW-1:0]), .rdata(rdata));
    reg d_ok;                                           // the read row lies inside the image
    always @(posedge clk)
        if (issue) d_ok <= row_in;

    // ---------------------------------------------------------------- segment and placement
    reg [D-1:0] evens, odds;
    integer u;
    always @* begin
        evens = {D{1'b0}};
        odds = {D{1'b0}};
        for (u = 0; u < D / 2; u = u + 1) begin
            evens[u] = rdata[2*u];
            odds[u] = rdata[2*u+1];
        end
    end
    wire [D-1:0] cols = s_r != 2'd2 ? rdata : odd_cols ? odds : evens;
    wire [D-1:0] seg = d_ok ? (shl1 ? cols << 1 : cols >> shr) & womask : {D{1'b0}};

    reg  [2*D-1:0]      acc;                            // assembled bits: acc[0] is the next word's bit 0
    reg  signed [17:0]  off;                            // where the next segment's bit 0 goes (may be < 0)
    wire signed [17:0]  wo_s = $signed({2'b0, wo_r});
    wire [2*D-1:0]      seg_w = {{D{1'b0}}, seg};
    wire [2*D-1:0]      placed = off >= 0 ? acc | (seg_w << off) : acc | (seg_w >> (-off));
    wire signed [17:0]  off_next = off + wo_s;
    wire                full = off_next >= D_S;
    wire                out_free = !m_valid || m_ready;
    wire                flush = state == R_RUN && seg_end && !pend && left != 0;   // the chunk's last, partial word
    assign take = pend && (!full || out_free);
    wire                emit = (take && full) || (flush && out_free);
    assign finish = emit && left == 16'd1;

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
                off <= -$signed({2'b0, first_off});
            end else if (take) begin
                acc <= full ? placed >> D : placed;
                off <= full ? off_next - D_S : off_next;
            end
            if (m_valid && m_ready) m_valid <= 1'b0;
            if (state == R_IDLE && rq_valid && rq_ready) begin
                left <= rq_count;
                m_word_next <= rq_word0;
            end
            if (emit) begin
                m_valid <= 1'b1;
                m_data <= take ? placed[D-1:0] : acc[D-1:0];
                m_word <= m_word_next;
                m_last <= left == 16'd1;
                m_word_next <= m_word_next + 1'b1;
                left <= left - 1'b1;
            end
        end
    end

    wire unused = &{1'b0, in_img_pos, in_pos, in_rows, in_words[63:AW+1], in_bc[31:AW+1], in_row_bits,
                    dnum[CHUNK_POS_W-2:0], dquo[CHUNK_POS_W-1:16], drem[15], rem_sub[16], nh, h_span[0], w_span[0]};
endmodule

`default_nettype wire
