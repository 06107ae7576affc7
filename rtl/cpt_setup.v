// Argument checks and derived sizes of one call, computed before any bus transaction.
//
// On `start` the arguments are sampled; SETUP_CYCLES cycles later `done` pulses with `status` (the
// error bits of docs/registers.md, 0 when the call may run) and the derived figures the engines use.
// Sizes are those of cpt_driver.layout: size_A = M a_bits Kw D/8, size_B = N b_bits Kw D/8,
// size_C = RESULT_W/8 M round_up(N, COLS) (a conv call with C16, `narrow`: 2 M round_up(N, COLS)).
// ERR_WINDOW is only evaluated when M, N, K and the precisions are legal (otherwise the sizes mean
// nothing); every other bit is evaluated on its own.
//
// With flags bit PREFETCH_B the hint (next_b, next_n, next_k, next_b_bits) is checked like an operand
// (ERR_DIM, ERR_BITS, ERR_ALIGN, and ERR_WINDOW for the bytes the prefetch reads: the first
// min(next_n, B_BLOCK_COLS) columns of the next call's B), so a bad hint refuses the call before any
// bus request.  `key` / `next_key` are this call's (b, n, k, b_bits) and the hint's, as the registers
// hold them: cpt_core uses the prefetched block iff the previous call's next_key equals this key.
//
// round_up(N, COLS) needs a division (COLS need not be a power of two): a restoring divider of DIM_W+1
// steps.  Products are registered one stage each (they map to DSP48s).

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_setup #(
    parameter integer ROWS = `CPT_ROWS,           // config: PE array rows
    parameter integer COLS = `CPT_COLS,           // config: PE array columns
    parameter integer D = `CPT_D,                 // config: bits of a plane word
    parameter integer OP_BITS = `CPT_OP_BITS,     // config: largest precision
    parameter integer K_WORDS = `CPT_K_WORDS,     // config: D-bit words per plane row at most
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS,  // config: columns of B per block
    parameter integer AW = `CPT_AXI_AW,           // config: m_axi address bits
    parameter integer MAX_DIM = `CPT_MAX_DIM      // config: largest M, N
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,
    input  wire [AW-1:0]          arg_a,
    input  wire [AW-1:0]          arg_b,
    input  wire [AW-1:0]          arg_c,
    input  wire [31:0]            arg_m,
    input  wire [31:0]            arg_n,
    input  wire [31:0]            arg_k,
    input  wire [31:0]            arg_a_bits,
    input  wire [31:0]            arg_b_bits,
    input  wire [31:0]            arg_flags,
    input  wire [AW-1:0]          arg_win_base,
    input  wire [AW-1:0]          arg_win_limit,
    input  wire [AW-1:0]          arg_next_b,
    input  wire [31:0]            arg_next_n,
    input  wire [31:0]            arg_next_k,
    input  wire [31:0]            arg_next_b_bits,
    // A forward convolution call (cpt_conv_setup) passes its GEMM as m, n, k and a as the first tensor byte
    // read; its A range is the tensor's: a_size_in bytes (0: nothing is read, inside any window).
    input  wire                   a_size_sel,
    input  wire [67:0]            a_size_in,
    // B's range replaced: a weight gradient's is its E tensor's, a stride-2 input gradient's check pass the
    // weights of all its phases -- b_size_in bytes from b.
    input  wire                   b_size_sel,
    input  wire [67:0]            b_size_in,
    // C's elements are int16 (a conv call with flags C16; cpt_conv_setup's `narrow`)
    input  wire                   narrow,

    output reg                    done,              // pulse
    output reg  [31:0]            status,
    // derived figures, stable from `done` until the next `start`
    output reg  [`CPT_DIM_W-1:0]  m,
    output reg  [`CPT_DIM_W-1:0]  n,
    output reg  [`CPT_KW_W-1:0]   kw,                // D-bit words per plane row: ceil(K / D)
    output reg  [`CPT_BITS_W-1:0] a_bits,
    output reg  [`CPT_BITS_W-1:0] b_bits,
    output reg                    a_signed,
    output reg                    b_signed,
    output reg  [`CPT_RW_W-1:0]   a_row_words,       // a_bits * Kw
    output reg  [`CPT_RW_W-1:0]   b_col_words,       // b_bits * Kw
    output reg  [AW-1:0]          a_base,
    output reg  [AW-1:0]          b_base,
    output reg  [AW-1:0]          c_base,
    output reg  [AW-1:0]          a_end,             // a + size_A
    output reg  [AW-1:0]          b_end,             // b + size_B
    output reg  [AW-1:0]          a_tile_bytes,      // ROWS rows of A
    output reg  [AW-1:0]          b_block_bytes,     // B_BLOCK_COLS columns of B
    output reg  [AW-1:0]          c_stride,          // bytes per row of C: RESULT_W/8 (2: narrow) round_up(N, COLS)
    output reg  [AW-1:0]          c_tile_step,       // ROWS rows of C
    output reg  [AW-1:0]          c_tile_span,       // ROWS - 1 rows of C
    output reg                    pf_en,             // PREFETCH_B set (the hint is legal when status is 0)
    output reg  [AW-1:0]          pf_base,           // next_b
    output reg  [AW-1:0]          pf_end,            // next_b + the bytes of the next call's first B block
    output reg  [`CPT_RW_W-1:0]   pf_col_words,      // next_b_bits * ceil(next_k / D)
    output wire [`CPT_KEY_W-1:0]  key,               // {b, n, k, b_bits} of this call
    output wire [`CPT_KEY_W-1:0]  next_key           // {next_b, next_n, next_k, next_b_bits}
);
    `include "cpt_gemm_regmap.vh"              // status and flags bit positions

    // A conv call's A range (cpt_conv_setup); tied off without the engine (no `CPT_CONV), so that this module's
    // logic is interface 3's even where synthesis keeps the hierarchy.
`ifdef CPT_CONV
    wire conv_a = a_size_sel;
    wire conv_b = b_size_sel;
    wire c16 = narrow;
`else
    wire conv_a = 1'b0;
    wire conv_b = 1'b0;
    wire c16 = 1'b0;
    wire unused_conv = &{1'b0, a_size_sel, a_size_in, b_size_sel, b_size_in, narrow};
`endif
    // elements of C to bytes: a shift by LOG_RESULT_BYTES, one less for int16 results
    wire [1:0] c_shift = `CPT_LOG_RESULT_BYTES - {1'b0, c16};
    localparam integer WB = D / 8;              // bytes per D-bit word
    localparam integer LOG_WB = $clog2(WB);
    localparam integer LOG_D = $clog2(D);
    localparam integer K_MAX = K_WORDS * D;
    localparam integer QW = `CPT_DIM_W + 1;          // divider width
    localparam integer EW = 68;                 // width of window arithmetic: no overflow possible
    localparam integer STEP_W = $clog2(QW + 1);
    localparam [STEP_W-1:0] LAST_STEP = QW[STEP_W-1:0] - 1'b1;
    localparam integer KR_W = `CPT_KW_W + LOG_D;     // K rounded up to whole words: < 2^KR_W when legal
    localparam [KR_W-1:0] D_M1 = D[KR_W-1:0] - 1'b1;
    localparam [AW-1:0] ROWS_A = {{(AW-31){1'b0}}, ROWS[30:0]};

    initial begin
        if ((1 << LOG_D) != D || D < 8) begin
            $display("%m: error: D = %0d must be a power of two >= 8", D);
            $finish;
        end
        if (2 * `CPT_DIM_W + 8 + `CPT_RW_W + LOG_WB > EW) begin
            $display("%m: error: MAX_DIM = %0d too large for %0d-bit size arithmetic", MAX_DIM, EW);
            $finish;
        end
    end

    localparam [2:0] S_IDLE = 3'd0, S_DIV = 3'd1, S_MUL1 = 3'd2, S_MUL2 = 3'd3, S_CHECK = 3'd4;
    reg [2:0] state;
    reg [STEP_W-1:0] step;

    // sampled arguments
    reg [31:0] m32, n32, k32, ab32, bb32, flags;
    reg [AW-1:0] win_base, win_limit;
    reg [31:0] nn32, nk32, nbb32;
    reg [`CPT_KW_W-1:0] next_kw;
    reg [`CPT_DIM_W-1:0] pf_cols;                    // min(next_n, B_BLOCK_COLS)
    assign key = {b_base, n32, k32, bb32};
    assign next_key = {pf_base, nn32, nk32, nbb32};

    // restoring divider: q = floor((n + COLS - 1) / COLS) = number of column tiles
    reg [QW-1:0] quot, rem;
    reg [QW-1:0] dividend;
    wire [QW:0] trial = {rem, dividend[QW-1]} - COLS[QW:0];

    reg [EW-1:0] size_a, size_b, size_c, size_pf;
    wire [KR_W-1:0] k_round = k32[KR_W-1:0] + D_M1;
    wire [KR_W-1:0] next_k_round = nk32[KR_W-1:0] + D_M1;
    wire unused = &{1'b0, k_round[LOG_D-1:0], next_k_round[LOG_D-1:0]};  // remainders of K / D: not needed
    reg [EW-1:0] stride_elems;

    wire err_dim = (m32 == 0) || (n32 == 0) || (k32 == 0) || (m32 > MAX_DIM) || (n32 > MAX_DIM) || (k32 > K_MAX)
                   || (pf_en && ((nn32 == 0) || (nk32 == 0) || (nn32 > MAX_DIM) || (nk32 > K_MAX)));
    wire err_bits = (ab32 == 0) || (bb32 == 0) || (ab32 > OP_BITS) || (bb32 > OP_BITS)
                    || (pf_en && ((nbb32 == 0) || (nbb32 > OP_BITS)));
    wire err_align = (a_base[LOG_WB-1:0] != 0) || (b_base[LOG_WB-1:0] != 0) || (c_base[LOG_WB-1:0] != 0)
                     || (pf_en && pf_base[LOG_WB-1:0] != 0);
    wire err_flags = (flags & ~((32'd1 << FLAG_A_SIGNED) | (32'd1 << FLAG_B_SIGNED) | (32'd1 << FLAG_PREFETCH_B))) != 32'd0;

    function in_window(input [AW-1:0] base, input [EW-1:0] size, input [AW-1:0] lo, input [AW-1:0] hi);
        in_window = (base >= lo) && ({{(EW-AW){1'b0}}, base} + size <= {{(EW-AW){1'b0}}, hi});
    endfunction
    wire err_window = !(((conv_a && size_a == 0) || in_window(a_base, size_a, win_base, win_limit))
                        && in_window(b_base, size_b, win_base, win_limit)
                        && in_window(c_base, size_c, win_base, win_limit)
                        && (!pf_en || in_window(pf_base, size_pf, win_base, win_limit)));

    always @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
        end else begin
            case (state)
                S_IDLE: if (start) begin
                    m32 <= arg_m;
                    n32 <= arg_n;
                    k32 <= arg_k;
                    ab32 <= arg_a_bits;
                    bb32 <= arg_b_bits;
                    flags <= arg_flags;
                    a_base <= arg_a;
                    b_base <= arg_b;
                    c_base <= arg_c;
                    win_base <= arg_win_base;
                    win_limit <= arg_win_limit;
                    pf_en <= arg_flags[FLAG_PREFETCH_B];
                    pf_base <= arg_next_b;
                    nn32 <= arg_next_n;
                    nk32 <= arg_next_k;
                    nbb32 <= arg_next_b_bits;
                    dividend <= arg_n[QW-1:0] + (COLS[QW-1:0] - 1'b1);
                    rem <= 0;
                    quot <= 0;
                    step <= 0;
                    state <= S_DIV;
                end
                S_DIV: begin
                    if (trial[QW]) rem <= {rem[QW-2:0], dividend[QW-1]};
                    else rem <= trial[QW-1:0];
                    quot <= {quot[QW-2:0], !trial[QW]};
                    dividend <= {dividend[QW-2:0], 1'b0};
                    step <= step + 1'b1;
                    if (step == LAST_STEP) state <= S_MUL1;
                    m <= m32[`CPT_DIM_W-1:0];
                    n <= n32[`CPT_DIM_W-1:0];
                    a_bits <= ab32[`CPT_BITS_W-1:0];
                    b_bits <= bb32[`CPT_BITS_W-1:0];
                    a_signed <= flags[FLAG_A_SIGNED];
                    b_signed <= flags[FLAG_B_SIGNED];
                    kw <= k_round[KR_W-1:LOG_D];
                    next_kw <= next_k_round[KR_W-1:LOG_D];
                    pf_cols <= (nn32 > B_BLOCK_COLS) ? B_BLOCK_COLS[`CPT_DIM_W-1:0] : nn32[`CPT_DIM_W-1:0];
                end
                S_MUL1: begin
                    a_row_words <= a_bits * kw;
                    b_col_words <= b_bits * kw;
                    pf_col_words <= nbb32[`CPT_BITS_W-1:0] * next_kw;
                    stride_elems <= quot * COLS;
                    state <= S_MUL2;
                end
                S_MUL2: begin
                    size_a <= conv_a ? a_size_in : (m * a_row_words) << LOG_WB;
                    size_b <= conv_b ? b_size_in : (n * b_col_words) << LOG_WB;
                    size_c <= (m * stride_elems) << c_shift;
                    size_pf <= (pf_cols * pf_col_words) << LOG_WB;
                    c_stride <= stride_elems[AW-1:0] << c_shift;
                    a_tile_bytes <= (ROWS * a_row_words) << LOG_WB;
                    b_block_bytes <= (B_BLOCK_COLS * b_col_words) << LOG_WB;
                    state <= S_CHECK;
                end
                default: begin  // S_CHECK
                    status <= 32'd0;
                    status[STATUS_ERR_DIM] <= err_dim;
                    status[STATUS_ERR_BITS] <= err_bits;
                    status[STATUS_ERR_ALIGN] <= err_align;
                    status[STATUS_ERR_FLAGS] <= err_flags;
                    status[STATUS_ERR_WINDOW] <= !err_dim && !err_bits && err_window;
                    a_end <= a_base + size_a[AW-1:0];
                    b_end <= b_base + size_b[AW-1:0];
                    pf_end <= pf_base + size_pf[AW-1:0];
                    c_tile_step <= c_stride * ROWS_A;
                    c_tile_span <= c_stride * (ROWS_A - 1'b1);
                    done <= 1'b1;
                    state <= S_IDLE;
                end
            endcase
        end
    end
endmodule

`default_nettype wire
