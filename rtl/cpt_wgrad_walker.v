// Weight gradient (conv op 3): forms the call's A tiles and B blocks on chip from the X and E streams
// (docs/architecture.md, "Weight gradient: chunks, corner turn, shift/mask former"; hls/cpt_conv_read.h,
// load_chunk, form_shift_mask and emit_e_block, whose structure this follows).
//
// The call is a GEMM of M = kh kw C result rows (tap i, tap j, channel c; tap-major, channel-minor, as C is
// written: a partial dW^T), N = K columns and a reduction over the chunk's P = batch Ho Wo output positions
// t = (n Ho + ho) Wo + wo, Kw = ceil(P / D) words per plane.  Two shift/mask formers (cpt_wgrad_former) hold
// the call's chunks, each loaded once per call from the reader's stream (E first, then X; s_is_e tells them
// apart) and corner-turned into channel rows of position bits:
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
//    layout); after the block's last word it reports the block loaded;
//  * A: for each block (A tiles are formed again per block, as the reader reads them again), each A tile of
//    ROWS rows: it waits for its ping-pong half (a_busy), asks the X former for each row and plane and writes
//    word w of plane p of row r into bank r at half + p Kw + w; after the tile's last word it reports the half
//    loaded.  Rows past M in the last tile are left as they are (the writer skips them).
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
    parameter integer BUF_WORDS = `CPT_WGRAD_BUF_WORDS  // channel rows each former holds
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,              // pulse: a weight-gradient call runs, geometry valid
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
    output reg  [ROWS-1:0]        a_we,
    output reg  [`CPT_A_AW-1:0]   a_waddr,
    output reg  [D-1:0]           a_wdata,
    // B buffer ownership and bank writes
    input  wire                   b_busy,
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
        if (ROWS < 1 || COLS < 1 || B_BLOCK_COLS % COLS != 0) begin
            $display("%m: error: ROWS = %0d, COLS = %0d >= 1 and B_BLOCK_COLS = %0d a multiple of COLS", ROWS, COLS,
                     B_BLOCK_COLS);
            $finish;
        end
    end

    wire [`CPT_POS_W-1:0] m_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, m};
    wire [`CPT_POS_W-1:0] n_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, n};
    // formers' 16-bit fields (every legal call's values fit: batch H a_bits C <= BUF_WORDS)
    wire [`CPT_DIM_W+15:0] batch_x = {16'd0, batch};
    wire [`CPT_DIM_W+15:0] n_x = {16'd0, n};
    wire [`CPT_KW_W+15:0]  kw_x = {16'd0, k_words};

    // ---------------------------------------------------------------- the formers
    wire        x_geom_err, e_geom_err, x_s_ready, e_s_ready;
    reg         xq_valid, eq_valid;
    wire        xq_ready, eq_ready;
    reg  [1:0]  xq_i, xq_j;
    reg  [15:0] xq_c, eq_c;
    reg  [`CPT_BITS_W-1:0] xq_plane, eq_plane;
    wire        xm_valid, xm_last, em_valid, em_last;
    wire [D-1:0] xm_data, em_data;
    wire [15:0] xm_word, em_word;

    assign s_ready = s_is_e ? e_s_ready : x_s_ready;
    assign geom_err = x_geom_err || e_geom_err;

    /* verilator lint_off PINCONNECTEMPTY */    // `loaded`: requests wait on rq_ready, which includes it
    cpt_wgrad_former #(.D(D), .OP_BITS(OP_BITS), .MAX_ROW_BITS(MAX_ROW_BITS), .BUF_WORDS(BUF_WORDS)) x_former (
        .clk(clk), .rst(rst), .start(start), .batch(batch_x[15:0]), .channels(c), .cp(cp), .width(width),
        .height(height), .kh(kh), .kw(kw), .stride(stride), .pad(pad), .bits(a_bits), .geom_err(x_geom_err),
        .loaded(), .s_valid(s_valid && !s_is_e), .s_ready(x_s_ready), .s_data(s_data),
        .rq_valid(xq_valid), .rq_ready(xq_ready), .rq_i(xq_i), .rq_j(xq_j), .rq_c(xq_c), .rq_plane(xq_plane),
        .rq_word0(16'd0), .rq_count(kw_x[15:0]), .m_valid(xm_valid), .m_ready(1'b1), .m_data(xm_data),
        .m_word(xm_word), .m_last(xm_last)
    );

    cpt_wgrad_former #(.D(D), .OP_BITS(OP_BITS), .MAX_ROW_BITS(MAX_ROW_BITS), .BUF_WORDS(BUF_WORDS)) e_former (
        .clk(clk), .rst(rst), .start(start), .batch(batch_x[15:0]), .channels(n_x[15:0]), .cp(e_cp), .width(wo),
        .height(ho), .kh(2'd1), .kw(2'd1), .stride(2'd1), .pad(1'b0), .bits(b_bits), .geom_err(e_geom_err),
        .loaded(), .s_valid(s_valid && s_is_e), .s_ready(e_s_ready), .s_data(s_data),
        .rq_valid(eq_valid), .rq_ready(eq_ready), .rq_i(2'd0), .rq_j(2'd0), .rq_c(eq_c), .rq_plane(eq_plane),
        .rq_word0(16'd0), .rq_count(kw_x[15:0]), .m_valid(em_valid), .m_ready(1'b1), .m_data(em_data),
        .m_word(em_word), .m_last(em_last)
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // word w of a plane row, zero-extended to a bank address (it is < Kw there)
    wire [15+`CPT_A_AW:0] xm_word_x = {{`CPT_A_AW{1'b0}}, xm_word};
    wire [15+`CPT_B_AW:0] em_word_x = {{`CPT_B_AW{1'b0}}, em_word};
    wire [`CPT_KW_W+`CPT_B_AW-1:0] kw_b = {{`CPT_B_AW{1'b0}}, k_words};
    wire [`CPT_KW_W+`CPT_A_AW-1:0] kw_a = {{`CPT_A_AW{1'b0}}, k_words};
    wire [`CPT_RW_W+`CPT_B_AW-1:0] bcw_b = {{`CPT_B_AW{1'b0}}, b_col_words};

    // Requests run back to back: the former takes the next one while the last words of the previous drain, so
    // each walk queues what the data side needs of each request in flight (its bank and base address) and
    // hands a request out only while its queue has room.
    localparam integer QD = 4;                  // queue entries: >= the requests a former can have in flight (3)

    // ---------------------------------------------------------------- B walk: the E chunk into the B banks
    localparam [1:0] B_IDLE = 2'd0, B_WAIT = 2'd1, B_REQ = 2'd2, B_DRAIN = 2'd3;
    reg [1:0]             bstate;
    reg [`CPT_POS_W-1:0]  bn0;                  // the block's first column
    reg [`CPT_POS_W-1:0]  bcol;                 // the request's column in the block
    reg [`CPT_POS_W-1:0]  bcols;                // columns of the block: min(B_BLOCK_COLS, N - n0)
    reg [BK_W-1:0]        bank;
    reg [`CPT_B_AW-1:0]   slot_base;            // (column div COLS) b_col_words
    reg [`CPT_B_AW-1:0]   qbase;                // plane q Kw
    wire [`CPT_POS_W-1:0] left_cols = n_w - bn0;
    wire [`CPT_POS_W+15:0] bn0_x = {16'd0, bn0};
    // the queue: bank, base address (half + slot + plane), the block's last request
    reg [BK_W-1:0]        bq_bank [0:QD-1];
    reg [`CPT_B_AW-1:0]   bq_base [0:QD-1];
    reg                   bq_end [0:QD-1];
    reg [1:0]             bq_head, bq_tail;
    reg [2:0]             bq_count;
    wire                  b_take = eq_valid && eq_ready;
    wire                  b_pop = em_valid && em_last;
    wire                  b_last_req = eq_plane == b_bits - 1'b1 && bcol + 1'b1 == bcols;
    wire [2:0]            bq_count_next = bq_count + {2'd0, b_take} - {2'd0, b_pop};

    assign b_issue = bstate == B_WAIT && !b_busy;

    always @(posedge clk) begin
        b_we <= {COLS{1'b0}};
        b_loaded <= 1'b0;
        if (rst) begin
            bstate <= B_IDLE;
            eq_valid <= 1'b0;
            bq_head <= 0;
            bq_tail <= 0;
            bq_count <= 0;
        end else if (start) begin
            bstate <= B_WAIT;
            bn0 <= 0;
            bcols <= n_w < BBC_X ? n_w : BBC_X;
            eq_valid <= 1'b0;
            bq_head <= 0;
            bq_tail <= 0;
            bq_count <= 0;
        end else begin
            bq_count <= bq_count_next;
            if (b_take) begin
                bq_bank[bq_tail] <= bank;
                bq_base[bq_tail] <= (b_cur ? HALF_B : {`CPT_B_AW{1'b0}}) + slot_base + qbase;
                bq_end[bq_tail] <= b_last_req;
                bq_tail <= bq_tail + 1'b1;
            end
            if (em_valid) begin
                b_we <= {{(COLS-1){1'b0}}, 1'b1} << bq_bank[bq_head];
                b_waddr <= bq_base[bq_head] + em_word_x[`CPT_B_AW-1:0];
                b_wdata <= em_data;
                if (em_last) begin
                    bq_head <= bq_head + 1'b1;
                    if (bq_end[bq_head]) begin
                        b_loaded <= 1'b1;       // with the block's last word written (as the reader)
                        if (bn0 + BBC_X < n_w) begin
                            bn0 <= bn0 + BBC_X;
                            bcols <= left_cols - BBC_X < BBC_X ? left_cols - BBC_X : BBC_X;
                            bstate <= B_WAIT;
                        end else begin
                            bstate <= B_IDLE;
                        end
                    end
                end
            end
            case (bstate)
                B_WAIT: if (!b_busy) begin
                    bcol <= 0;
                    bank <= 0;
                    slot_base <= 0;
                    qbase <= 0;
                    eq_c <= bn0_x[15:0];
                    eq_plane <= 0;
                    eq_valid <= 1'b1;
                    bstate <= B_REQ;
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
    localparam [2:0] A_IDLE = 3'd0, A_TILE = 3'd1, A_REQ = 3'd2, A_DRAIN = 3'd3, A_NEXT = 3'd4;
    reg [2:0]             astate;
    reg [`CPT_POS_W-1:0]  an0, m0;              // block's first column, tile's first result row
    reg [`CPT_POS_W-1:0]  r;                    // the request's row in the tile
    reg [`CPT_POS_W-1:0]  tile_rows;            // min(ROWS, M - m0)
    reg                   half;
    reg [`CPT_A_AW-1:0]   pbase;                // plane p Kw
    wire [15:0]           c_last = c - 1'b1;
    wire [1:0]            kw_last = kw - 1'b1;
    // the queue: row (bank), base address (half + plane), the tile's last request
    reg [`CPT_POS_W-1:0]  aq_row [0:QD-1];
    reg [`CPT_A_AW-1:0]   aq_base [0:QD-1];
    reg                   aq_end [0:QD-1];
    reg [1:0]             aq_head, aq_tail;
    reg [2:0]             aq_count;
    wire                  a_take = xq_valid && xq_ready;
    wire                  a_pop = xm_valid && xm_last;
    wire                  a_last_req = xq_plane == a_bits - 1'b1 && r + 1'b1 == tile_rows;
    wire [2:0]            aq_count_next = aq_count + {2'd0, a_take} - {2'd0, a_pop};

    assign a_issue = astate == A_TILE && !a_busy[half];
    assign a_issue_half = half;

    always @(posedge clk) begin
        a_we <= {ROWS{1'b0}};
        a_loaded <= 1'b0;
        if (rst) begin
            astate <= A_IDLE;
            xq_valid <= 1'b0;
            aq_head <= 0;
            aq_tail <= 0;
            aq_count <= 0;
        end else if (start) begin
            astate <= A_TILE;
            an0 <= 0;
            m0 <= 0;
            r <= 0;
            tile_rows <= m_w < ROWS_X ? m_w : ROWS_X;
            half <= 1'b0;
            xq_i <= 0;
            xq_j <= 0;
            xq_c <= 0;
            xq_plane <= 0;
            pbase <= 0;
            xq_valid <= 1'b0;
            aq_head <= 0;
            aq_tail <= 0;
            aq_count <= 0;
        end else begin
            aq_count <= aq_count_next;
            if (a_take) begin
                aq_row[aq_tail] <= r;
                aq_base[aq_tail] <= (half ? HALF_A : {`CPT_A_AW{1'b0}}) + pbase;
                aq_end[aq_tail] <= a_last_req;
                aq_tail <= aq_tail + 1'b1;
            end
            if (xm_valid) begin
                a_we <= {{(ROWS-1){1'b0}}, 1'b1} << aq_row[aq_head];
                a_waddr <= aq_base[aq_head] + xm_word_x[`CPT_A_AW-1:0];
                a_wdata <= xm_data;
                if (xm_last) begin
                    aq_head <= aq_head + 1'b1;
                    if (aq_end[aq_head]) begin
                        a_loaded <= 1'b1;       // with the tile's last word written (as the reader)
                        a_loaded_half <= half;
                        astate <= A_NEXT;
                    end
                end
            end
            case (astate)
                A_TILE: if (!a_busy[half]) begin
                    astate <= A_REQ;
                    xq_valid <= 1'b1;
                end
                A_REQ: begin
                    xq_valid <= aq_count_next < 3'd3;
                    if (a_take) begin
                        if (xq_plane != a_bits - 1'b1) begin
                            xq_plane <= xq_plane + 1'b1;
                            pbase <= pbase + kw_a[`CPT_A_AW-1:0];
                        end else begin
                            // the row is done: the next (i, j, c), channel-minor
                            xq_plane <= 0;
                            pbase <= 0;
                            r <= r + 1'b1;
                            if (xq_c != c_last) begin
                                xq_c <= xq_c + 1'b1;
                            end else begin
                                xq_c <= 0;
                                if (xq_j != kw_last) begin
                                    xq_j <= xq_j + 1'b1;
                                end else begin
                                    xq_j <= 0;
                                    xq_i <= xq_i + 1'b1;
                                end
                            end
                        end
                        if (a_last_req) begin
                            xq_valid <= 1'b0;
                            astate <= A_DRAIN;  // until the tile's last word (the data side moves on)
                        end
                    end
                end
                A_NEXT: begin
                    // next tile, next block (its tiles again from row 0), or done
                    r <= 0;
                    half <= !half;
                    if (m0 + ROWS_X < m_w) begin
                        m0 <= m0 + ROWS_X;
                        tile_rows <= (m_w - m0 - ROWS_X) < ROWS_X ? m_w - m0 - ROWS_X : ROWS_X;
                        astate <= A_TILE;
                    end else if (an0 + BBC_X < n_w) begin
                        an0 <= an0 + BBC_X;
                        m0 <= 0;
                        tile_rows <= m_w < ROWS_X ? m_w : ROWS_X;
                        xq_i <= 0;
                        xq_j <= 0;
                        xq_c <= 0;
                        astate <= A_TILE;
                    end else begin
                        astate <= A_IDLE;
                    end
                end
                default: ;
            endcase
        end
    end

    wire unused = &{1'b0, batch_x[`CPT_DIM_W+15:16], n_x[`CPT_DIM_W+15:16], kw_x[`CPT_KW_W+15:16], xm_word_x,
                    em_word_x, kw_b, kw_a, bcw_b, bn0_x};
endmodule

`default_nettype wire
`endif
