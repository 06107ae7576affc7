// AXI4 write engine: writes drained C rows to DDR.
//
// Tiles arrive in the order the feeder finished them; tile_info (from the feeder, at the tile's last
// step) gives the C address of the tile's row 0 and how many of its ROWS rows exist (M may end inside
// the tile).  Rows come out of the FIFO bottom first, so row r = ROWS-1-k of a tile is the k-th row.
// A row is COLS RESULT_W-bit words = ROW_BEATS beats at address base + r * stride, written in bursts
// of at most BURST_BEATS that never cross 4 KiB; rows past M are dropped.
//
// The AW side runs ahead of the data only over rows already in the FIFO; for every burst it pushes
// (length, row end) into a queue the W side follows.  The B side counts outstanding bursts and notes
// error responses.  `done` pulses once the final tile is written and every response is in.
//
// A conv call with flags C16 (`c16`) writes int16 results: each row's COLS words are cut to their low 16 bits (the
// call's worst case fits, cpt_conv_setup) and packed into ROW_BEATS / 2 beats (COLS x 16 is whole beats: a rule
// of every config with the engine, cpt_hw.hw.config); c_stride and the tile addresses are then int16's.
//
// A stride-2 input gradient's phase writes its result rows 2 apart (and across dX rows): cpt_conv_rows
// follows the rows (row_next: a row is closed) and gives each its offset from the linear address, row_delta
// (0 for every other call).

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_writer #(
    parameter integer ROWS = `CPT_ROWS,           // config: PE array rows
    parameter integer COLS = `CPT_COLS,           // config: PE array columns
    parameter integer AXI_DW = `CPT_AXI_DW,       // config: m_axi data bits
    parameter integer AW = `CPT_AXI_AW,           // config: m_axi address bits
    parameter integer BURST_BEATS = `CPT_BURST_BEATS   // config: beats per full burst
) (
    input  wire                          clk,
    input  wire                          rst,
    input  wire                          start,
    input  wire [AW-1:0]                 c_stride,          // bytes per row of C
    input  wire [AW-1:0]                 c_tile_span,       // (ROWS - 1) * c_stride
    input  wire                          c16,               // int16 results (a conv call's flags C16)

    input  wire                          tile_empty,
    input  wire [`CPT_TI_W-1:0]          tile_info,         // {final, rows valid, address of row 0}
    output wire                          tile_pop,
    input  wire [AW-1:0]                 row_delta,         // added to the row's address (cpt_conv_rows)
    output wire                          row_next,          // pulse: the current row is closed

    input  wire                          row_pushed,        // a row entered the FIFO (drain)
    input  wire                          fifo_empty,
    input  wire [COLS*`CPT_RESULT_W-1:0] fifo_dout,
    output wire                          fifo_pop,

    output wire                          m_axi_awvalid,
    input  wire                          m_axi_awready,
    output wire [AW-1:0]                 m_axi_awaddr,
    output wire [7:0]                    m_axi_awlen,
    output wire [2:0]                    m_axi_awsize,
    output wire [1:0]                    m_axi_awburst,
    output wire                          m_axi_wvalid,
    input  wire                          m_axi_wready,
    output wire [AXI_DW-1:0]             m_axi_wdata,
    output wire [AXI_DW/8-1:0]           m_axi_wstrb,
    output wire                          m_axi_wlast,
    input  wire                          m_axi_bvalid,
    output wire                          m_axi_bready,
    input  wire [1:0]                    m_axi_bresp,

    output reg                           done,              // pulse
    output reg                           resp_err           // sticky per call
);
    localparam integer BYTES = AXI_DW / 8;
    localparam integer LOG_BYTES = $clog2(BYTES);
    localparam integer ROW_BEATS = COLS * `CPT_RESULT_W / AXI_DW;
    localparam integer RB_W = $clog2(ROW_BEATS + 1);
    localparam integer ROW_BEATS16 = ROW_BEATS / 2;          // int16 results: half the beats

    initial begin
        if (AW + `CPT_RV_W + 1 != `CPT_TI_W) begin
            $display("%m: error: AW = %0d, but tile_info (CPT_TI_W = %0d bits) holds %0d-bit addresses",
                     AW, `CPT_TI_W, `CPT_TI_W - `CPT_RV_W - 1);
            $finish;
        end
        if (ROW_BEATS * AXI_DW != COLS * `CPT_RESULT_W) begin
            $display("%m: error: COLS x RESULT_W = %0d must be a multiple of AXI_DW = %0d",
                     COLS * `CPT_RESULT_W, AXI_DW);
            $finish;
        end
    end

    // ------------------------------------------------------------------ AW side
    wire         t_final = tile_info[`CPT_TI_W-1];
    wire [`CPT_RV_W-1:0] t_rows = tile_info[AW +: `CPT_RV_W];
    wire [AW-1:0] t_base = tile_info[AW-1:0];

    localparam [`CPT_RV_W-1:0] LAST_K = ROWS[`CPT_RV_W-1:0] - 1'b1;
    reg  [`CPT_RV_W-1:0] k;                          // row of the current tile, FIFO order
    reg  [AW-1:0] row_addr, cur;
    reg  [RB_W-1:0] left;                       // beats of the current row not yet in a burst
    reg  in_row, tile_open, aw_done;
    reg  [7:0] avail;                           // rows in the FIFO the AW side has not handled
    wire [`CPT_RV_W-1:0] r = LAST_K - k;
    wire row_valid = r < t_rows;

    // queue entries: {skip, row end, beats}.  A push is registered (q_push), so room is judged on the
    // fill level plus the push still in flight: a full check alone would let a second push be lost.
    wire       q_full, q_empty;
    wire [3:0] q_count;
    wire       q_room = ({1'b0, q_count} + {4'd0, q_push}) < 5'd8;
    wire [10:0] q_out;
    reg        q_push;
    reg [10:0] q_in;
    wire       q_pop;
    sync_fifo #(.WIDTH(11), .DEPTH(8), .AW(3)) wq (
        .clk(clk), .rst(rst || start), .push(q_push), .din(q_in), .pop(q_pop), .dout(q_out),
        .empty(q_empty), .full(q_full), .count(q_count)
    );

    wire [8:0] beats;
    wire [8:0] left9 = {{(9-RB_W){1'b0}}, left};
    axi_burst #(.BYTES(BYTES), .MAX_BEATS(BURST_BEATS), .RW(RB_W)) aw_split (
        .addr(cur[11:0]), .remaining(left), .beats(beats)
    );

    assign m_axi_awvalid = in_row && q_room;
    assign m_axi_awaddr = cur;
    assign m_axi_awlen = beats[7:0] - 8'd1;
    assign m_axi_awsize = LOG_BYTES[2:0];
    assign m_axi_awburst = 2'b01;
    wire aw_hs = m_axi_awvalid && m_axi_awready;
    wire row_ready = tile_open && !in_row && avail != 0 && q_room;
    wire row_closing = (row_ready && !row_valid) || (aw_hs && beats == left9);
    assign tile_pop = row_closing && k == LAST_K;
    wire avail_dec = row_closing;
    assign row_next = row_closing;

    always @(posedge clk) begin
        q_push <= 1'b0;
        if (rst || start) begin
            tile_open <= 1'b0;
            in_row <= 1'b0;
            aw_done <= 1'b0;
            avail <= 0;
        end else begin
            avail <= avail + {7'd0, row_pushed} - {7'd0, avail_dec};
            if (!tile_open && !tile_empty && !aw_done) begin
                tile_open <= 1'b1;
                k <= 0;
                row_addr <= t_base + c_tile_span;
            end
            if (row_ready) begin
                if (row_valid) begin
                    in_row <= 1'b1;
                    cur <= row_addr + row_delta;
                    left <= c16 ? ROW_BEATS16[RB_W-1:0] : ROW_BEATS[RB_W-1:0];
                end else begin
                    q_in <= {1'b1, 1'b1, 9'd0};
                    q_push <= 1'b1;
                end
            end
            if (aw_hs) begin
                q_in <= {1'b0, beats == left9, beats};
                q_push <= 1'b1;
                cur <= cur + ({{(AW-9){1'b0}}, beats} << LOG_BYTES);
                left <= left - beats[RB_W-1:0];
                if (beats == left9) in_row <= 1'b0;
            end
            if (row_closing) begin
                row_addr <= row_addr - c_stride;
                k <= k + 1'b1;
                if (k == LAST_K) begin
                    tile_open <= 1'b0;
                    if (t_final) aw_done <= 1'b1;
                end
            end
        end
    end

    // ------------------------------------------------------------------ W side
    // A burst may follow the previous one without a gap; a skip token (a row past M) only pops its
    // FIFO row while no burst is in progress, so the FIFO never pops twice in one cycle.
    reg         w_busy, w_row_end;
    reg  [8:0]  w_left;
    reg  [RB_W-1:0] w_beat;                     // beat of the FIFO head row
    wire w_hs = m_axi_wvalid && m_axi_wready;
    wire w_ending = w_hs && w_left == 1;
    wire head_burst = !q_empty && !q_out[10];
    wire head_skip = !q_empty && q_out[10];
    wire take_burst = head_burst && (!w_busy || w_ending);
    wire take_skip = head_skip && !w_busy && !fifo_empty;
    assign q_pop = take_burst || take_skip;
    assign fifo_pop = take_skip || (w_ending && w_row_end);
    assign m_axi_wvalid = w_busy;
    // int16 results: the low halves of the row's words, packed (zeros above them: never addressed)
    wire [COLS*`CPT_RESULT_W-1:0] packed16;
    genvar ci;
    generate
        for (ci = 0; ci < COLS; ci = ci + 1) begin : p16
            assign packed16[ci * 16 +: 16] = fifo_dout[ci * `CPT_RESULT_W +: 16];
        end
    endgenerate
    assign packed16[COLS*`CPT_RESULT_W-1:COLS*16] = {(COLS * (`CPT_RESULT_W - 16)){1'b0}};
    wire [COLS*`CPT_RESULT_W-1:0] row_data = c16 ? packed16 : fifo_dout;
    assign m_axi_wdata = row_data[w_beat * AXI_DW +: AXI_DW];
    assign m_axi_wstrb = {(AXI_DW/8){1'b1}};
    assign m_axi_wlast = (w_left == 1);

    always @(posedge clk) begin
        if (rst || start) begin
            w_busy <= 1'b0;
            w_beat <= 0;
        end else begin
            if (take_burst) begin
                w_busy <= 1'b1;
                w_left <= q_out[8:0];
                w_row_end <= q_out[9];
            end else if (w_hs) begin
                w_left <= w_left - 1'b1;
                if (w_ending) w_busy <= 1'b0;
            end
            if (w_hs) w_beat <= (w_ending && w_row_end) ? {RB_W{1'b0}} : w_beat + 1'b1;
        end
    end

    // ------------------------------------------------------------------ B side and completion
    reg [15:0] outstanding;
    assign m_axi_bready = 1'b1;
    wire b_hs = m_axi_bvalid && m_axi_bready;
    reg finished;

    always @(posedge clk) begin
        done <= 1'b0;
        if (rst || start) begin
            outstanding <= 0;
            resp_err <= 1'b0;
            finished <= 1'b0;
        end else begin
            outstanding <= outstanding + {15'd0, aw_hs} - {15'd0, b_hs};
            if (b_hs && m_axi_bresp[1]) resp_err <= 1'b1;
            if (aw_done && q_empty && !w_busy && !q_push && outstanding == 0 && !finished) begin
                done <= 1'b1;
                finished <= 1'b1;
            end
        end
    end

    // Only BRESP[1] marks an error (SLVERR, DECERR).
    wire unused = &{1'b0, m_axi_bresp[0], q_full};
endmodule

`default_nettype wire
