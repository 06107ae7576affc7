// im2col former: a line-buffer ring of row-planes and the read side that forms the A rows of a convolution.
//
// The first block of the convolution engine (docs/architecture.md, "Convolution-native accelerator"; built
// so far: this unit, not yet connected to cpt_core).  Reference: cpt_hw.hw.conv_former (bit-exact).
//
// Write side: rows [row0, row1) of one image's row-planes as the reader delivers them (DDR order: row h, then
// plane p = 0..bits-1, then row_words = ceil(W Cp / D) words), one D-bit word per s_valid && s_ready; s_ready
// stays low after row row1 - 1, so the next image's words wait for the next `start`.  Requests must need no
// row outside [row0, row1) that lies inside the image (a band's rows, docs/ddr-layout.md).  Row h goes to ring slot
// h mod RING; the stream is held back (s_ready low) while the row would overwrite one the current request
// still needs, so the reader never outruns the former.
//
// Read side: a request (ho, wo0, plane p, count <= 16) asks for the A rows of output pixels (ho, wo0 ..
// wo0 + count - 1) of one output row (a 16-row A tile that crosses output rows is asked for in pieces).
// For pixel (ho, wo) the A row is, for kernel rows i = 0..kh-1, the kw Cp-bit slice at bit (wo s - pad_w) Cp
// of row-plane (ho s - pad_h + i, p), concatenated and zero-padded to Kw = ceil(kh kw Cp / D) words; taps left
// or right of the row and rows above or below the image give zeros made here (padding is never stored).
// pad_h, pad_w are the row and column offsets, -1..2: a forward call's padding (0, 1) on both, an input
// gradient at stride 1 (a forward convolution of E with the rotated kernel) kh - 1 - padding and
// kw - 1 - padding.
// Words leave pixel by pixel, word 0 first, with the pixel's index in the request and the word's in the row.
//
// Two forms of Cp (conv_model.channel_pitch) take two paths through the same pipeline:
//   * Cp < D (a power of two): a pixel's kh slices are read in one cycle -- the ring is kept in KMAX copies,
//     one read per kernel row, each split into even and odd words so that the two words a slice may straddle
//     come out together -- funnel-shifted, masked per tap and concatenated into one A row of Kw <= 5 words;
//   * Cp >= D (a multiple of D): every A word is one ring word (or zeros), read one per cycle.
// Rate: one A word per cycle in either path while the output is taken (the next pixel's RAM read overlaps
// the current row's words); a request costs 2 more cycles before its first read (accept, rows-ready check).
// The KMAX copies triple the ring's BRAM: the price of one-cycle pixels at narrow Cp (3 x 3, Cp = 4: Kw = 1);
// the engine's banked tensor buffer (rows h mod 3 in separate banks) would drop it.
//
// Requests must come in nondecreasing ho (the ring releases the rows below the newest request's first row)
// and geometry inputs are sampled by `start` and must not change until the image is done.

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_im2col_former #(
    parameter integer D = `CPT_D,               // config dot_width: bits of a row-plane word and of an A word
    parameter integer OP_BITS = `CPT_OP_BITS,   // config: planes of a code at most (a ring slot holds them all)
    parameter integer MAX_ROW_BITS = 2048,      // W Cp of the widest row-plane: ring slot size per plane
    parameter integer RING = 4                  // ring depth in rows: a power of two >= KMAX (> KMAX to prefetch)
) (
    input  wire                   clk,
    input  wire                   rst,                // synchronous, active high

    // Geometry of the image, sampled on `start` (a pulse that also empties the ring).
    input  wire                   start,
    input  wire [15:0]            cp,                 // channel pitch in bits: a power of two < D or a multiple of D
    input  wire [15:0]            width,              // W: pixels per row
    input  wire [15:0]            height,             // H: rows
    input  wire [1:0]             kh,                 // kernel rows, 1..3
    input  wire [1:0]             kw,                 // kernel columns, 1..3
    input  wire [1:0]             stride,             // 1 or 2
    input  wire signed [2:0]      pad_h,              // row offset: ho s - pad_h is the first kernel row's row, -1..2
    input  wire signed [2:0]      pad_w,              // column offset, likewise, -1..2
    input  wire [`CPT_BITS_W-1:0] bits,               // planes per row, 1..OP_BITS
    input  wire [15:0]            row0,               // first row streamed (0: the whole image)
    input  wire [15:0]            row1,               // rows streamed end before this one (height: all)
    output reg                    geom_err,           // the sampled geometry is not one this unit takes

    // Row-plane words in.
    input  wire                   s_valid,
    output wire                   s_ready,
    input  wire [D-1:0]           s_data,

    // Requests: count pixels of output row ho from column wo0 on, plane `plane`.
    input  wire                   rq_valid,
    output wire                   rq_ready,
    input  wire [15:0]            rq_ho,
    input  wire [15:0]            rq_wo0,
    input  wire [`CPT_BITS_W-1:0] rq_plane,
    input  wire [4:0]             rq_count,           // 1..16, wo0 + count <= Wo

    // A words out.
    output wire                   m_valid,
    input  wire                   m_ready,
    output wire [D-1:0]           m_data,
    output wire [3:0]             m_pixel,            // pixel of the request (0 = wo0)
    output wire [$clog2(9 * (MAX_ROW_BITS / D))-1:0] m_word,   // word of the pixel's A row (0..Kw-1)
    output wire                   m_last              // the request's last word
);
    localparam integer KMAX = 3;                            // kernel side at most: ring copies, slices
    localparam integer LD = $clog2(D);
    localparam integer MAX_RW = MAX_ROW_BITS / D;           // words of a ring slot's plane
    localparam integer LRW = $clog2(MAX_RW);
    localparam integer LPL = (OP_BITS > 1) ? $clog2(OP_BITS) : 1;
    localparam integer LR = $clog2(RING);
    localparam integer BANK_AW = LR + LPL + LRW - 1;        // an even/odd bank: word index without its LSB
    localparam integer ROW_WORDS_MAX = (KMAX * KMAX * D / 2 + D - 1) / D;  // Kw of the Cp < D path (Cp <= D/2)
    localparam integer RW = ROW_WORDS_MAX * D;              // the A row register
    localparam integer WORD_W = $clog2(KMAX * KMAX * MAX_RW);   // Kw of the Cp >= D path: kh kw Cp / D words (m_word)
    localparam integer PW = ($clog2(MAX_ROW_BITS) > 14) ? $clog2(MAX_ROW_BITS) + 4 : 18;  // signed row positions
    localparam integer HW = 18;                             // signed rows/columns: 16-bit index x 2 - 1

    initial begin
        if (D < 8 || (1 << LD) != D) begin
            $display("%m: error: D = %0d must be a power of two >= 8", D);
            $finish;
        end
        if (MAX_ROW_BITS % D != 0 || MAX_RW < 2 || (1 << LRW) != MAX_RW) begin
            $display("%m: error: MAX_ROW_BITS = %0d must be D (%0d) times a power of two >= 2", MAX_ROW_BITS, D);
            $finish;
        end
        if (RING < KMAX || (1 << LR) != RING) begin
            $display("%m: error: RING = %0d must be a power of two >= %0d (a kernel's rows at once)", RING, KMAX);
            $finish;
        end
        if (OP_BITS < 1 || OP_BITS >= (1 << `CPT_BITS_W)) begin
            $display("%m: error: OP_BITS = %0d must be 1..%0d", OP_BITS, (1 << `CPT_BITS_W) - 1);
            $finish;
        end
    end

    // ---------------------------------------------------------------- geometry, sampled on start
    reg             active;
    reg             narrow;                  // Cp < D: one read per pixel, else one per word
    reg [15:0]      unit;                   // a pixel's size in positions: Cp bits (narrow) or Cp/D words
    reg [15:0]      seg;                    // kernel row slice in positions: kw unit
    reg [PW-1:0]    step_px;                // positions between output pixels: s unit
    reg [LRW:0]     row_words;              // ceil(W Cp / D)
    reg [WORD_W-1:0] k_words;               // Kw of the narrow path
    reg [KMAX*2*D-1:0] tap_mask;            // narrow: tap j's Cp bits of a funnel-shifted slice, j = 0..KMAX-1
    reg [15:0]      height_r, width_r, row1_r;
    reg [1:0]       kh_r, s_r;
    reg signed [2:0] pad_h_r, pad_w_r;
    reg [`CPT_BITS_W-1:0] bits_r;

    localparam [15:0] D_X = D[15:0];
    localparam [`CPT_BITS_W-1:0] OP_BITS_X = OP_BITS[`CPT_BITS_W-1:0];
    wire            in_narrow = cp < D_X;
    wire [15:0]     in_unit = in_narrow ? cp : cp >> LD;
    wire [15:0]     in_seg = (kw[1] ? in_unit << 1 : 16'd0) + (kw[0] ? in_unit : 16'd0);
    wire [31:0]     row_bits = width * cp;
    wire [17:0]     kbits = (kh[1] ? {1'b0, in_seg, 1'b0} : 18'd0) + (kh[0] ? {2'b0, in_seg} : 18'd0);  // kh kw Cp (narrow)
    wire [2*D-1:0]  ones_cp = ~({2*D{1'b1}} << cp);
    wire            bad = cp == 0 || (in_narrow ? (cp & (cp - 1'b1)) != 0 : cp[LD-1:0] != 0)
                          || row_bits > MAX_ROW_BITS || width == 0 || height == 0 || kh == 0 || kw == 0
                          || (stride != 2'd1 && stride != 2'd2) || bits == 0 || bits > OP_BITS_X;

    integer j;
    always @(posedge clk) begin
        if (rst) begin
            active <= 1'b0;
            geom_err <= 1'b0;
        end else if (start) begin
            active <= !bad;
            geom_err <= bad;
        end
        if (start) begin
            narrow <= in_narrow;
            unit <= in_unit;
            seg <= in_seg;
            step_px <= {{(PW-16){1'b0}}, in_unit} << (stride == 2'd2);
            row_words <= row_bits[LRW+LD:LD] + (row_bits[LD-1:0] != 0);
            k_words <= kbits[WORD_W+LD-1:LD] + (kbits[LD-1:0] != 0);
            for (j = 0; j < KMAX; j = j + 1)
                tap_mask[j*2*D +: 2*D] <= (j < kw) ? ones_cp << (j * cp) : {2*D{1'b0}};
            height_r <= height;
            width_r <= width;
            row1_r <= row1;
            kh_r <= kh;
            s_r <= stride;
            pad_h_r <= pad_h;
            pad_w_r <= pad_w;
            bits_r <= bits;
        end
    end

    // ---------------------------------------------------------------- write side
    reg [15:0]            wr_row;           // rows complete in the ring (the row being written)
    reg [`CPT_BITS_W-1:0] wr_plane;
    reg [LRW-1:0]         wr_word;
    reg [15:0]            low_row;          // first row the newest request needs: rows below it are free
    localparam [16:0] RING_X = RING[16:0];
    wire [16:0] room_end = {1'b0, low_row} + RING_X;
    assign s_ready = active && !start && wr_row < row1_r && {1'b0, wr_row} < room_end;
    wire wr = s_valid && s_ready;
    wire [LRW:0] wr_word_x = {1'b0, wr_word};

    always @(posedge clk) begin
        if (rst || start) begin
            wr_row <= row0;
            wr_plane <= 0;
            wr_word <= 0;
        end else if (wr) begin
            if (wr_word_x != row_words - 1'b1) begin
                wr_word <= wr_word + 1'b1;
            end else begin
                wr_word <= 0;
                if (wr_plane != bits_r - 1'b1) begin
                    wr_plane <= wr_plane + 1'b1;
                end else begin
                    wr_plane <= 0;
                    wr_row <= wr_row + 1'b1;
                end
            end
        end
    end
    wire [BANK_AW-1:0] wr_addr = {wr_row[LR-1:0], wr_plane[LPL-1:0], wr_word[LRW-1:1]};

    // ---------------------------------------------------------------- request sequencer
    localparam [1:0] R_IDLE = 2'd0, R_WAIT = 2'd1, R_RUN = 2'd2;
    reg [1:0]             state;
    reg signed [HW-1:0]   h0;               // first kernel row's input row: ho s - pad_h
    reg signed [HW-1:0]   col;              // current pixel's first tap column: wo s - pad_w
    reg signed [PW-1:0]   pos;              // its first position: col Cp bits (narrow) or col Cp/D words
    reg [`CPT_BITS_W-1:0] plane;
    reg [3:0]             t, t_last;        // pixel of the request, the last one
    reg [1:0]             i;                // big path: kernel row
    reg [15:0]            jw;               // big path: word of the kernel row's slice
    reg [WORD_W-1:0]      aw;               // big path: word of the A row
    reg [KMAX-1:0]        row_ok;           // kernel row i lies inside the image (and i < kh)

    wire [HW-1:0] ho_x = {{(HW-16){1'b0}}, rq_ho};
    wire [HW-1:0] wo_x = {{(HW-16){1'b0}}, rq_wo0};
    wire signed [HW-1:0] rq_h0 = $signed(s_r == 2'd2 ? ho_x << 1 : ho_x) - $signed({{(HW-3){pad_h_r[2]}}, pad_h_r});
    wire signed [HW-1:0] rq_c0 = $signed(s_r == 2'd2 ? wo_x << 1 : wo_x) - $signed({{(HW-3){pad_w_r[2]}}, pad_w_r});
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [HW+16:0] rq_pos = rq_c0 * $signed({1'b0, unit});   // legal geometry: fits PW bits
    /* verilator lint_on UNUSEDSIGNAL */
    // rows the request needs are in the ring once rows up to min(row1, h0 + kh) - 1 are complete (rows from
    // row1 on are outside the image or reached by no request)
    wire signed [HW-1:0] need_end = h0 + $signed({{(HW-2){1'b0}}, kh_r});
    wire signed [HW-1:0] height_s = $signed({{(HW-16){1'b0}}, height_r});
    wire signed [HW-1:0] row1_s = $signed({{(HW-16){1'b0}}, row1_r});
    wire signed [HW-1:0] need = need_end < row1_s ? need_end : row1_s;
    wire rows_in = $signed({{(HW-16){1'b0}}, wr_row}) >= need;

    // the step (a RAM read) issued this cycle; see the pipeline below for `take`
    reg  pend;
    wire take;
    wire issue = state == R_RUN && (!pend || take);
    wire last_in_px = !narrow ? (jw == seg - 1'b1 && i == kh_r - 1'b1) : 1'b1;
    wire last_step = last_in_px && t == t_last;

    always @(posedge clk) begin
        if (rst || start) begin
            state <= R_IDLE;
            low_row <= 0;
        end else begin
            case (state)
                R_IDLE: if (rq_valid && rq_ready) begin
                    h0 <= rq_h0;
                    col <= rq_c0;
                    pos <= rq_pos[PW-1:0];
                    plane <= rq_plane;
                    t <= 0;
                    t_last <= rq_count[3:0] - 1'b1;
                    i <= 0;
                    jw <= 0;
                    aw <= 0;
                    low_row <= rq_h0 < 0 ? 16'd0 : rq_h0[15:0];
                    state <= R_WAIT;
                end
                R_WAIT: begin
                    for (j = 0; j < KMAX; j = j + 1)
                        row_ok[j] <= j[1:0] < kh_r && h0 + $signed(j[HW-1:0]) >= 0 && h0 + $signed(j[HW-1:0]) < height_s;
                    if (rows_in) state <= R_RUN;
                end
                R_RUN: if (issue) begin
                    if (last_step) state <= R_IDLE;
                    if (last_in_px) begin
                        t <= t + 1'b1;
                        col <= col + $signed({{(HW-2){1'b0}}, s_r});
                        pos <= pos + $signed(step_px);
                        i <= 0;
                        jw <= 0;
                        aw <= 0;
                    end else begin
                        aw <= aw + 1'b1;
                        if (jw != seg - 1'b1) begin
                            jw <= jw + 1'b1;
                        end else begin
                            jw <= 0;
                            i <= i + 1'b1;
                        end
                    end
                end
                default: state <= R_IDLE;
            endcase
        end
    end
    assign rq_ready = active && !start && state == R_IDLE;

    // ---------------------------------------------------------------- ring: KMAX copies x even/odd words
    // The step's word: narrow, the first of the two words holding the slice (pos div D, -1 for the left
    // padding tap); big, the one word.  Copy c reads kernel row c's slot (narrow; big uses copy i).
    wire signed [PW-1:0] src = narrow ? pos >>> LD : pos + $signed({{(PW-16){1'b0}}, jw});
    wire                 src_odd = src[0];
    wire [LRW-2:0]       half_lo = src[LRW-1:1];                 // (src >> 1), this word's pair
    wire [LRW-2:0]       half_hi = half_lo + 1'b1;               // the next pair (odd src: src + 1 is even)
    wire [LRW-2:0]       even_a = src_odd ? half_hi : half_lo;
    wire [LRW-2:0]       odd_a = half_lo;

    wire [KMAX*D-1:0] even_q, odd_q;        // copy c's words at [c D +: D]
    genvar c;
    generate
        for (c = 0; c < KMAX; c = c + 1) begin : copy
            wire [HW-1:0] row = h0 + c;                          // slot = row mod RING (unused when outside)
            wire unused_row = &{1'b0, row[HW-1:LR]};
            sdp_ram #(.WIDTH(D), .DEPTH(1 << BANK_AW), .AW(BANK_AW)) even_i (
                .clk(clk), .we(wr && !wr_word[0]), .waddr(wr_addr), .wdata(s_data),
                .re(issue), .raddr({row[LR-1:0], plane[LPL-1:0], even_a}), .rdata(even_q[c*D +: D]));
            sdp_ram #(.WIDTH(D), .DEPTH(1 << BANK_AW), .AW(BANK_AW)) odd_i (
                .clk(clk), .we(wr && wr_word[0]), .waddr(wr_addr), .wdata(s_data),
                .re(issue), .raddr({row[LR-1:0], plane[LPL-1:0], odd_a}), .rdata(odd_q[c*D +: D]));
        end
    endgenerate

    // ---------------------------------------------------------------- step descriptor, with the RAM data
    reg [LD-1:0]     d_off;                 // narrow: the slice's first bit in the lower word
    reg              d_odd;                 // the lower word sits in the odd bank
    reg [KMAX-1:0]   d_tap;                 // narrow: taps j inside the row
    reg [KMAX-1:0]   d_row;                 // narrow: kernel rows inside the image
    reg [1:0]        d_i;                   // big: the copy (kernel row) read
    reg              d_ok;                  // big: the word lies inside the image
    reg [3:0]        d_px;
    reg [WORD_W-1:0] d_word;
    reg              d_last;
    reg [WORD_W-1:0] d_n;                   // A words this step makes

    wire signed [PW-1:0] row_words_s = $signed({{(PW-LRW-1){1'b0}}, row_words});
    wire signed [HW-1:0] width_s = $signed({{(HW-16){1'b0}}, width_r});
    always @(posedge clk) begin
        if (issue) begin
            d_off <= pos[LD-1:0];
            d_odd <= src_odd;
            for (j = 0; j < KMAX; j = j + 1)
                d_tap[j] <= col + $signed(j[HW-1:0]) >= 0 && col + $signed(j[HW-1:0]) < width_s;
            d_row <= row_ok;
            d_i <= i;
            d_ok <= row_ok[i] && src >= 0 && src < row_words_s;
            d_px <= t;
            d_word <= narrow ? {WORD_W{1'b0}} : aw;
            d_last <= last_step;
            d_n <= narrow ? k_words : {{(WORD_W-1){1'b0}}, 1'b1};
        end
    end

    // ---------------------------------------------------------------- assemble the A row
    // narrow: slice c = ({odd, even} ordered by d_odd >> d_off) masked to the real taps, placed at c kw Cp.
    wire [2*D-1:0] taps = (d_tap[0] ? tap_mask[0 +: 2*D] : {2*D{1'b0}})
                          | (d_tap[1] ? tap_mask[2*D +: 2*D] : {2*D{1'b0}})
                          | (d_tap[2] ? tap_mask[4*D +: 2*D] : {2*D{1'b0}});
    wire [KMAX*RW-1:0] placed;              // slice c, shifted to its kernel row's place
    generate
        for (c = 0; c < KMAX; c = c + 1) begin : assemble
            wire [D-1:0]   ev = even_q[c*D +: D];
            wire [D-1:0]   od = odd_q[c*D +: D];
            wire [2*D-1:0] pair = d_odd ? {ev, od} : {od, ev};
            wire [2*D-1:0] slice = d_row[c] ? (pair >> d_off) & taps : {2*D{1'b0}};
            assign placed[c*RW +: RW] = {{(RW-2*D){1'b0}}, slice} << (c * seg);
        end
    endgenerate
    wire [D-1:0] big_word = d_odd ? odd_q[d_i*D +: D] : even_q[d_i*D +: D];
    wire [RW-1:0] a_row = narrow ? placed[0 +: RW] | placed[RW +: RW] | placed[2*RW +: RW]
                                : {{(RW-D){1'b0}}, d_ok ? big_word : {D{1'b0}}};

    // ---------------------------------------------------------------- output register
    // `pend`: the last step's RAM data is waiting (the RAM holds it until the next read).  It moves into
    // the row register when that is empty or gives its last word this cycle: one word a cycle.
    reg [RW-1:0]     row_q;
    reg [WORD_W-1:0] left;                  // words of row_q still to go
    reg [WORD_W-1:0] word_q;
    reg [3:0]        px_q;
    reg              last_q;
    wire pop = m_valid && m_ready;
    wire one_left = left == {{(WORD_W-1){1'b0}}, 1'b1};
    assign take = pend && (left == 0 || (pop && one_left));

    always @(posedge clk) begin
        if (rst || start) begin
            pend <= 1'b0;
            left <= 0;
        end else begin
            if (issue) pend <= 1'b1;
            else if (take) pend <= 1'b0;
            if (take) begin
                row_q <= a_row;
                left <= d_n;
                word_q <= d_word;
                px_q <= d_px;
                last_q <= d_last;
            end else if (pop) begin
                row_q <= row_q >> D;
                left <= left - 1'b1;
                word_q <= word_q + 1'b1;
            end
        end
    end
    assign m_valid = left != 0;
    assign m_data = row_q[D-1:0];
    assign m_pixel = px_q;
    assign m_word = word_q;
    assign m_last = last_q && one_left;

    wire unused = &{1'b0, plane, wr_word_x[LRW], src[PW-1:LRW], kbits[17:WORD_W+LD], row_bits[31:LRW+LD+1],
                    rq_count[4]};
endmodule

`default_nettype wire
