// Weight gradient (conv op 3): forms the call's A tiles and B blocks on chip from the X and E streams
// (docs/architecture.md, "Weight gradient: chunks, corner turn, shift/mask former"; hls/cpt_conv_read.h,
// load_chunk, form_shift_mask and emit_e_block, whose structure this follows).
//
// The call is a GEMM of M = kh kw C result rows (tap i, tap j, channel c; tap-major, channel-minor, as C is
// written: a partial dW^T), N = K columns and a reduction over the chunk's P = batch Ho Wo output positions
// t = (n Ho + ho) Wo + wo, Kw = ceil(P / D) words per plane.  Two shift/mask formers (cpt_wgrad_former) hold
// the call's chunks, each loaded once per call from the reader's stream (E first, then X; s_is_e tells them
// apart) and corner-turned into channel rows of position bits.  With the prefetch hint (`pf`) the stream goes on
// with the next call's E and X, which the formers store in their other bank set; a call that hits the previous
// call's hint (`own` low) streams no chunk of its own (cpt_wgrad_former, "Two bank sets").  The B walk also forms
// the next call's first B block from the prefetched E chunk into the other B half (below), so that a hit starts
// computing at once:
//
//  * the X former (the call's kernel, stride and padding) gives A row (i, j, c), plane p: bit t is bit p of
//    X[n, c, ho s - pad + i, wo s - pad + j], zero outside the image;
//  * the E former (the E tensor as a 1x1, stride-1, unpadded "kernel" over Ho x Wo) gives its row (0, 0, k),
//    plane q: bit t is bit q of E[n, k, ho, wo] -- exactly B column k, plane q (emit_e_block's corner turn).
//
// Two walks run side by side, synchronised with the feeder only by the buffer ownership flags:
//
//  * B: for each block of B_BLOCK_COLS columns it waits for the B buffer (b_busy, as the reader does), asks the
//    E former for each column and plane of the block and writes word w of column k, plane q into bank
//    (k - n0) mod COLS at half b_cur, slot (k - n0) div COLS: slot x b_col_words + q Kw + w (the reader's B
//    layout); after the block's last word it reports the block loaded.  A hit skips block 0 (cpt_core starts the
//    buffer full).  With `pf`, after its last block it waits for the E former's prefetched chunk, flips the former
//    to it and forms the next call's block 0 the same way into half !b_cur, which the feeder does not read: no
//    ownership flag, the call's end waits for it (`pf_busy`);
//  * A: for each block (A tiles are formed again per block, as the reader reads them again), each A tile of
//    ROWS rows: it waits for its ping-pong half (a_busy); then one walk per X former lane (XL) steps through the
//    tile's rows, asks its lane for each row whose channel is the lane's (c mod XL) and plane, and writes word w
//    of plane p of row r into bank r at half + p Kw + w through its own A write port; once every lane has
//    written its words it reports the half loaded.  Rows past M in the last tile are left as they are (the
//    writer skips them).
//
// Each request is a whole plane row (words 0 .. Kw - 1), which the former starts without its divider; requests
// run back to back (the former takes the next while the previous one's last words drain), each walk queueing
// the bank and base address of the requests in flight.  The formers take the geometry on `start` (stable from
// cpt_conv_setup and cpt_setup for the whole call).

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_wgrad_walker #(
    parameter integer ROWS = `CPT_ROWS,                 // config rows: A rows per tile, A banks
    parameter integer COLS = `CPT_COLS,                 // config cols: B banks
    parameter integer D = `CPT_D,                       // config dot_width
    parameter integer OP_BITS = `CPT_OP_BITS,           // config operand_bits
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS, // config b_block_cols
    parameter integer MAX_ROW_BITS = `CPT_MAX_ROW_BITS, // the formers' widest row-plane
    parameter integer BANK_WORDS = `CPT_WGRAD_BANK_WORDS, // words of each former's banks
    parameter integer XL = 2                            // the X former's lanes: A rows formed side by side
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,              // pulse: a weight-gradient call runs, geometry valid
    input  wire                   own,                // the stream starts with the call's own chunks (0: a hit,
                                                      // whose first B block is in half b_cur already)
    input  wire                   pf,                 // the next call's chunks follow (the prefetch hint)
    output wire                   pf_busy,            // chunk words still expected, or the next call's first
                                                      // B block still to be formed
    // geometry (cpt_conv_setup), stable during the call
    input  wire [`CPT_DIM_W-1:0]  batch,
    input  wire [15:0]            c,                  // X channels
    input  wire [15:0]            cp,                 // Cp(C)
    input  wire [15:0]            width,              // W
    input  wire [15:0]            height,             // X rows stored per image: r_hi (every row a tap reaches)
    input  wire [1:0]             kh,
    input  wire [1:0]             kw,
    input  wire [1:0]             stride,
    input  wire                   pad,
    input  wire [15:0]            e_cp,               // Cp(K)
    input  wire [15:0]            ho,                 // E rows, Ho
    input  wire [15:0]            wo,                 // E columns, Wo
    // the call's GEMM (cpt_setup)
    input  wire [`CPT_BITS_W-1:0] a_bits,
    input  wire [`CPT_BITS_W-1:0] b_bits,
    input  wire [`CPT_DIM_W-1:0]  m,                  // kh kw C
    input  wire [`CPT_DIM_W-1:0]  n,                  // K
    input  wire [`CPT_KW_W-1:0]   k_words,            // Kw
    input  wire [`CPT_RW_W-1:0]   b_col_words,        // b_bits Kw
    input  wire                   b_cur,              // the B half this call's blocks use
    // the tensor stream (the reader: E, then X)
    input  wire                   s_valid,
    output wire                   s_ready,
    input  wire [D-1:0]           s_data,
    input  wire                   s_is_e,
    // A buffer ownership and bank writes (cpt_core)
    input  wire [1:0]             a_busy,
    output wire                   a_issue,            // pulse: the walker takes half a_issue_half
    output wire                   a_issue_half,
    output reg                    a_loaded,           // pulse: half a_loaded_half holds its tile
    output reg                    a_loaded_half,
    output wire [XL*ROWS-1:0]     a_we,               // one write port per X lane
    output wire [XL*`CPT_A_AW-1:0] a_waddr,
    output wire [XL*D-1:0]        a_wdata,
    // B buffer ownership and bank writes
    input  wire                   b_busy,
    input  wire                   b_hold,             // start no block (the error sums are not ready for it)
    output wire                   b_issue,            // pulse: the walker takes the B buffer
    output reg                    b_loaded,           // pulse: the B buffer holds its block
    output reg  [COLS-1:0]        b_we,
    output reg  [`CPT_B_AW-1:0]   b_waddr,
    output reg  [D-1:0]           b_wdata,
    output wire                   geom_err            // a former refused the geometry (never, when setup passed)
);
    localparam integer A_HALF_I = `CPT_A_HALF;  // a parameter: a literal cannot be part-selected
    localparam [`CPT_A_AW-1:0] HALF_A = A_HALF_I[`CPT_A_AW-1:0];
    localparam integer B_HALF_I = `CPT_B_HALF;
    localparam [`CPT_B_AW-1:0] HALF_B = B_HALF_I[`CPT_B_AW-1:0];
    localparam [`CPT_POS_W-1:0] ROWS_X = ROWS[`CPT_POS_W-1:0];
    localparam [`CPT_POS_W-1:0] BBC_X = B_BLOCK_COLS[`CPT_POS_W-1:0];
    localparam integer BK_W = $clog2(COLS + 1);
    localparam [BK_W-1:0] LAST_BANK = COLS[BK_W-1:0] - 1'b1;

    initial begin
        if (XL < 1 || (XL & (XL - 1)) != 0) begin
            $display("%m: error: XL = %0d must be a power of two", XL);
            $finish;
        end
        if (ROWS < 1 || COLS < 1 || B_BLOCK_COLS % COLS != 0) begin
            $display("%m: error: ROWS = %0d, COLS = %0d >= 1 and B_BLOCK_COLS = %0d a multiple of COLS", ROWS, COLS,
                     B_BLOCK_COLS);
            $finish;
        end
    end

    wire [`CPT_POS_W-1:0] m_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, m};
    wire [`CPT_POS_W-1:0] n_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, n};
    // formers' 16-bit fields (every legal call's values fit: batch <= batch a_bits C ceil(H W / D) <=
    // WGRAD_BUF_WORDS, cpt_conv_setup's X-chunk check; K <= 2D, a power-of-two pitch)
    wire [`CPT_DIM_W+15:0] batch_x = {16'd0, batch};
    wire [`CPT_DIM_W+15:0] n_x = {16'd0, n};
    wire [`CPT_KW_W+15:0]  kw_x = {16'd0, k_words};

    // ---------------------------------------------------------------- the formers
    wire        x_geom_err, e_geom_err, x_s_ready, e_s_ready;
    reg         eq_valid;
    wire        eq_ready;
    reg  [15:0] eq_c;
    reg  [`CPT_BITS_W-1:0] eq_plane;
    wire        em_valid, em_last;
    wire [D-1:0] em_data;
    wire [15:0] em_word;
    // the X former's lanes (lane l: the A rows of channels c mod XL = l)
    wire [XL-1:0]   xq_valid, xq_ready, xm_valid, xm_last;
    wire [2*XL-1:0] xq_i, xq_j;
    wire [16*XL-1:0] xq_c, xm_word;
    wire [`CPT_BITS_W*XL-1:0] xq_plane;
    wire [D*XL-1:0] xm_data;

    assign s_ready = s_is_e ? e_s_ready : x_s_ready;
    wire x_wr_busy, e_wr_busy;
    reg  pre_pending;                           // (pf) the next call's first B block is still to be formed
    reg  e_flip;
    assign pf_busy = x_wr_busy || e_wr_busy || pre_pending;
    assign geom_err = x_geom_err || e_geom_err;

    /* verilator lint_off PINCONNECTEMPTY */    // `loaded`: requests wait on rq_ready, which includes it
    cpt_wgrad_former #(.D(D), .OP_BITS(OP_BITS), .MAX_ROW_BITS(MAX_ROW_BITS),
                       .BANK_WORDS(BANK_WORDS), .LANES(XL)) x_former (
        .clk(clk), .rst(rst), .start(start), .own(own), .pf(pf), .flip(1'b0), .batch(batch_x[15:0]), .channels(c),
        .cp(cp), .width(width), .height(height), .kh(kh), .kw(kw), .stride(stride), .pad(pad), .bits(a_bits),
        .geom_err(x_geom_err), .loaded(), .wr_busy(x_wr_busy), .s_valid(s_valid && !s_is_e), .s_ready(x_s_ready),
        .s_data(s_data),
        .rq_valid(xq_valid), .rq_ready(xq_ready), .rq_i(xq_i), .rq_j(xq_j), .rq_c(xq_c), .rq_plane(xq_plane),
        .rq_word0({XL{16'd0}}), .rq_count({XL{kw_x[15:0]}}), .m_valid(xm_valid), .m_ready({XL{1'b1}}),
        .m_data(xm_data), .m_word(xm_word), .m_last(xm_last)
    );

    cpt_wgrad_former #(.D(D), .OP_BITS(OP_BITS), .MAX_ROW_BITS(MAX_ROW_BITS),
                       .BANK_WORDS(BANK_WORDS)) e_former (
        .clk(clk), .rst(rst), .start(start), .own(own), .pf(pf), .batch(batch_x[15:0]), .channels(n_x[15:0]),
        .flip(e_flip), .cp(e_cp), .width(wo), .height(ho), .kh(2'd1), .kw(2'd1), .stride(2'd1), .pad(1'b0),
        .bits(b_bits), .geom_err(e_geom_err), .loaded(), .wr_busy(e_wr_busy), .s_valid(s_valid && s_is_e),
        .s_ready(e_s_ready), .s_data(s_data),
        .rq_valid(eq_valid), .rq_ready(eq_ready), .rq_i(2'd0), .rq_j(2'd0), .rq_c(eq_c), .rq_plane(eq_plane),
        .rq_word0(16'd0), .rq_count(kw_x[15:0]), .m_valid(em_valid), .m_ready(1'b1), .m_data(em_data),
        .m_word(em_word), .m_last(em_last)
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // word w of a plane row, zero-extended to a bank address (it is < Kw there)
    wire [15+`CPT_B_AW:0] em_word_x = {{`CPT_B_AW{1'b0}}, em_word};
    wire [`CPT_KW_W+`CPT_B_AW-1:0] kw_b = {{`CPT_B_AW{1'b0}}, k_words};
    wire [`CPT_KW_W+`CPT_A_AW-1:0] kw_a = {{`CPT_A_AW{1'b0}}, k_words};
    wire [`CPT_RW_W+`CPT_B_AW-1:0] bcw_b = {{`CPT_B_AW{1'b0}}, b_col_words};

    // Requests run back to back: the former takes the next one while the last words of the previous drain, so
    // each walk queues what the data side needs of each request in flight (its bank and base address) and
    // hands a request out only while its queue (a sync_fifo of 4 entries; a former has at most 3 requests in
    // flight) has room.

    // ---------------------------------------------------------------- B walk: the E chunk into the B banks
    localparam [2:0] B_IDLE = 3'd0, B_WAIT = 3'd1, B_REQ = 3'd2, B_DRAIN = 3'd3, B_PRE = 3'd4;
    reg [2:0]             bstate;
    reg                   pre;                  // the walk forms the next call's block 0 (half !b_cur)
    reg [`CPT_POS_W-1:0]  bn0;                  // the block's first column
    reg [`CPT_POS_W-1:0]  bcol;                 // the request's column in the block
    reg [`CPT_POS_W-1:0]  bcols;                // columns of the block: min(B_BLOCK_COLS, N - n0)
    reg [BK_W-1:0]        bank;
    reg [`CPT_B_AW-1:0]   slot_base;            // (column div COLS) b_col_words
    reg [`CPT_B_AW-1:0]   qbase;                // plane q Kw
    wire [`CPT_POS_W-1:0] left_cols = n_w - bn0;
    wire [`CPT_POS_W+15:0] bn0_x = {16'd0, bn0};
    wire                  b_take = eq_valid && eq_ready;
    wire                  b_pop = em_valid && em_last;
    wire                  b_last_req = eq_plane == b_bits - 1'b1 && bcol + 1'b1 == bcols;
    // the queue: bank, base address (half + slot + plane), the block's last request
    wire [BK_W-1:0]       bq_bank;
    wire [`CPT_B_AW-1:0]  bq_base;
    wire                  bq_end;
    wire [2:0]            bq_count;
    wire [2:0]            bq_count_next = bq_count + {2'd0, b_take} - {2'd0, b_pop};
    /* verilator lint_off PINCONNECTEMPTY */
    sync_fifo #(.WIDTH(BK_W + `CPT_B_AW + 1), .DEPTH(4), .AW(2)) b_queue (
        .clk(clk), .rst(rst || start), .push(b_take && !start),
        .din({bank, ((b_cur ^ pre) ? HALF_B : {`CPT_B_AW{1'b0}}) + slot_base + qbase, b_last_req}),
        .pop(b_pop && !start), .dout({bq_bank, bq_base, bq_end}), .empty(), .full(), .count(bq_count)
    );
    /* verilator lint_on PINCONNECTEMPTY */

    assign b_issue = bstate == B_WAIT && !b_busy && !b_hold && !pre;

    wire [`CPT_POS_W-1:0] first_cols = n_w < BBC_X ? n_w : BBC_X;
    always @(posedge clk) begin
        b_we <= {COLS{1'b0}};
        b_loaded <= 1'b0;
        e_flip <= 1'b0;
        if (rst) begin
            bstate <= B_IDLE;
            eq_valid <= 1'b0;
            pre_pending <= 1'b0;
        end else if (start) begin
            // a hit: block 0 is in place; the next block, else (with pf) the next call's block 0, else nothing
            bstate <= own || n_w > BBC_X ? B_WAIT : pf ? B_PRE : B_IDLE;
            bn0 <= own ? 0 : BBC_X;
            bcols <= own ? first_cols : n_w - BBC_X < BBC_X ? n_w - BBC_X : BBC_X;
            pre <= 1'b0;
            pre_pending <= pf;
            eq_valid <= 1'b0;
        end else begin
            if (em_valid) begin
                b_we <= {{(COLS-1){1'b0}}, 1'b1} << bq_bank;
                b_waddr <= bq_base + em_word_x[`CPT_B_AW-1:0];
                b_wdata <= em_data;
                if (em_last) begin
                    if (bq_end) begin
                        b_loaded <= !pre;       // with the block's last word written (as the reader)
                        if (pre) begin
                            pre_pending <= 1'b0;
                            bstate <= B_IDLE;
                        end else if (bn0 + BBC_X < n_w) begin
                            bn0 <= bn0 + BBC_X;
                            bcols <= left_cols - BBC_X < BBC_X ? left_cols - BBC_X : BBC_X;
                            bstate <= B_WAIT;
                        end else begin
                            bstate <= pre_pending ? B_PRE : B_IDLE;
                        end
                    end
                end
            end
            case (bstate)
                B_WAIT: if ((!b_busy || pre) && !b_hold) begin
                    bcol <= 0;
                    bank <= 0;
                    slot_base <= 0;
                    qbase <= 0;
                    eq_c <= bn0_x[15:0];
                    eq_plane <= 0;
                    eq_valid <= 1'b1;
                    bstate <= B_REQ;
                end
                B_PRE: if (!e_wr_busy && !e_flip) begin    // the next call's E chunk is stored: read it
                    e_flip <= 1'b1;
                    pre <= 1'b1;
                    bn0 <= 0;
                    bcols <= first_cols;
                    bstate <= B_WAIT;               // (b_busy is the current half's: pre does not wait for it)
                end
                B_REQ: begin
                    eq_valid <= bq_count_next < 3'd3;
                    if (b_take) begin
                        if (eq_plane != b_bits - 1'b1) begin
                            eq_plane <= eq_plane + 1'b1;
                            qbase <= qbase + kw_b[`CPT_B_AW-1:0];
                        end else begin
                            // the column is done: the next one (bank n mod COLS, slot n div COLS)
                            eq_plane <= 0;
                            qbase <= 0;
                            eq_c <= eq_c + 1'b1;
                            bcol <= bcol + 1'b1;
                            if (bank == LAST_BANK) begin
                                bank <= 0;
                                slot_base <= slot_base + bcw_b[`CPT_B_AW-1:0];
                            end else begin
                                bank <= bank + 1'b1;
                            end
                        end
                        if (b_last_req) begin
                            eq_valid <= 1'b0;
                            bstate <= B_DRAIN;  // until the block's last word (the data side moves on)
                        end
                    end
                end
                default: ;
            endcase
        end
    end

    // ---------------------------------------------------------------- A walk: the X chunk's rows into the A banks
    // A tile controller, and per X lane a walk over the tile's rows that asks its lane for the rows whose channel
    // is the lane's (the others it steps over, a cycle each), each plane a request, with its own queue and
    // write port.  The tile is loaded once every lane has walked its rows and written their words.
    localparam [1:0] A_IDLE = 2'd0, A_TILE = 2'd1, A_RUN = 2'd2, A_NEXT = 2'd3;
    reg [1:0]             astate;
    reg [`CPT_POS_W-1:0]  an0, m0;              // block's first column, tile's first result row
    reg [`CPT_POS_W-1:0]  tile_rows;            // min(ROWS, M - m0)
    reg                   half;
    wire [15:0]           c_last = c - 1'b1;
    wire [1:0]            kw_last = kw - 1'b1;
    wire [XL-1:0]         lane_done;            // a lane walked the tile and wrote its words
    wire                  tile_start = astate == A_TILE && !a_busy[half];
    wire                  block_next = astate == A_NEXT && !(m0 + ROWS_X < m_w) && an0 + BBC_X < n_w;

    assign a_issue = tile_start;
    assign a_issue_half = half;

    always @(posedge clk) begin
        a_loaded <= 1'b0;
        if (rst) begin
            astate <= A_IDLE;
        end else if (start) begin
            astate <= A_TILE;
            an0 <= 0;
            m0 <= 0;
            tile_rows <= m_w < ROWS_X ? m_w : ROWS_X;
            half <= 1'b0;
        end else begin
            case (astate)
                A_TILE: if (!a_busy[half]) astate <= A_RUN;
                A_RUN: if (&lane_done) begin
                    a_loaded <= 1'b1;           // the tile's last word is written
                    a_loaded_half <= half;
                    astate <= A_NEXT;
                end
                A_NEXT: begin
                    // next tile, next block (its tiles again from row 0), or done
                    half <= !half;
                    if (m0 + ROWS_X < m_w) begin
                        m0 <= m0 + ROWS_X;
                        tile_rows <= (m_w - m0 - ROWS_X) < ROWS_X ? m_w - m0 - ROWS_X : ROWS_X;
                        astate <= A_TILE;
                    end else if (an0 + BBC_X < n_w) begin
                        an0 <= an0 + BBC_X;
                        m0 <= 0;
                        tile_rows <= m_w < ROWS_X ? m_w : ROWS_X;
                        astate <= A_TILE;
                    end else begin
                        astate <= A_IDLE;
                    end
                end
                default: ;
            endcase
        end
    end

    localparam [31:0] XL32 = XL;
    localparam [15:0] XL_MASK = XL32[15:0] - 1'b1;
    genvar gl;
    generate
        for (gl = 0; gl < XL; gl = gl + 1) begin : xlane
            reg [`CPT_POS_W-1:0]  r;            // the walk's row in the tile
            reg [1:0]             ri, rj;       // its tap
            reg [15:0]            rc;           // its channel
            reg [`CPT_BITS_W-1:0] plane;
            reg [`CPT_A_AW-1:0]   pbase;        // plane p Kw
            reg [ROWS-1:0]        we;           // the lane's A write port
            reg [`CPT_A_AW-1:0]   waddr;
            reg [D-1:0]           wdata;
            assign a_we[ROWS*gl +: ROWS] = we;
            assign a_waddr[`CPT_A_AW*gl +: `CPT_A_AW] = waddr;
            assign a_wdata[D*gl +: D] = wdata;
            wire walking = astate == A_RUN && r != tile_rows;
            localparam [31:0] GL32 = gl;
            wire mine = (rc & XL_MASK) == GL32[15:0];
            wire take = xq_valid[gl] && xq_ready[gl];
            wire pop = xm_valid[gl] && xm_last[gl];
            // the queue: row (bank) and base address (half + plane) of each request in flight
            wire [`CPT_POS_W-1:0] q_row;
            wire [`CPT_A_AW-1:0]  q_base;
            wire [2:0]            q_count;
            /* verilator lint_off PINCONNECTEMPTY */
            sync_fifo #(.WIDTH(`CPT_POS_W + `CPT_A_AW), .DEPTH(4), .AW(2)) queue (
                .clk(clk), .rst(rst || start), .push(take && !start),
                .din({r, (half ? HALF_A : {`CPT_A_AW{1'b0}}) + pbase}), .pop(pop && !start),
                .dout({q_row, q_base}), .empty(), .full(), .count(q_count)
            );
            /* verilator lint_on PINCONNECTEMPTY */
            wire step = walking && (!mine || (take && plane == a_bits - 1'b1));   // on to the next row
            /* verilator lint_off UNUSEDSIGNAL */    // a word index is < Kw: its bank address bits suffice
            wire [15+`CPT_A_AW:0] word_x = {{`CPT_A_AW{1'b0}}, xm_word[16*gl +: 16]};
            /* verilator lint_on UNUSEDSIGNAL */
            assign xq_valid[gl] = walking && mine && q_count < 3'd3;
            assign xq_i[2*gl +: 2] = ri;
            assign xq_j[2*gl +: 2] = rj;
            assign xq_c[16*gl +: 16] = rc;
            assign xq_plane[`CPT_BITS_W*gl +: `CPT_BITS_W] = plane;
            assign lane_done[gl] = astate == A_RUN && r == tile_rows && q_count == 3'd0;

            always @(posedge clk) begin
                we <= {ROWS{1'b0}};
                if (rst || start) begin
                    r <= 0;
                    ri <= 0;
                    rj <= 0;
                    rc <= 0;
                    plane <= 0;
                    pbase <= 0;
                end else begin
                    if (take) begin
                        plane <= plane + 1'b1;
                        pbase <= pbase + kw_a[`CPT_A_AW-1:0];
                    end
                    if (xm_valid[gl]) begin
                        we <= {{(ROWS-1){1'b0}}, 1'b1} << q_row;
                        waddr <= q_base + word_x[`CPT_A_AW-1:0];
                        wdata <= xm_data[D*gl +: D];
                    end
                    if (step) begin
                        // the next (i, j, c), channel-minor
                        r <= r + 1'b1;
                        plane <= 0;
                        pbase <= 0;
                        if (rc != c_last) begin
                            rc <= rc + 1'b1;
                        end else begin
                            rc <= 0;
                            if (rj != kw_last) begin
                                rj <= rj + 1'b1;
                            end else begin
                                rj <= 0;
                                ri <= ri + 1'b1;
                            end
                        end
                    end
                    if (astate == A_NEXT) r <= 0;
                    if (block_next) begin   // a block's tiles start again from row (0, 0, 0)
                        ri <= 0;
                        rj <= 0;
                        rc <= 0;
                    end
                end
            end
        end
    endgenerate

    wire unused = &{1'b0, batch_x[`CPT_DIM_W+15:16], n_x[`CPT_DIM_W+15:16], kw_x[`CPT_KW_W+15:16],
                    em_word_x, kw_b, kw_a, bcw_b, bn0_x};
endmodule

`default_nettype wire
`endif
