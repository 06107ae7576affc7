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
// outside the image.  The read side is LANES cpt_wgrad_lane units over the shared banks, each with its own
// request and output ports; lane l takes the channels c with c mod LANES = l, so two lanes never read one bank.
// Two ways, chosen per chunk:
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
// Two bank sets (cross-call prefetch, docs/rtl.md "Weight-gradient prefetch"): each bank holds two chunks of
// BANK_WORDS words, one per set.  The read side reads set rd_set; the write side takes the call's own chunk
// (`own`) into rd_set and then, with `pf`, the next call's chunk, streamed behind it, into the other set.  A
// call that hits the previous call's hint starts with own = 0: rd_set flips to the set the prefetch filled
// (so the chunk is loaded at once) and its own prefetch, if any, goes into the other one.  The sets persist
// across calls until rst; `wr_busy` is high while a row-plane the call expects is still to be stored.  `flip`
// (once the prefetched chunk is stored and no request is in flight) moves the read side to it within the call,
// so that the E former's user can read the next call's chunk early; that call's start then does not flip again.
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
    parameter integer BANK_WORDS = 2048,        // words of each bank: ceil(ceil(N H / R) / 2) bits ceil(C / CB) at most
    parameter integer CB = 2,                   // channel banks (a power of two >= 2): channel rows turned a cycle
    parameter integer LANES = 1                 // read lanes (a power of two dividing CB): lane l takes the
                                                // requests of channels c with c mod LANES = l
) (
    input  wire                   clk,
    input  wire                   rst,                // synchronous, active high

    // Geometry of the chunk, sampled on `start` (a pulse that also empties the buffer).
    input  wire                   start,
    input  wire                   own,                // the call's own chunk is streamed (0: the prefetched one)
    input  wire                   pf,                 // a prefetched chunk (the next call's) follows it
    input  wire                   flip,               // pulse: read the prefetched chunk from now on
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
    output wire                   wr_busy,            // row-planes of the call's chunks are still to be stored

    // Row-plane words in.
    input  wire                   s_valid,
    output wire                   s_ready,
    input  wire [D-1:0]           s_data,

    // Requests, per lane: words [rq_word0, rq_word0 + rq_count) of A row (rq_i, rq_j, rq_c), plane rq_plane.
    input  wire [LANES-1:0]                   rq_valid,
    output wire [LANES-1:0]                   rq_ready,
    input  wire [2*LANES-1:0]                 rq_i,
    input  wire [2*LANES-1:0]                 rq_j,
    input  wire [16*LANES-1:0]                rq_c,
    input  wire [`CPT_BITS_W*LANES-1:0]       rq_plane,
    input  wire [16*LANES-1:0]                rq_word0,
    input  wire [16*LANES-1:0]                rq_count,           // >= 1

    // A words out.
    output wire [LANES-1:0]       m_valid,
    input  wire [LANES-1:0]       m_ready,
    output wire [D*LANES-1:0]     m_data,
    output wire [16*LANES-1:0]    m_word,             // the word's index in the A row
    output wire [LANES-1:0]       m_last              // the request's last word
);
    localparam integer LD = $clog2(D);
    localparam integer LMR = $clog2(MAX_ROW_BITS);
    localparam integer LCB = $clog2(CB);
    localparam integer NB = 2 * CB;                     // banks: group parity x channel bank
    localparam integer BAW = $clog2(BANK_WORDS);       // a set's word address; the set is the bank's top bit
    localparam integer CHUNK_POS_W = 20;                // output positions N Ho Wo < 2^20

    initial begin
        if (D < 8 || (1 << LD) != D) begin
            $display("%m: error: D = %0d must be a power of two >= 8", D);
            $finish;
        end
        if (MAX_ROW_BITS < D || (1 << LMR) != MAX_ROW_BITS) begin
            $display("%m: error: MAX_ROW_BITS = %0d must be a power of two >= D (%0d)", MAX_ROW_BITS, D);
            $finish;
        end
        if (BANK_WORDS < 2) begin
            $display("%m: error: BANK_WORDS = %0d must be >= 2", BANK_WORDS);
            $finish;
        end
        if (CB < 2 || (1 << LCB) != CB) begin
            $display("%m: error: CB = %0d must be a power of two >= 2", CB);
            $finish;
        end
        if (LANES < 1 || CB % LANES != 0) begin
            $display("%m: error: LANES = %0d must divide CB = %0d", LANES, CB);
            $finish;
        end
    end

    // ---------------------------------------------------------------- geometry, sampled on start
    localparam [15:0] D_X = D[15:0];
    localparam [`CPT_BITS_W-1:0] OP_BITS_X = OP_BITS[`CPT_BITS_W-1:0];
    localparam [31:0] MRB_X = MAX_ROW_BITS;
    localparam [31:0] BANKW_X = BANK_WORDS;
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
    wire [63:0] in_bank = {32'd0, (in_groups + 1'b1) >> 1} * {32'd0, in_bcc};   // the fullest bank's words
    wire bad = cp == 0 || (cp & (cp - 1'b1)) != 0 || channels == 0 || channels > cp || batch == 0
               || width == 0 || width > D_X || in_wo > D_X || height == 0 || kh == 0 || kw == 0 || !fits
               || (stride != 2'd1 && stride != 2'd2) || bits == 0 || bits > OP_BITS_X
               || in_row_bits > MRB_X || in_bank > {32'd0, BANKW_X}
               || in_pos >= {16'd0, POS_X};

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
    reg                    turning;                     // writing stg's channel rows
    reg [15:0]             wr_c;                        // the turn cycle's first channel (a multiple of CB)
    reg [`CPT_BITS_W-1:0]  wr_p;                        // the turned row-plane's plane
    reg [31:0]             wr_rb;                       // its chunk row n H + y
    reg [31:0]             st_limit;                    // row-planes the call streams: (own + pf) planes
    reg                    rd_set;                      // the bank set the read side reads (kept across calls)
    reg                    wr_pf;                       // the write side stores the prefetched chunk
    reg                    rd_loaded;                   // the read set holds the call's chunk
    reg                    flipped;                     // `flip` came: the next start (a hit) keeps rd_set
    wire                   wr_set = rd_set ^ wr_pf;
    assign loaded = active && rd_loaded;
    assign wr_busy = active && (st_count != st_limit || turning);
    assign s_ready = active && !start && !staged && st_count != st_limit;
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
        if (start)                                      // N H bits row-planes per chunk, own and prefetched
            st_limit <= !(own || pf) ? 32'd0 : (in_rows * {{(32-`CPT_BITS_W){1'b0}}, bits}) << (own && pf);
        if (rst) begin
            rd_set <= 1'b0;
            flipped <= 1'b0;
        end else if (start) begin
            if (!own && !flipped)
                rd_set <= !rd_set;                      // the previous call's prefetch: already stored
            flipped <= 1'b0;
        end else if (flip) begin
            rd_set <= !rd_set;
            flipped <= 1'b1;
        end
        if (rst || start) begin
            rd_loaded <= !rst && !own;
            wr_pf <= !rst && !own;
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
                end else if (wr_rb + 1'b1 == nh && !wr_pf) begin
                    wr_p <= 0;                          // the own chunk is stored: the prefetch follows
                    wr_rb <= 0;
                    wr_pf <= 1'b1;
                    rd_loaded <= 1'b1;
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

    // ---------------------------------------------------------------- the banks and the read lanes
    // bank (gp, cb) is read by lane cb mod LANES (its channels' class); lane l's data: the two banks of the
    // channel bank its request reads
    wire [NB*D-1:0] rdata;
    wire [LANES-1:0] rd_en;
    wire [LANES*LCB-1:0] rd_data_cb;
    wire [LANES*BAW-1:0] rd_addr_even, rd_addr_odd;
    genvar gk;
    generate
        for (gk = 0; gk < NB; gk = gk + 1) begin : bank
            localparam integer CBANK = gk % CB;         // its channel bank
            localparam integer LANE = CBANK % LANES;    // the lane that reads it
            localparam [31:0] GPAR32 = gk / CB;         // the bank's group parity
            localparam [31:0] CBANK32 = CBANK;
            localparam [0:0] GPAR = GPAR32[0];
            localparam [16:0] CBANK_X = CBANK32[16:0];
            wire [D/8-1:0] we = turning && GPAR == wr_g[0] && {1'b0, wr_c} + CBANK_X < {1'b0, chan_r}
                                ? wr_bytes : {(D/8){1'b0}};
            wire [D-1:0] wdata = turned[CBANK*D +: D] << wr_shift;
            wire [BAW-1:0] raddr = GPAR ? rd_addr_odd[LANE*BAW +: BAW] : rd_addr_even[LANE*BAW +: BAW];
            sdp_ram_be #(.WIDTH(D), .DEPTH(2 * (1 << BAW)), .AW(BAW + 1)) ram (
                .clk(clk), .we(we), .waddr({wr_set, wr_addr[BAW-1:0]}), .wdata(wdata),
                .re(rd_en[LANE]), .raddr({rd_set, raddr}), .rdata(rdata[gk*D +: D]));
        end
        for (gk = 0; gk < LANES; gk = gk + 1) begin : lane
            wire [LCB-1:0] cb = rd_data_cb[gk*LCB +: LCB];
            cpt_wgrad_lane #(.D(D), .CB(CB), .BAW(BAW)) rd (
                .clk(clk), .rst(rst), .start(start), .loaded(loaded),
                .fast(fast), .lp(lp), .lr(lr), .batch_r(batch_r), .height_r(height_r), .ho_r(ho_r), .wo_r(wo_r),
                .s_r(s_r), .pad_r(pad_r), .wmask(wmask), .womask(womask), .groups(groups), .cc(cc), .bcc(bcc),
                .rq_valid(rq_valid[gk]), .rq_ready(rq_ready[gk]), .rq_i(rq_i[2*gk +: 2]), .rq_j(rq_j[2*gk +: 2]),
                .rq_c(rq_c[16*gk +: 16]), .rq_plane(rq_plane[`CPT_BITS_W*gk +: `CPT_BITS_W]),
                .rq_word0(rq_word0[16*gk +: 16]), .rq_count(rq_count[16*gk +: 16]),
                .rd_en(rd_en[gk]), .rd_addr_even(rd_addr_even[gk*BAW +: BAW]),
                .rd_addr_odd(rd_addr_odd[gk*BAW +: BAW]), .rd_data_cb(rd_data_cb[gk*LCB +: LCB]),
                .q_even(rdata[{1'b0, cb}*D +: D]), .q_odd(rdata[{1'b1, cb}*D +: D]),
                .m_valid(m_valid[gk]), .m_ready(m_ready[gk]), .m_data(m_data[D*gk +: D]), .m_word(m_word[16*gk +: 16]),
                .m_last(m_last[gk]));
        end
    endgenerate

    wire unused = &{1'b0, in_img_pos, in_pos, in_row_bits, wr_slot[31:16], wr_shift[31:LD],
                    h_span[0], w_span[0]};
endmodule

`default_nettype wire
