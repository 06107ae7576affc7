// C row addresses of a stride-2 input-gradient phase (convolution engine, interface 4).
//
// A phase (ry, rx) of a stride-2 input gradient (cpt_conv_setup) is a GEMM whose result row j is the phase
// pixel (img, gy, gx), j = (img gh + gy) gw + gx, row-major as the walker forms it; its C row is dX pixel
// (n, h, w) = (img, h0 + 2 gy, rx + 2 gx), i.e. row crow(j) = img rows W + (dh + 2 gy) W + rx + 2 gx of the
// call's C (rows (n, h, w) of the band, dh = h0 - band0).  cpt_writer computes the linear address
// c_base + j S (+ the column tile's offset; S = c_stride) and adds row_delta = (crow(j) - j) S, which this unit
// keeps for the row the writer is at.
//
// The writer takes tiles in the feeder's order (B block, A tile, column tile) and each tile's rows from the
// last (row ROWS - 1, the FIFO's order) to the first, so the delta is stepped backwards one pixel per closed
// row (row_next), by one of three constants (a column, a phase row, an image).  At a tile the delta restarts
// from its first row's, the A tile's top pixel j = m0 + ROWS - 1: the A tile of the previous tile (another
// column tile), the next A tile (whose top is found ahead, one pixel a cycle, while the writer writes the
// current one) or A tile 0 (a new B block).  Which one the head tile of the tile FIFO is follows from its
// linear address (tile_base): A tiles are ROWS S (c_tile_step) apart and a column tile's offset is below S.
// `ready` tells the writer (through its tile_empty) that the head tile's first row is set up.

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_conv_rows #(
    parameter integer ROWS = `CPT_ROWS,       // config rows: result rows per tile
    parameter integer AW = `CPT_AXI_AW        // config axi_addr_width
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,               // pulse: a phase runs, the inputs below are valid until it ends
    input  wire [AW-1:0] c_base,              // cpt_setup's
    input  wire [AW-1:0] c_stride,            // S: bytes of a C row
    input  wire [AW-1:0] c_tile_step,         // ROWS S
    input  wire [15:0]   dx_w,                // W
    input  wire [15:0]   dx_rows,             // the band's dX rows per image
    input  wire [15:0]   gh,                  // the phase's rows per image, >= 1
    input  wire [15:0]   gw,                  // its pixels per row, >= 1
    input  wire          dh,                  // its first dX row - band0
    input  wire          rx,                  // its first dX column
    input  wire          tile_empty,          // the tile FIFO (feeder to writer)
    input  wire [AW-1:0] tile_base,           // its head: the linear address of the tile's row 0
    input  wire          tile_pop,            // the writer is done with the head tile
    input  wire          row_next,            // the writer closed a row
    output reg           ready,               // the head tile's rows are set up
    output wire [AW-1:0] row_delta
);
    localparam integer RC_W = `CPT_RV_W;       // 0..ROWS
    localparam [RC_W-1:0] ROWS_C = ROWS[RC_W-1:0];
    // S = round_up(N, COLS) result bytes: a position (N + COLS <= N + B_BLOCK_COLS) in bytes; the products
    // below take S at this width
    localparam integer S_W = `CPT_POS_W + `CPT_LOG_RESULT_BYTES;

    initial begin
        if (ROWS < 1) begin
            $display("%m: error: ROWS = %0d must be >= 1", ROWS);
            $finish;
        end
    end

    localparam [2:0] T_IDLE = 3'd0, T_COEF = 3'd1, T_MUL = 3'd2, T_TOP0 = 3'd3, T_RUN = 3'd4;
    reg [2:0] state;

    // delta steps of one pixel forwards: along a phase row, to the next phase row, to the next image
    reg  [17:0] co_y;                          // their factors of S (and the first pixel's), each >= 0
    reg  [33:0] co_i;
    reg  [16:0] co_0;
    reg  [AW-1:0] e_y, e_i;
    wire [AW-1:0] e_x = c_stride;              // crow + 2, j + 1
    wire signed [35:0] w36 = {20'd0, dx_w}, gw36 = {20'd0, gw}, gh36 = {20'd0, gh}, rows36 = {20'd0, dx_rows};
    wire signed [35:0] co_y_s = 36'sd2 * w36 - 36'sd2 * gw36 + 36'sd1;
    wire signed [35:0] co_i_s = (rows36 - 36'sd2 * gh36 + 36'sd2) * w36 - 36'sd2 * gw36 + 36'sd1;
    wire [S_W-1:0] s_n = c_stride[S_W-1:0];
    wire [S_W+33:0] p_y = {16'd0, s_n} * {{S_W{1'b0}}, co_y};
    wire [S_W+33:0] p_i = {34'd0, s_n} * {{S_W{1'b0}}, co_i};
    wire [S_W+33:0] p_0 = {17'd0, s_n} * {{S_W{1'b0}}, co_0};
    wire [AW+S_W+33:0] p_y_x = {{AW{1'b0}}, p_y}, p_i_x = {{AW{1'b0}}, p_i}, p_0_x = {{AW{1'b0}}, p_0};

    // the pixel the look-ahead is at (fwd), the first A tile's top and the current A tile's, the writer's row
    reg  [15:0] f_x, f_y, t0_x, t0_y, tc_x, tc_y, b_x, b_y;
    reg  [AW-1:0] f_d, t0_d, tc_d, b_d;
    reg  [RC_W-1:0] f_left;                    // look-ahead steps still to go
    reg  [AW-1:0] m_lin;                       // the current A tile's m0 S
    assign row_delta = b_d;

    wire [AW-1:0] lin = tile_base - c_base;
    wire f_step = f_left != 0;

    always @(posedge clk) begin
        if (rst) begin
            state <= T_IDLE;
            ready <= 1'b0;
        end else if (start) begin
            state <= T_COEF;
            ready <= 1'b0;
        end else begin
            if (f_step) begin                      // one pixel forwards
                f_left <= f_left - 1'b1;
                if (f_x + 16'd1 != gw) begin
                    f_x <= f_x + 16'd1;
                    f_d <= f_d + e_x;
                end else if (f_y + 16'd1 != gh) begin
                    f_x <= 16'd0;
                    f_y <= f_y + 16'd1;
                    f_d <= f_d + e_y;
                end else begin
                    f_x <= 16'd0;
                    f_y <= 16'd0;
                    f_d <= f_d + e_i;
                end
            end
            if (row_next) begin                    // one pixel backwards
                if (b_x != 16'd0) begin
                    b_x <= b_x - 16'd1;
                    b_d <= b_d - e_x;
                end else if (b_y != 16'd0) begin
                    b_x <= gw - 16'd1;
                    b_y <= b_y - 16'd1;
                    b_d <= b_d - e_y;
                end else begin
                    b_x <= gw - 16'd1;
                    b_y <= gh - 16'd1;
                    b_d <= b_d - e_i;
                end
            end
            if (tile_pop) ready <= 1'b0;
            case (state)
                T_COEF: begin
                    // (2 W - 2 gw + 1), ((rows - 2 gh + 2) W - 2 gw + 1), dh W + rx: each >= 0
                    co_y <= co_y_s[17:0];
                    co_i <= co_i_s[33:0];
                    co_0 <= {1'b0, dh ? dx_w : 16'd0} + {16'd0, rx};
                    state <= T_MUL;
                end
                T_MUL: begin
                    e_y <= p_y_x[AW-1:0];
                    e_i <= p_i_x[AW-1:0];
                    f_x <= 16'd0;
                    f_y <= 16'd0;
                    f_d <= p_0_x[AW-1:0];
                    f_left <= ROWS_C - 1'b1;
                    state <= T_TOP0;
                end
                T_TOP0: if (!f_step) begin
                    {t0_x, t0_y, t0_d} <= {f_x, f_y, f_d};
                    {tc_x, tc_y, tc_d} <= {f_x, f_y, f_d};
                    m_lin <= {AW{1'b0}};
                    f_left <= ROWS_C;
                    state <= T_RUN;
                end
                T_RUN: if (!ready && !tile_empty) begin
                    if (lin < m_lin) begin                   // a new B block: A tile 0
                        {b_x, b_y, b_d} <= {t0_x, t0_y, t0_d};
                        {tc_x, tc_y, tc_d} <= {t0_x, t0_y, t0_d};
                        {f_x, f_y, f_d} <= {t0_x, t0_y, t0_d};
                        f_left <= ROWS_C;
                        m_lin <= {AW{1'b0}};
                        ready <= 1'b1;
                    end else if (lin - m_lin >= c_tile_step) begin   // the next A tile, once its top is found
                        if (!f_step) begin
                            {b_x, b_y, b_d} <= {f_x, f_y, f_d};
                            {tc_x, tc_y, tc_d} <= {f_x, f_y, f_d};
                            f_left <= ROWS_C;
                            m_lin <= m_lin + c_tile_step;
                            ready <= 1'b1;
                        end
                    end else begin                           // another column tile of the same A tile
                        {b_x, b_y, b_d} <= {tc_x, tc_y, tc_d};
                        ready <= 1'b1;
                    end
                end
                default: ;
            endcase
        end
    end

    wire unused = &{1'b0, p_y_x[AW+S_W+33:AW], p_i_x[AW+S_W+33:AW], p_0_x[AW+S_W+33:AW], co_y_s[35:18],
                    co_i_s[35:34], c_stride[AW-1:S_W]};
endmodule

`default_nettype wire
`endif
