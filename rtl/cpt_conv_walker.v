// Forward convolution: forms the call's A tiles on chip from the X stream (the im2col former) in place of
// the reader's A loads (docs/architecture.md, "Forward and input gradient: line buffer and im2col former").
// A stride-1 input gradient is the same walk over the E stream (cpt_conv_setup gives E's geometry, the dX
// result rows and columns as rows/wo, and the former's offsets kh - 1 - padding, kw - 1 - padding).
//
// The call is a GEMM of M = batch x rows x Wo result rows (n, ho, wo), row-major as C is written; A row m is
// the im2col row of pixel m, a_bits planes of Kw = ceil(kh kw Cp / D) words, exactly what the reader would
// have stored for a GEMM with K = kh kw Cp.  For each B block (the X stream is read again per block), for
// each A tile of ROWS rows, the walker waits for its ping-pong half (a_busy, as the reader does), asks the
// former for the tile's pixels in pieces of one output row (at most 16 pixels), plane by plane, and writes
// each A word into bank r (the row in the tile) at half + plane Kw + word; after the tile's last word it
// reports the half loaded.  Rows past M in the last tile are left as they are (the writer skips them).
//
// The former holds one image: before the first request of an image the walker restarts it (`start`) with
// that image's rows [row0, row1); the reader's stream of the next image waits (s_ready low) until then.
//
// LANES formers (lanes) form a piece together, LANES A words a cycle: every lane takes every word of the
// stream (a word moves when all are ready) and so holds the same rows; lane l forms pixels [l q, l q + q) of
// the piece, q = ceil(count / LANES), into their banks through write port l (a_we/a_waddr/a_wdata, lane l's
// slice; the banks differ because the pixels do).  A lane without pixels in a piece still gets a request, for
// the piece's first pixel, whose words are dropped: a former frees ring rows below its newest request's rows
// only, so all must follow the same output rows or the stream would stall on an idle one.  One request per
// lane at a time: a plane's next requests are issued after every lane's last word.

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_conv_walker #(
    parameter integer ROWS = `CPT_ROWS,                 // config rows: A rows per tile, A banks
    parameter integer D = `CPT_D,                       // config dot_width
    parameter integer OP_BITS = `CPT_OP_BITS,           // config operand_bits
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS, // config b_block_cols
    parameter integer MAX_ROW_BITS = `CPT_MAX_ROW_BITS, // the former's widest row-plane
    parameter integer LANES = 4                         // formers, A words formed per cycle: 1, 2 or 4
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,              // pulse: a forward call runs, geometry below valid
    // geometry (cpt_conv_setup), stable during the call
    input  wire [15:0]            cp,
    input  wire [15:0]            width,
    input  wire [15:0]            height,
    input  wire [1:0]             kh,
    input  wire [1:0]             kw,
    input  wire [1:0]             stride,
    input  wire signed [2:0]      pad_h,              // the former's row and column offsets (cpt_conv_setup)
    input  wire signed [2:0]      pad_w,
    input  wire [15:0]            row0,
    input  wire [15:0]            row1,
    input  wire [15:0]            band0,
    input  wire [15:0]            rows,
    input  wire [15:0]            wo,
    input  wire [`CPT_BITS_W-1:0] a_bits,
    input  wire [`CPT_DIM_W-1:0]  m,                  // result rows of the call
    input  wire [`CPT_DIM_W-1:0]  n,                  // result columns (B blocks)
    input  wire [`CPT_KW_W-1:0]   k_words,            // Kw
    // the X stream (row-planes of one image after another, as the reader delivers them)
    input  wire                   s_valid,
    output wire                   s_ready,
    input  wire [D-1:0]           s_data,
    // A buffer ownership (cpt_core)
    input  wire [1:0]             a_busy,
    output wire                   a_issue,            // pulse: the walker takes half a_issue_half
    output wire                   a_issue_half,
    output reg                    a_loaded,           // pulse: half a_loaded_half holds its tile
    output reg                    a_loaded_half,
    // A bank writes
    // A bank writes, one port per lane (lane l: [l ROWS +: ROWS] and so on; no two lanes write one bank at once)
    output reg  [LANES*ROWS-1:0]  a_we,
    output reg  [LANES*`CPT_A_AW-1:0] a_waddr,
    output reg  [LANES*D-1:0]     a_wdata,
    output wire                   geom_err            // the former refused the geometry (never, when setup passed)
);
    localparam integer HALF = `CPT_A_HALF;
    localparam [`CPT_A_AW-1:0] HALF_A = HALF[`CPT_A_AW-1:0];
    localparam integer WORD_W = $clog2(9 * (MAX_ROW_BITS / D));
    localparam [`CPT_POS_W-1:0] ROWS_X = ROWS[`CPT_POS_W-1:0];
    localparam [`CPT_POS_W-1:0] BBC_X = B_BLOCK_COLS[`CPT_POS_W-1:0];

    initial begin
        if (ROWS < 1) begin
            $display("%m: error: ROWS = %0d must be >= 1", ROWS);
            $finish;
        end
        if (LANES != 1 && LANES != 2 && LANES != 4) begin
            $display("%m: error: LANES = %0d must be 1, 2 or 4", LANES);
            $finish;
        end
    end

    // ---------------------------------------------------------------- the formers (lanes)
    localparam integer LOG_LANES = LANES == 4 ? 2 : LANES == 2 ? 1 : 0;
    reg                   f_start;
    reg  [LANES-1:0]      rq_valid;
    wire [LANES-1:0]      rq_ready;
    reg  [15:0]           rq_ho;
    reg  [LANES*16-1:0]   rq_wo0;             // lane l's at [l 16 +: 16]
    reg  [`CPT_BITS_W-1:0] rq_plane;
    reg  [LANES*5-1:0]    rq_count;
    wire [LANES-1:0]      m_valid, m_last, f_s_ready, f_geom_err;
    wire [LANES*D-1:0]    m_data;             // lane l's at [l D +: D], and so on
    wire [LANES*4-1:0]    m_pixel;
    wire [LANES*WORD_W-1:0] m_word;

    // a stream word moves when every lane takes it: each sees it valid only while all others are ready
    assign s_ready = &f_s_ready;
    assign geom_err = |f_geom_err;
    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : lane
            localparam [LANES-1:0] SELF = 1 << l;
            cpt_im2col_former #(.D(D), .OP_BITS(OP_BITS), .MAX_ROW_BITS(MAX_ROW_BITS)) former (
                .clk(clk), .rst(rst), .start(f_start), .cp(cp), .width(width), .height(height), .kh(kh), .kw(kw),
                .stride(stride), .pad_h(pad_h), .pad_w(pad_w), .bits(a_bits), .row0(row0), .row1(row1),
                .geom_err(f_geom_err[l]), .s_valid(s_valid && &(f_s_ready | SELF)), .s_ready(f_s_ready[l]),
                .s_data(s_data), .rq_valid(rq_valid[l]), .rq_ready(rq_ready[l]), .rq_ho(rq_ho), .rq_wo0(rq_wo0[l*16 +: 16]),
                .rq_plane(rq_plane), .rq_count(rq_count[l*5 +: 5]), .m_valid(m_valid[l]), .m_ready(1'b1),
                .m_data(m_data[l*D +: D]), .m_pixel(m_pixel[l*4 +: 4]), .m_word(m_word[l*WORD_W +: WORD_W]),
                .m_last(m_last[l])
            );
        end
    endgenerate

    // ---------------------------------------------------------------- tile walk
    localparam [2:0] W_IDLE = 3'd0, W_TILE = 3'd1, W_PIECE = 3'd2, W_START = 3'd3, W_REQ = 3'd4,
                     W_DATA = 3'd5, W_NEXT = 3'd6;
    reg [2:0] state;

    reg [`CPT_POS_W-1:0] n0, m0;             // block's first column, tile's first result row
    reg [`CPT_POS_W-1:0] r;                  // the piece's first row in the tile
    reg [`CPT_POS_W-1:0] tile_rows;          // min(ROWS, M - m0)
    reg                  half;
    reg [`CPT_DIM_W-1:0] img;                // the pixel at r: image, output row, column
    reg [15:0]           ho, col;
    reg                  f_valid;            // the former holds image f_img
    reg [`CPT_DIM_W-1:0] f_img;
    reg [`CPT_BITS_W-1:0] plane;
    reg [`CPT_A_AW-1:0]  plane_base;         // plane x Kw
    reg [4:0]            count;

    wire [`CPT_POS_W-1:0] m_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, m};
    wire [`CPT_POS_W-1:0] n_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, n};
    wire [`CPT_POS_W-1:0] left_in_tile = tile_rows - r;
    wire [15:0]           left_in_row = wo - col;
    // piece: min(16, rows left in the tile, pixels left in the output row)
    wire [4:0]            c1 = left_in_tile < 16 ? left_in_tile[4:0] : 5'd16;
    wire [4:0]            piece = left_in_row < {11'd0, c1} ? left_in_row[4:0] : c1;
    wire                  last_plane = plane == a_bits - 1'b1;
    wire [`CPT_POS_W-1:0] r_next = r + {{(`CPT_POS_W-5){1'b0}}, count};
    // the piece's split: q pixels a lane, lane l from pixel l q on (lanes past the piece repeat pixel 0 unwritten)
    wire [4:0]            q = (count + LANES[4:0] - 5'd1) >> LOG_LANES;
    reg  [LANES-1:0]      sent, fin;
    integer               li;          // this plane's request accepted, its last word written
    wire [`CPT_KW_W+`CPT_A_AW-1:0] k_words_x = {{`CPT_A_AW{1'b0}}, k_words};
    wire [`CPT_A_AW-1:0]  plane_addr = (half ? HALF_A : {`CPT_A_AW{1'b0}}) + plane_base;
    // every lane has written its plane's last word (by this cycle's write at the latest)
    wire [LANES-1:0]      fin_now = fin | (m_valid & m_last);
    wire                  plane_done = &fin_now;

    assign a_issue = state == W_TILE && !a_busy[half];
    assign a_issue_half = half;

    // the lanes' words go to their banks as they come (in any state: one lane may deliver while another's
    // request still waits to be taken); a lane's words of a piece without pixels of its own are dropped
    generate
        for (l = 0; l < LANES; l = l + 1) begin : lane_write
            localparam [4:0] L5 = l;
            wire [4:0] first = q * L5;               // the lane's first pixel of the piece
            wire [WORD_W+`CPT_A_AW-1:0] word_x = {{`CPT_A_AW{1'b0}}, m_word[l*WORD_W +: WORD_W]};
            always @(posedge clk) begin
                a_we[l*ROWS +: ROWS] <= {ROWS{1'b0}};
                if (m_valid[l] && first < count && !rst && !start)
                    a_we[l*ROWS +: ROWS] <= {{(ROWS-1){1'b0}}, 1'b1} << (r + {{(`CPT_POS_W-5){1'b0}}, first}
                                                                         + {{(`CPT_POS_W-4){1'b0}}, m_pixel[l*4 +: 4]});
                if (m_valid[l]) begin
                    a_waddr[l*`CPT_A_AW +: `CPT_A_AW] <= plane_addr + word_x[`CPT_A_AW-1:0];
                    a_wdata[l*D +: D] <= m_data[l*D +: D];
                end
            end
            wire unused_word = &{1'b0, word_x};
        end
    endgenerate

    always @(posedge clk) begin
        f_start <= 1'b0;
        a_loaded <= 1'b0;
        fin <= state == W_DATA && plane_done ? {LANES{1'b0}} : fin_now;
        if (rst) begin
            state <= W_IDLE;
            rq_valid <= {LANES{1'b0}};
            sent <= {LANES{1'b0}};
            fin <= {LANES{1'b0}};
        end else if (start) begin
            sent <= {LANES{1'b0}};
            fin <= {LANES{1'b0}};
            state <= W_TILE;
            n0 <= 0;
            m0 <= 0;
            r <= 0;
            tile_rows <= m_w < ROWS_X ? m_w : ROWS_X;
            half <= 1'b0;
            img <= 0;
            ho <= band0;
            col <= 0;
            f_valid <= 1'b0;
            rq_valid <= {LANES{1'b0}};
        end else begin
            case (state)
                W_TILE: if (!a_busy[half]) state <= W_PIECE;
                W_PIECE: begin
                    count <= piece;
                    plane <= 0;
                    plane_base <= 0;
                    if (!f_valid || f_img != img) begin
                        f_start <= 1'b1;            // geometry is held; rows of image img from here on
                        f_valid <= 1'b1;
                        f_img <= img;
                        state <= W_START;
                    end else begin
                        state <= W_REQ;
                    end
                end
                W_START: state <= W_REQ;            // the former takes requests the cycle after start
                W_REQ: begin
                    rq_ho <= ho;
                    rq_plane <= plane;
                    for (li = 0; li < LANES; li = li + 1) begin
                        // lane li: pixels [li q, min(count, li q + q)), or pixel 0 (unwritten) past the piece
                        rq_wo0[li*16 +: 16] <= q * li[4:0] < count ? col + {11'd0, q * li[4:0]} : col;
                        rq_count[li*5 +: 5] <= q * li[4:0] >= count ? 5'd1
                                              : count - q * li[4:0] < q ? count - q * li[4:0] : q;
                    end
                    rq_valid <= ~sent & ~(rq_valid & rq_ready);
                    sent <= sent | (rq_valid & rq_ready);
                    if ((sent | (rq_valid & rq_ready)) == {LANES{1'b1}}) state <= W_DATA;
                end
                W_DATA: if (plane_done) begin
                    sent <= 0;
                    if (!last_plane) begin
                        plane <= plane + 1'b1;
                        plane_base <= plane_base + k_words_x[`CPT_A_AW-1:0];
                        state <= W_REQ;
                    end else begin
                        state <= W_NEXT;
                        // the piece is done: advance the pixel position
                        r <= r_next;
                        if ({11'd0, count} == left_in_row) begin
                            col <= 0;
                            if (ho == band0 + rows - 1'b1) begin
                                ho <= band0;
                                img <= img + 1'b1;
                            end else begin
                                ho <= ho + 1'b1;
                            end
                        end else begin
                            col <= col + {11'd0, count};
                        end
                        if (r_next == tile_rows) begin
                            a_loaded <= 1'b1;   // with the tile's last word written (same edge as the reader)
                            a_loaded_half <= half;
                        end
                    end
                end
                W_NEXT: begin
                    if (r != tile_rows) begin
                        state <= W_PIECE;
                    end else begin
                        // next tile, next block, or done
                        r <= 0;
                        half <= !half;
                        if (m0 + ROWS_X < m_w) begin
                            m0 <= m0 + ROWS_X;
                            tile_rows <= (m_w - m0 - ROWS_X) < ROWS_X ? m_w - m0 - ROWS_X : ROWS_X;
                            state <= W_TILE;
                        end else if (n0 + BBC_X < n_w) begin
                            n0 <= n0 + BBC_X;
                            m0 <= 0;
                            tile_rows <= m_w < ROWS_X ? m_w : ROWS_X;
                            img <= 0;
                            ho <= band0;
                            col <= 0;
                            f_valid <= 1'b0;         // the X stream starts again from the first image
                            state <= W_TILE;
                        end else begin
                            state <= W_IDLE;
                        end
                    end
                end
                default: ;
            endcase
        end
    end

    wire unused = &{1'b0, k_words_x};
endmodule

`default_nettype wire
`endif
