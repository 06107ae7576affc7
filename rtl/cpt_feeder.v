// Feeder: walks the tiles of the call and streams one step per cycle into the PE array.
//
// Loop nest (docs/architecture.md): for each block of B_BLOCK_COLS columns (the B buffer), for each A
// tile of ROWS rows (ping-pong A buffer, half t mod 2), for each column tile of COLS columns of the
// block (slot of the B banks): a_bits x b_bits x Kw steps in the Horner order of sim/schedule.py --
// plane pairs (i, j) by falling i + j, the Kw words of each pair in a row; "shift" on the first step
// of every diagonal but the first, "neg" when exactly one plane is a signed top plane, "last" on the
// final step.  Bank addresses follow without multipliers: i Kw and j Kw are kept as running sums.
//
// A step is emitted in the cycle its bank addresses go to the RAMs; its control word and the mask of
// B columns past N (the B banks hold stale words there) come out one cycle later, together with
// the RAM data.  A tile's last step waits while the previous tile is still in flight or draining
// (drain_busy) or the writer's tile queue is full; emitting it pushes the tile's C address.
// Each new A tile and each new block costs one idle cycle (the wait states below).

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_feeder #(
    parameter integer ROWS = `CPT_ROWS,           // config: PE array rows
    parameter integer COLS = `CPT_COLS,           // config: PE array columns
    parameter integer OP_BITS = `CPT_OP_BITS,     // config: largest precision
    parameter integer K_WORDS = `CPT_K_WORDS,     // config: D-bit words per plane row at most
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS,  // config: columns of B per block
    parameter integer AW = `CPT_AXI_AW            // config: m_axi address bits
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,
    input  wire [`CPT_DIM_W-1:0]  m,
    input  wire [`CPT_DIM_W-1:0]  n,
    input  wire [`CPT_KW_W-1:0]   kw,
    input  wire [`CPT_BITS_W-1:0] a_bits,
    input  wire [`CPT_BITS_W-1:0] b_bits,
    input  wire                   a_signed,
    input  wire                   b_signed,
    input  wire [`CPT_RW_W-1:0]   a_row_words,
    input  wire [`CPT_RW_W-1:0]   b_col_words,
    input  wire [AW-1:0]          c_base,
    input  wire [AW-1:0]          c_tile_step,
    input  wire                   c16,               // int16 results (a conv call's flags C16)
    input  wire                   b_cur,             // the B half holding this call's blocks

    input  wire [1:0]             a_full,
    input  wire                   b_full,
    output wire                   a_release,         // pulse: the feeder is done with A half a_release_half
    output wire                   a_release_half,
    output wire                   b_release,         // pulse: the feeder is done with the B block

    output wire                   rd_en,
    output wire [`CPT_A_AW-1:0]   a_raddr,           // same address for every A bank
    output wire [`CPT_B_AW-1:0]   b_raddr,           // same address for every B bank
    output reg  [3:0]             ctl,               // {last, neg, shift, valid}, with the RAM data
    output reg  [COLS-1:0]        b_mask,            // with the RAM data: column c holds a real column of B

    input  wire                   drain_busy,
    output wire                   last_emit,         // pulse: a tile's last step goes out this cycle
    input  wire                   tile_full,
    output wire                   tile_push,
    output wire [`CPT_TI_W-1:0]   tile_info,         // {final, rows valid, C address of the tile's row 0}
    output reg                    busy
);
    initial begin
        if (AW + `CPT_RV_W + 1 != `CPT_TI_W) begin
            $display("%m: error: AW = %0d, but tile_info (CPT_TI_W = %0d bits) holds %0d-bit addresses",
                     AW, `CPT_TI_W, `CPT_TI_W - `CPT_RV_W - 1);
            $finish;
        end
        if (OP_BITS < 1 || K_WORDS < 1 || B_BLOCK_COLS % COLS != 0 || ROWS < 1 || COLS < 1) begin
            $display("%m: error: need OP_BITS, K_WORDS, ROWS, COLS >= 1 and B_BLOCK_COLS (%0d) a multiple of COLS (%0d)",
                     B_BLOCK_COLS, COLS);
            $finish;
        end
    end

    localparam integer HALF = `CPT_A_HALF;      // a parameter: a literal cannot be part-selected
    localparam integer SW = $clog2(2 * OP_BITS + 1);       // diagonal index i + j (and 2)
    localparam [SW-1:0] TWO = 2;
    localparam [`CPT_POS_W-1:0] ROWS_X = ROWS[`CPT_POS_W-1:0];
    localparam [`CPT_POS_W-1:0] COLS_X = COLS[`CPT_POS_W-1:0];
    localparam [`CPT_POS_W-1:0] BBC_X = B_BLOCK_COLS[`CPT_POS_W-1:0];
    localparam [`CPT_A_AW-1:0] HALF_A = HALF[`CPT_A_AW-1:0];
    localparam integer B_HALF_I = `CPT_B_HALF;  // a parameter: a literal cannot be part-selected
    localparam [`CPT_B_AW-1:0] B_HALF_B = B_HALF_I[`CPT_B_AW-1:0];

    localparam [1:0] F_IDLE = 2'd0, F_WAIT_B = 2'd1, F_WAIT_A = 2'd2, F_RUN = 2'd3;
    reg [1:0] state;

    reg [`CPT_POS_W-1:0] n0, m0, col0;          // block's first column, tile's first row, column tile's
    reg           half;
    reg [AW-1:0]  c_row;                        // C address of row m0
    reg [`CPT_B_AW-1:0] slot_base;
    reg [COLS-1:0] col_mask;

    // Horner walk of one column tile
    reg [SW-1:0]     s;
    reg [`CPT_BITS_W-1:0] i, j, i_lo;
    reg [`CPT_KW_W-1:0]   w;
    reg [`CPT_RW_W-1:0]   i_kw, j_kw, istart_kw, jstart_kw;
    reg              first_diag;
    wire [`CPT_RW_W-1:0]  kw_r = {{(`CPT_RW_W-`CPT_KW_W){1'b0}}, kw};
    wire [SW-1:0]    b_top = {{(SW-`CPT_BITS_W){1'b0}}, b_bits} - 1'b1;   // b_bits - 1, diagonal width
    wire [`CPT_BITS_W-1:0] s_low = s[`CPT_BITS_W-1:0];                        // s - 1 < b_bits here, fits

    wire [`CPT_POS_W-1:0] m_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, m};
    wire [`CPT_POS_W-1:0] n_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, n};
    wire [`CPT_POS_W-1:0] block_end = (n0 + BBC_X < n_w) ? n0 + BBC_X : n_w;
    wire last_step = (s == 0) && (w == kw - 1'b1);
    wire last_col_tile = col0 + COLS_X >= block_end;
    wire last_tile = m0 + ROWS_X >= m_w;
    wire last_block = n0 + BBC_X >= n_w;
    wire stall = last_step && (drain_busy || tile_full);
    wire emit = (state == F_RUN) && !stall;

    assign rd_en = emit;
    // (i_kw + w < HALF and slot_base + j_kw + w < B depth: the truncations below lose nothing)
    wire [`CPT_RW_W-1:0] w_r = {{(`CPT_RW_W-`CPT_KW_W){1'b0}}, w};
    wire [`CPT_RW_W-1:0] a_off = i_kw + w_r;
    // zero-extended: B_AW may exceed RW_W
    wire [`CPT_RW_W+`CPT_B_AW-1:0] b_off = {{`CPT_B_AW{1'b0}}, j_kw + w_r};
    wire [`CPT_RW_W+`CPT_B_AW-1:0] b_col_words_x = {{`CPT_B_AW{1'b0}}, b_col_words};
    assign a_raddr = (half ? HALF_A : {`CPT_A_AW{1'b0}}) + a_off[`CPT_A_AW-1:0];
    assign b_raddr = (b_cur ? B_HALF_B : {`CPT_B_AW{1'b0}}) + slot_base + b_off[`CPT_B_AW-1:0];
    wire unused = &{1'b0, a_off, b_off, b_col_words_x};
    assign last_emit = emit && last_step;
    assign tile_push = last_emit;
    // Releases are combinational so that the owner flags drop at the very edge at which this FSM moves
    // on: a wait state never sees a stale "full".
    assign a_release = last_emit && last_col_tile;
    assign a_release_half = half;
    assign b_release = a_release && last_tile;
    wire [`CPT_POS_W-1:0] rows_left = m_w - m0;
    wire [`CPT_RV_W-1:0] rows_valid = (rows_left > ROWS_X) ? ROWS_X[`CPT_RV_W-1:0] : rows_left[`CPT_RV_W-1:0];
    wire [AW-1:0] col_bytes = ({{(AW-`CPT_POS_W){1'b0}}, col0} << `CPT_LOG_RESULT_BYTES) >> c16;
    assign tile_info = {last_col_tile && last_tile && last_block, rows_valid, c_row + col_bytes};

    // Columns of a column tile that exist in B (col0 + c < N).
    function [COLS-1:0] mask_for(input [`CPT_POS_W-1:0] first, input [`CPT_POS_W-1:0] total);
        integer c;
        begin
            for (c = 0; c < COLS; c = c + 1)
                mask_for[c] = ({{(32-`CPT_POS_W){1'b0}}, first} + c < {{(32-`CPT_POS_W){1'b0}}, total});
        end
    endfunction

    task start_col_tile(input [`CPT_POS_W-1:0] first, input [`CPT_B_AW-1:0] slot);
        begin
            col0 <= first;
            slot_base <= slot;
            col_mask <= mask_for(first, n_w);
            s <= {{(SW-`CPT_BITS_W){1'b0}}, a_bits} + {{(SW-`CPT_BITS_W){1'b0}}, b_bits} - TWO;
            i <= a_bits - 1'b1;
            i_lo <= a_bits - 1'b1;
            j <= b_bits - 1'b1;
            w <= 0;
            i_kw <= a_row_words - kw_r;
            istart_kw <= a_row_words - kw_r;
            j_kw <= b_col_words - kw_r;
            jstart_kw <= b_col_words - kw_r;
            first_diag <= 1'b1;
        end
    endtask

    always @(posedge clk) begin
        ctl <= {emit && last_step,
                emit && ((a_signed && i == a_bits - 1'b1) != (b_signed && j == b_bits - 1'b1)),
                emit && w == 0 && i == i_lo && !first_diag,
                emit};
        b_mask <= col_mask;
        if (rst) begin
            state <= F_IDLE;
            busy <= 1'b0;
        end else if (start) begin
            state <= F_WAIT_B;
            busy <= 1'b1;
            n0 <= 0;
            m0 <= 0;
            half <= 1'b0;
            c_row <= c_base;
        end else begin
            case (state)
                F_WAIT_B: if (b_full) state <= F_WAIT_A;
                F_WAIT_A: if (a_full[half]) begin
                    start_col_tile(n0, {`CPT_B_AW{1'b0}});
                    state <= F_RUN;
                end
                F_RUN: if (emit) begin
                    if (!last_step) begin
                        if (w != kw - 1'b1) begin
                            w <= w + 1'b1;
                        end else begin
                            w <= 0;
                            if (i != a_bits - 1'b1 && j != 0) begin       // next pair on the diagonal
                                i <= i + 1'b1;
                                j <= j - 1'b1;
                                i_kw <= i_kw + kw_r;
                                j_kw <= j_kw - kw_r;
                            end else begin                                  // next diagonal
                                s <= s - 1'b1;
                                first_diag <= 1'b0;
                                if (s - 1'b1 >= b_top) begin
                                    i_lo <= i_lo - 1'b1;
                                    i <= i_lo - 1'b1;
                                    istart_kw <= istart_kw - kw_r;
                                    i_kw <= istart_kw - kw_r;
                                    j <= b_bits - 1'b1;
                                    j_kw <= jstart_kw;
                                end else begin
                                    i_lo <= 0;
                                    i <= 0;
                                    istart_kw <= 0;
                                    i_kw <= 0;
                                    j <= s_low - 1'b1;
                                    jstart_kw <= jstart_kw - kw_r;
                                    j_kw <= jstart_kw - kw_r;
                                end
                            end
                        end
                    end else if (!last_col_tile) begin
                        start_col_tile(col0 + COLS_X, slot_base + b_col_words_x[`CPT_B_AW-1:0]);
                    end else begin
                        half <= !half;
                        if (!last_tile) begin
                            m0 <= m0 + ROWS_X;
                            c_row <= c_row + c_tile_step;
                            state <= F_WAIT_A;
                        end else begin
                            m0 <= 0;
                            c_row <= c_base;
                            n0 <= n0 + BBC_X;
                            if (!last_block) state <= F_WAIT_B;
                            else begin
                                state <= F_IDLE;
                                busy <= 1'b0;
                            end
                        end
                    end
                end
                default: ;
            endcase
        end
    end
endmodule

`default_nettype wire
