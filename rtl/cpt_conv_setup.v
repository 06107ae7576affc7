// Argument checks and derived geometry of one convolution call (interface 4): forward (conv op 1), input
// gradient (op 2; at stride 2 with its phases) or weight gradient (op 3).
//
// On `start` the conv arguments are sampled; 8 cycles later `done` pulses with `status`
// (every bit of docs/registers.md, "Interface 4", except ERR_WINDOW) and the call's geometry.  The rule is
// cpt_hw.hw.conv_calls.conv_status with twin=True: SUMS in an input gradient is ERR_CONV (the sums' range of a
// forward or weight-gradient call is checked here too: `sums_win_err`, which cpt_core adds as ERR_WINDOW); a
// row-plane wider than MAX_ROW_BITS (the former's ring slot) and the weight gradient's formers' limits are
// ERR_CONV where the tensor-buffer check is made (the generator refuses a config in which that check could refuse
// anything else, so it is not repeated here), as is C16 when the call's worst case K (2^a_bits - 1)(2^b_bits - 1)
// does not fit int16 (`narrow`: a legal C16 call, whose results cpt_setup and cpt_writer then size and write as
// int16).
//
// The call is then the GEMM of docs/architecture.md: M = batch x rows x Wo result rows, N = K output
// channels, reduction kh kw Cp (`gm`, `gn`, `gk`), which cpt_core hands to cpt_setup as if they had been
// written to m, n, k: B (the weights), C and the feeder are interface 3's.  ERR_WINDOW is cpt_setup's, with
// A's range replaced by the tensor's (`a_first`, `a_size`): rows [r_lo, r_hi) of every image, the rows the
// band reaches clipped to the image (docs/ddr-layout.md, "DMA window and halos"), evaluated only when
// `win_eval` (no ERR_CONV, ERR_DIM, ERR_BITS).
//
// An input gradient at stride 1 is a forward convolution of E (Ho x Wo, K channels: the tensor streamed and
// formed) with the rotated kernel, whose B layout (one phase, rows (i, j, k), Cp(K)) is exactly a forward
// weight operand of N = C columns: the same GEMM with M = batch x rows x W result rows (n, h, w), K = C,
// reduction kh kw Cp(K), and the former's row and column offsets kh - 1 - padding, kw - 1 - padding
// (-1..2) in place of the padding.
//
// An input gradient at stride 2 (`phased`) runs by polyphase (docs/architecture.md): the dX pixels of phase
// (ry, rx) = (h mod 2, w mod 2) form a stride-1 convolution of E with the sub-kernel of the taps i = ry +
// padding (mod 2) (largest first: the stored order, conv_calls.ConvArgs.phases), so each phase is a forward
// walk over E as above with kh' x kw' <= 2 x 2 taps and offsets (first tap - r - padding) / 2 (-1..1).  The
// check pass hands cpt_setup the whole call: M = batch x rows x W, reduction = the largest phase's (what
// ERR_DIM checks), the E rows [r_lo, r_hi) the band reaches (the union of the phases' rows) and the weights'
// bytes of all phases (`b_size`, with `b_size_sel`) for ERR_WINDOW.  Then each `ph_next` pulse computes the next
// phase with pixels (phases without pixels are passed over; `ph_none` when none is left) and pulses `ph_done`
// with its GEMM (gm = batch gh gw, gk = kh' kw' Cp(K)), its weights (`b_first`: the phases before it stored
// first), the E rows it reaches (a_first, x_bytes; its former's row0/row1), the walker's band0 = its first
// phase row, rows = gh, wo = gw, and for the C rows (cpt_conv_rows) dx_w, dx_rows, ph_dh = its first dX row
// - band0, ph_rx.  A phase without taps (1x1 stride 2, odd phases) runs as a 1 x 1 walk whose only row lies
// below a one-row image (pad_h = -1, height 1, nothing streamed): its A rows are zeros, so its C rows are
// zeros as the emulator writes them.  It is made as cheap as a GEMM gets (`ph_zero`: cpt_core runs it at 1 x 1
// bits; here Cp = 1, reduction 1): one array step per tile, one weight word per column read from b (inside
// the call's range).
// A weight gradient (op 3; its own block at the end, cpt_wgrad_walker runs it) is the GEMM of M = kh kw C rows
// (i, j, c), N = K, reduction batch Ho Wo positions (`wg_m`, `wg_k`); X is streamed as a forward call's (rows
// [r_lo, r_hi) of every image), E whole (`e_size` bytes from b, which replaces B's range for ERR_WINDOW).  Its
// formers' limits are ERR_CONV where the tensor-buffer check is made (conv_calls._twin_wgrad_err): whole
// images only, r_lo = 0 < r_hi, W, Wo <= D, Cp(C) and Cp(K) powers of two, Wo Cp(K) <= MAX_ROW_BITS, each
// former's fullest bank <= WGRAD_BANK_WORDS, and the X chunk, batch a_bits C ceil(H W / D) words of channel-row
// bits, <= WGRAD_BUF_WORDS (half the tensor buffer: the design's X-chunk check with every row of the image
// counted, so never looser than it).  With PREFETCH_B (`pf`) the hint's chunks, the same
// ranges from next_a and next_b (`pf_x_base`, `pf_e_base`), are checked like the call's own: ERR_ALIGN here,
// ERR_WINDOW as `pf_win_err` (cpt_core adds it where cpt_setup's ERR_WINDOW is evaluated).
//
// Products are registered one per stage (DSP48s); the widths of the byte arithmetic hold every call whose
// window is evaluated (its row-planes fit MAX_ROW_BITS, batch <= MAX_DIM).

`include "cpt_gemm_widths.vh"

// Built only with the engine (config conv_engine: cpt_gemm_widths.vh defines CPT_CONV and its numbers).
`ifdef CPT_CONV
`default_nettype none

module cpt_conv_setup #(
    parameter integer D = `CPT_D,                       // config dot_width (a power of two)
    parameter integer OP_BITS = `CPT_OP_BITS,           // config operand_bits
    parameter integer K_WORDS = `CPT_K_WORDS,           // config k_words: reduction <= K_WORDS D
    parameter integer MAX_DIM = `CPT_MAX_DIM,           // config max_dim: batch, M, N
    parameter integer MAX_KERNEL = `CPT_MAX_KERNEL,     // config max_kernel (<= 3: the former's)
    parameter integer MAX_ROW_BITS = `CPT_MAX_ROW_BITS, // W Cp the former holds at most
    parameter integer WGRAD_BUF_WORDS = `CPT_WGRAD_BUF_WORDS, // D-bit words of a weight-gradient X chunk at most
    parameter integer WGRAD_BANK_WORDS = `CPT_WGRAD_BANK_WORDS, // words of each bank of a weight-gradient former
    parameter integer AW = `CPT_AXI_AW                  // config axi_addr_width
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire [31:0]     arg_conv,
    input  wire [31:0]     arg_batch,
    input  wire [31:0]     arg_channels,
    input  wire [31:0]     arg_size,
    input  wire [31:0]     arg_band,
    input  wire [AW-1:0]   arg_a,
    input  wire [AW-1:0]   arg_b,
    input  wire [AW-1:0]   arg_c,
    input  wire [AW-1:0]   arg_sums,
    input  wire [31:0]     arg_a_bits,
    input  wire [31:0]     arg_b_bits,
    input  wire [31:0]     arg_flags,
    input  wire [AW-1:0]   arg_next_a,
    input  wire [AW-1:0]   arg_next_b,
    input  wire [AW-1:0]   arg_win_base,
    input  wire [AW-1:0]   arg_win_limit,

    output reg             done,                // pulse
    output reg  [31:0]     status,              // without ERR_WINDOW
    output reg             win_eval,            // ERR_WINDOW is to be evaluated (cpt_setup's)
    // the call's GEMM, for cpt_setup (meaningful when status is 0)
    output reg  [31:0]     gm,                  // batch x rows x Wo
    output reg  [31:0]     gn,                  // K
    output reg  [31:0]     gk,                  // kh kw Cp
    output reg  [AW-1:0]   a_first,             // a + r_lo R: the first byte read
    output reg  [67:0]     a_size,              // (batch - 1) I + (r_hi - r_lo) R
    // the reader's tensor stream: one command of x_bytes per image, x_stride apart
    output reg  [AW-1:0]   x_bytes,
    output reg  [AW-1:0]   x_stride,            // I = H R
    // the former's geometry and the walker's
    output reg  [15:0]     cp,
    output reg  [15:0]     width,
    output reg  [15:0]     height,
    output reg  [1:0]      kh,
    output reg  [1:0]      kw,
    output reg  [1:0]      stride,
    output reg signed [2:0] pad_h,              // the former's row offset (forward: padding)
    output reg signed [2:0] pad_w,              // its column offset
    output reg  [15:0]     row0,                // r_lo of the streamed tensor (X, or E of an input gradient)
    output reg  [15:0]     row1,                // r_hi
    output reg  [15:0]     band0,               // first result row of every image
    output reg  [15:0]     rows,                // result rows per image
    output reg  [15:0]     wo,                  // result columns (forward Wo; input gradient W)
    output reg  [`CPT_DIM_W-1:0] batch,
    // a weight gradient (op 3): its GEMM's M and reduction, X's channels, E's pitch and bytes
    output reg             wg,
    output reg  [31:0]     wg_m,                // kh kw C
    output reg  [31:0]     wg_k,                // batch Ho Wo
    output reg  [15:0]     c_ch,                // C
    output reg  [15:0]     e_cp,                // Cp(K)
    output reg  [67:0]     e_size,              // batch Ho R(E): the E tensor
    output reg  [AW-1:0]   e_bytes,
    output reg             pf,                  // PREFETCH_B: the next call's chunks are streamed behind
    output reg  [AW-1:0]   pf_x_base,           // next_a + r_lo R: the hint's X chunk, as a_first
    output reg  [AW-1:0]   pf_e_base,           // next_b: its E chunk
    output reg             pf_win_err,          // a hint chunk outside [win_base, win_limit)
    // code sums (flags SUMS, forward and weight-gradient calls): where they go, their range outside the window
    output reg             sums_en,
    output reg  [AW-1:0]   sums_base,
    output reg             sums_win_err,
    // stride-2 input gradient: the check pass's weights, then one phase per ph_next (see above)
    output reg             phased,              // the call runs phase by phase
    output reg  [AW-1:0]   b_first,             // the weights cpt_setup reads (b; a phase's own)
    output reg             b_size_sel,          // check pass of a phased call: B's range is b_size bytes
    output reg  [67:0]     b_size,              // the weights of every phase
    input  wire            ph_next,             // pulse: compute the next phase with pixels
    output reg             ph_done,             // pulse: the phase's outputs are valid (or ph_none)
    output reg             ph_none,             // no phase left
    output reg  [15:0]     dx_w,                // W: dX pixels per row
    output reg  [15:0]     dx_rows,             // the band's dX rows per image
    output reg             ph_dh,               // the phase's first dX row - band0 (0, 1)
    output reg             ph_rx,               // the phase's first dX column (0, 1)
    output reg             ph_zero,             // the phase has no taps: run it at a_bits = b_bits = 1
    output reg             narrow               // C16: int16 results (meaningful when status is 0)
);
    `include "cpt_gemm_regmap.vh"

    localparam integer LOG_D = $clog2(D);
    localparam integer WB = D / 8;
    localparam integer K_MAX = K_WORDS * D;
    localparam integer RWORDS_MAX = MAX_ROW_BITS / D;                  // row_words of a legal call
    localparam integer RWW = $clog2(RWORDS_MAX + 1);
    localparam integer RB_W = $clog2(OP_BITS * RWORDS_MAX * WB + 1);   // R in bytes
    localparam integer IB_W = RB_W + 16;                               // I = H R
    localparam [31:0] FIELDS = 32'h0000_FFF3;                          // op, kh, kw, stride, padding
    localparam integer LOG_WB = $clog2(WB);
    localparam [16:0] D17 = D[16:0];
    localparam [3:0]  MAXK4 = MAX_KERNEL[3:0];
    localparam [47:0] MAX_DIM48 = {16'd0, MAX_DIM[31:0]};
    localparam [47:0] K_MAX48 = {16'd0, K_MAX[31:0]};

    initial begin
        if ((1 << LOG_D) != D || MAX_ROW_BITS % D != 0) begin
            $display("%m: error: D = %0d must be a power of two dividing MAX_ROW_BITS = %0d", D, MAX_ROW_BITS);
            $finish;
        end
        if (MAX_KERNEL < 1 || MAX_KERNEL > 3) begin
            $display("%m: error: MAX_KERNEL = %0d must be 1..3 (the im2col former's kernels)", MAX_KERNEL);
            $finish;
        end
    end

    // Cp: the next power of two >= C while C < D, else C rounded up to a multiple of D (conv_model.channel_pitch)
    function [16:0] pitch(input [15:0] c);
        integer i;
        begin
            if ({1'b0, c} >= D17) begin
                pitch = (({1'b0, c} + D17 - 17'd1) >> LOG_D) << LOG_D;
            end else begin
                pitch = D17;
                for (i = LOG_D; i >= 0; i = i - 1)
                    if ((17'd1 << i) >= {1'b0, c}) pitch = 17'd1 << i;
            end
        end
    endfunction

    // conv_output_size: (size + 2 pad - k) div s + 1, 0 when the kernel does not fit
    function [16:0] out_size(input [15:0] size, input [3:0] k, input [1:0] s, input [1:0] p);
        reg signed [18:0] t;
        begin
            t = $signed({3'b0, size}) + $signed({16'b0, p, 1'b0}) - $signed({15'b0, k});
            if (t < 0) out_size = 17'd0;
            else out_size = (s == 2'd2 ? t[17:1] : t[16:0]) + 17'd1;
        end
    endfunction

    // Stride-2 input gradient, one axis: the taps t = r + padding (mod 2) of a kernel side k (1..3), r the
    // phase: how many, and the row (column) offset of the first (largest) one, (first - r - padding) / 2.
    function [1:0] ph_taps(input [3:0] k, input r, input p);
        begin
            if (k == 4'd1) ph_taps = (r ^ p) ? 2'd0 : 2'd1;
            else if (k == 4'd2) ph_taps = 2'd1;
            else ph_taps = (r ^ p) ? 2'd1 : 2'd2;
        end
    endfunction
    // (first - r - p) / 2 with first = k - 1 or k - 2, whichever is = r + p (mod 2): 1 for k = 3, r = p = 0;
    // -1 for k <= 2, r = p = 1 (k = 1: the only tap is 0); else 0
    function signed [2:0] ph_off(input [3:0] k, input r, input p);
        ph_off = k == 4'd3 ? (!r && !p ? 3'sd1 : 3'sd0) : (r && p ? -3'sd1 : 3'sd0);
    endfunction

    localparam [2:0] S_IDLE = 3'd0, S_1 = 3'd1, S_2 = 3'd2, S_3 = 3'd3, S_4 = 3'd4, S_5 = 3'd5, S_6 = 3'd6,
                     S_7 = 3'd7;
    reg [2:0] state;

    reg [31:0]   conv, batch32, chans, size, band, ab32, bb32, flags;
    reg [AW-1:0] a;
    reg [LOG_WB-1:0] b, c, sums;                // only their alignment is checked here
    reg [AW-1:0] next_a, next_b, win_lo, win_hi;
    reg [AW-1:0] sums_addr;

    wire [1:0]  op = conv[1:0];
    wire [3:0]  kh4 = conv[7:4], kw4 = conv[11:8];
    wire [1:0]  s2 = conv[13:12], p2 = conv[15:14];
    wire [15:0] c_in = chans[15:0], k_out = chans[31:16], h_in = size[15:0], w_in = size[31:16];
    wire [15:0] b0 = band[15:0], band_rows = band[31:16];
    wire        dg = op == 2'd2;            // an input gradient: E (ho17 x wo17, K channels) is streamed
    wire        wgo = op == 2'd3;           // a weight gradient (X streamed as forward, E whole)
    wire        s2dg = dg && s2 == 2'd2;    // an input gradient at stride 2: phase by phase
    // the twin runs every op: forward calls, input gradients and weight gradients
    wire        built = op == 2'd1 || dg || wgo;

    reg  [16:0] cp17, ho17, wo17;           // Cp of the streamed tensor; the forward output's size
    reg  [17:0] rows18;                     // result rows per image
    reg  [31:0] row_bits;                   // W Cp
    reg  [24:0] kred;                       // kh kw Cp
    reg  [33:0] rw;                         // rows x Wo
    reg  [47:0] m48;
    reg         band_err;
    reg  [RWW-1:0]  row_words;              // legal calls only
    reg  [RB_W-1:0] rbytes;                 // R
    reg  signed [19:0] lo_s, hi_s;          // r_lo, r_hi (hi exclusive)
    reg  [15:0] lo, hi;

    wire geom0 = (conv & ~FIELDS) != 0 || kh4 == 0 || kh4 > MAXK4 || kw4 == 0 || kw4 > MAXK4
                 || !(s2 == 2'd1 || s2 == 2'd2) || p2 > 2'd1;
    wire dim0 = batch32 == 0 || c_in == 0 || k_out == 0 || h_in == 0 || w_in == 0 || batch32 > MAX_DIM;
    wire bits_err = ab32 == 0 || bb32 == 0 || ab32 > OP_BITS || bb32 > OP_BITS;
    wire fits = ho17 != 0 && wo17 != 0;
    wire [16:0] res_h = dg ? {1'b0, h_in} : ho17;     // result rows per image (conv_calls: rows_per_image)
    wire [16:0] res_w = dg ? {1'b0, w_in} : wo17;     // result columns per row
    wire [15:0] n_out = dg ? c_in : k_out;            // N
    wire [15:0] str_h = dg ? ho17[15:0] : h_in;       // the streamed tensor's rows and columns
    wire [15:0] str_w = dg ? wo17[15:0] : w_in;
    // the former's offsets: forward the padding; input gradient (stride 1) kh - 1 - padding, kw - 1 - padding
    wire signed [2:0] off_h = dg ? $signed({1'b0, kh4[1:0]}) - 3'sd1 - $signed({1'b0, p2}) : $signed({1'b0, p2});
    wire signed [2:0] off_w = dg ? $signed({1'b0, kw4[1:0]}) - 3'sd1 - $signed({1'b0, p2}) : $signed({1'b0, p2});
    wire shape_ok = !geom0 && !dim0 && fits && !band_err;
    wire wg_dim_late;                       // op 3's (below)
    wire wg_limits;
    wire dim_late = wgo ? wg_dim_late : {32'd0, n_out} > MAX_DIM48 || m48 > MAX_DIM48 || {23'd0, kred} > K_MAX48;
    reg         c16_err;                    // C16 with a worst case beyond int16 (below)
    wire limits = c16_err || row_bits > MAX_ROW_BITS || (wgo && wg_limits);
    wire geom = geom0 || (!geom0 && !dim0 && !fits) || (!geom0 && !dim0 && fits && band_err)
                || (shape_ok && !dim_late && !bits_err && limits) || (flags[FLAG_SUMS] && op == 2'd2);
    wire dim = dim0 || (shape_ok && dim_late);
    wire wg_pf = wgo && flags[FLAG_PREFETCH_B];     // the weight gradient's prefetch hint
    wire align = a[LOG_WB-1:0] != 0 || b != 0 || c != 0 || (flags[FLAG_SUMS] && sums != 0)
                 || (wg_pf && (next_a[LOG_WB-1:0] != 0 || next_b[LOG_WB-1:0] != 0));
    wire [31:0] known = (32'd1 << FLAG_A_SIGNED) | (32'd1 << FLAG_B_SIGNED) | (32'd1 << FLAG_PREFETCH_B)
                        | (32'd1 << FLAG_SUMS) | (32'd1 << FLAG_C16);
    wire flags_err = (flags & ~known) != 0 || (flags[FLAG_PREFETCH_B] && !wgo);  // the hint serves wgrad chains only

    // the rows the band reaches (conv_calls.ConvArgs.a_rows): the first result row's taps, else the next
    // row's; the last result row's, else the one before (one step suffices:
    // tests/test_conv_twin.py)
    wire signed [19:0] s_s = {18'd0, s2};
    wire signed [19:0] p_s = {{17{off_h[2]}}, off_h};
    wire signed [19:0] kh_s = {16'd0, kh4};
    wire signed [19:0] h_last = $signed({4'd0, str_h}) - 20'sd1;
    wire signed [19:0] o0 = {4'd0, b0};
    wire signed [19:0] o1 = $signed({4'd0, b0}) + $signed({2'd0, rows18}) - 20'sd1;
    wire signed [19:0] st0 = (s2 == 2'd2 ? o0 <<< 1 : o0) - p_s;
    wire signed [19:0] st1 = (s2 == 2'd2 ? o1 <<< 1 : o1) - p_s;
    wire signed [19:0] en0 = st0 + kh_s - 20'sd1, en1 = st1 + kh_s - 20'sd1;
    wire more = o1 > o0;
    wire ok0 = en0 >= 0 && st0 <= h_last, ok0n = more && en0 + s_s >= 0 && st0 + s_s <= h_last;
    wire ok1 = en1 >= 0 && st1 <= h_last, ok1p = more && en1 - s_s >= 0 && st1 - s_s <= h_last;
    wire signed [19:0] lo0 = ok0 ? st0 : st0 + s_s;
    wire signed [19:0] hi1 = ok1 ? en1 : en1 - s_s;
    wire reach = (ok0 || ok0n) && (ok1 || ok1p);

    // ---------------------------------------------------------------- stride-2 input gradient: phases
    function [1:0] ph_half(input [3:0] k);      // ceil(k / 2) for k = 1..3: a phase's most taps along a side
        ph_half = k == 4'd3 ? 2'd2 : 2'd1;
    endfunction
    // row phase r (dX rows h = r mod 2 of the band): its rows gh, first phase row gy0 = h0 / 2, E rows
    // [lo, hi) its taps reach (clipped to E), and whether it reaches any (taps, rows and E rows)
    wire [17:0] band_end = {2'd0, b0} + rows18;
    wire [16:0] r_h0 [0:1];
    wire [17:0] r_gh [0:1];
    wire [1:0]  r_nt [0:1];
    wire signed [2:0]  r_off [0:1];
    wire signed [19:0] r_lo [0:1], r_hi [0:1];
    wire [15:0] c_gw [0:1];                     // column phase: dX columns w = r mod 2
    genvar r;
    generate
        for (r = 0; r < 2; r = r + 1) begin : rph
            wire rr = r == 1;
            assign r_h0[r] = {1'b0, b0} + {16'd0, rr ^ b0[0]};
            assign r_gh[r] = {1'b0, r_h0[r]} < band_end ? (band_end - {1'b0, r_h0[r]} + 18'd1) >> 1 : 18'd0;
            assign r_nt[r] = ph_taps(kh4, rr, p2[0]);
            assign r_off[r] = ph_off(kh4, rr, p2[0]);
            wire signed [19:0] lo_raw = $signed({4'd0, r_h0[r][16:1]}) - $signed({{17{r_off[r][2]}}, r_off[r]});
            wire signed [19:0] hi_raw = lo_raw + $signed({2'd0, r_gh[r]}) - 20'sd1 + $signed({18'd0, r_nt[r]});
            assign r_lo[r] = lo_raw < 0 ? 20'sd0 : lo_raw;
            assign r_hi[r] = hi_raw > $signed({3'd0, ho17}) ? $signed({3'd0, ho17}) : hi_raw;
            assign c_gw[r] = (w_in + 16'd1 - {15'd0, rr}) >> 1;
        end
    endgenerate

    reg  [1:0]  ph_nt_h [0:1], ph_nt_w [0:1];
    reg  signed [2:0] ph_off_h [0:1], ph_off_w [0:1];
    reg  [15:0] ph_gh [0:1], ph_gy0 [0:1], ph_gw [0:1], ph_lo [0:1], ph_hi [0:1];
    reg         ph_rows [0:1];                  // row phase r reaches E rows
    reg  [15:0] ph_kw [0:3];                    // Kw of phase (ry, rx) = ry 2 + rx: ceil(taps Cp / D)
    reg  [17:0] kw_sum;                         // the phases' Kw
    reg  [19:0] col_words;                      // C b_bits: the weights' words per word of Kw
    reg  [AW-1:0] b_addr;
    reg  [2:0]  ph;                             // the next phase to look at (4: none left)
    reg  [1:0]  pstate;
    reg  [17:0] woff;                           // Kw of the phases before ph
    reg  [31:0] ghgw;
    localparam [1:0] P_IDLE = 2'd0, P_FIND = 2'd1, P_FORM = 2'd2, P_GEMM = 2'd3;
    wire        p_ry = ph[1], p_rx = ph[0];
    wire        p_empty = ph_nt_h[p_ry] == 2'd0 || ph_nt_w[p_rx] == 2'd0;     // no taps: zero rows
    wire        p_rows = ph_rows[p_ry] && !p_empty;                        // E rows to stream
    wire [2:0]  p_taps = {1'b0, ph_nt_h[p_ry]} * {1'b0, ph_nt_w[p_rx]};
    wire [23:0] kbits_ph [0:3];                 // taps Cp of each phase
    generate
        for (r = 0; r < 4; r = r + 1) begin : kph
            assign kbits_ph[r] = {21'd0, {1'b0, ph_nt_h[r / 2]} * {1'b0, ph_nt_w[r % 2]}} * {7'd0, cp17};
        end
    endgenerate
    // the phase's products (P_FORM), each at its full width
    wire [16+RB_W-1:0] p_skip = {{RB_W{1'b0}}, ph_lo[p_ry]} * {16'd0, rbytes};              // lo R
    wire [16+RB_W-1:0] p_span = {{RB_W{1'b0}}, ph_hi[p_ry] - ph_lo[p_ry]} * {16'd0, rbytes}; // (hi - lo) R
    wire [37:0] p_woff = {18'd0, col_words} * {20'd0, woff};                                  // its weights' words
    wire [67:0] p_skip68 = {{(68-16-RB_W){1'b0}}, p_skip};
    wire [67:0] p_span68 = {{(68-16-RB_W){1'b0}}, p_span};
    wire [67:0] p_boff68 = {30'd0, p_woff} << LOG_WB;
    wire [31:0] p_ghgw = {16'd0, ph_gh[p_ry]} * {16'd0, ph_gw[p_rx]};
    wire [24:0] p_kred = {22'd0, p_empty ? 3'd1 : p_taps} * {8'd0, cp17};
    wire [37:0] p_bsize = {18'd0, col_words} * {20'd0, kw_sum};

    wire [IB_W-1:0] image_bytes = str_h * rbytes;      // I
    wire [15:0]     span_rows = hi - lo;
    wire [IB_W-1:0] span_bytes = span_rows * rbytes;   // rows [r_lo, r_hi) of one image
    wire [`CPT_DIM_W-1:0] batch_m1 = batch32[`CPT_DIM_W-1:0] - 1'b1;
    wire [`CPT_DIM_W+IB_W-1:0] lead_bytes = batch_m1 * image_bytes;   // the images before the last
    wire [IB_W-1:0] skip_bytes = lo * rbytes;          // rows above r_lo

    integer i;
    always @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            state <= S_IDLE;
            pstate <= P_IDLE;
            ph_done <= 1'b0;
        end else begin
            case (state)
                S_IDLE: if (start) begin
                    b_addr <= arg_b;
                    pstate <= P_IDLE;
                    conv <= arg_conv;
                    batch32 <= arg_batch;
                    chans <= arg_channels;
                    size <= arg_size;
                    band <= arg_band;
                    ab32 <= arg_a_bits;
                    bb32 <= arg_b_bits;
                    flags <= arg_flags;
                    a <= arg_a;
                    b <= arg_b[LOG_WB-1:0];
                    c <= arg_c[LOG_WB-1:0];
                    sums <= arg_sums[LOG_WB-1:0];
                    sums_addr <= arg_sums;
                    next_a <= arg_next_a;
                    next_b <= arg_next_b;
                    win_lo <= arg_win_base;
                    win_hi <= arg_win_limit;
                    state <= S_1;
                end else begin
                    // stride-2 input gradient: the next phase with pixels
                    ph_done <= 1'b0;
                    case (pstate)
                        P_IDLE: if (ph_next) begin
                            b_size_sel <= 1'b0;
                            pstate <= P_FIND;
                        end
                        P_FIND: begin
                            if (ph == 3'd4) begin
                                ph_none <= 1'b1;
                                ph_done <= 1'b1;
                                pstate <= P_IDLE;
                            end else if (ph_gh[p_ry] == 16'd0 || ph_gw[p_rx] == 16'd0) begin
                                woff <= woff + {2'd0, ph_kw[ph[1:0]]};
                                ph <= ph + 3'd1;
                            end else begin
                                pstate <= P_FORM;
                            end
                        end
                        P_FORM: begin
                            ghgw <= p_ghgw;
                            gk <= p_empty ? 32'd1 : {7'd0, p_kred};
                            cp <= p_empty ? 16'd1 : cp17[15:0];
                            ph_zero <= p_empty;
                            a_first <= a + (p_rows ? p_skip68[AW-1:0] : {AW{1'b0}});
                            x_bytes <= p_rows ? p_span68[AW-1:0] : {AW{1'b0}};
                            b_first <= b_addr + (p_empty ? {AW{1'b0}} : p_boff68[AW-1:0]);
                            kh <= p_empty ? 2'd1 : ph_nt_h[p_ry];
                            kw <= p_empty ? 2'd1 : ph_nt_w[p_rx];
                            stride <= 2'd1;
                            pad_h <= p_empty ? -3'sd1 : ph_off_h[p_ry];
                            pad_w <= p_empty ? 3'sd0 : ph_off_w[p_rx];
                            height <= p_empty ? 16'd1 : ho17[15:0];
                            row0 <= p_rows ? ph_lo[p_ry] : 16'd0;
                            row1 <= p_rows ? ph_hi[p_ry] : 16'd0;
                            band0 <= ph_gy0[p_ry];
                            rows <= ph_gh[p_ry];
                            wo <= ph_gw[p_rx];
                            ph_dh <= p_ry ^ b0[0];
                            ph_rx <= p_rx;
                            pstate <= P_GEMM;
                        end
                        default: begin  // P_GEMM
                            gm <= batch32[`CPT_DIM_W-1:0] * ghgw;
                            woff <= woff + {2'd0, ph_kw[ph[1:0]]};
                            ph <= ph + 3'd1;
                            ph_none <= 1'b0;
                            ph_done <= 1'b1;
                            pstate <= P_IDLE;
                        end
                    endcase
                end
                S_1: begin
                    cp17 <= pitch(dg ? k_out : c_in);
                    ho17 <= out_size(h_in, kh4, s2, p2);
                    wo17 <= out_size(w_in, kw4, s2, p2);
                    state <= S_2;
                end
                S_2: begin
                    rows18 <= band_rows != 0 ? {2'd0, band_rows} : {1'b0, res_h} - {2'd0, b0};
                    band_err <= {1'b0, b0} >= res_h || {2'd0, b0} + (band_rows != 0 ? {2'd0, band_rows}
                                : {1'b0, res_h} - {2'd0, b0}) > {1'b0, res_h};
                    row_bits <= str_w * cp17;
                    // stride-2 input gradient: the largest phase's taps, ceil(kh / 2) ceil(kw / 2)
                    kred <= (s2dg ? {2'd0, ph_half(kh4)} * {2'd0, ph_half(kw4)} : kh4 * kw4) * cp17;
                    state <= S_3;
                end
                S_3: begin
                    rw <= rows18 * res_w;
                    row_words <= row_bits[LOG_D +: RWW] + (row_bits[LOG_D-1:0] != 0);
                    lo_s <= reach ? (lo0 < 0 ? 20'sd0 : lo0) : 20'sd0;
                    hi_s <= reach ? (hi1 > h_last ? h_last : hi1) + 20'sd1 : 20'sd0;
                    for (i = 0; i < 2; i = i + 1) begin
                        ph_nt_h[i] <= r_nt[i];
                        ph_off_h[i] <= r_off[i];
                        ph_gh[i] <= r_gh[i][15:0];
                        ph_gy0[i] <= r_h0[i][16:1];
                        ph_lo[i] <= r_lo[i][15:0];
                        ph_hi[i] <= r_hi[i][15:0];
                        ph_rows[i] <= r_nt[i] != 2'd0 && r_gh[i] != 18'd0 && r_lo[i] < r_hi[i];
                        ph_nt_w[i] <= ph_taps(kw4, i[0], p2[0]);
                        ph_off_w[i] <= ph_off(kw4, i[0], p2[0]);
                        ph_gw[i] <= c_gw[i];
                    end
                    state <= S_4;
                end
                S_4: begin
                    m48 <= batch32[`CPT_DIM_W-1:0] * rw;
                    if (batch32 > MAX_DIM) m48 <= 48'hFFFF_FFFF_FFFF;
                    rbytes <= ab32[`CPT_BITS_W-1:0] * row_words * WB[RB_W-1:0];
                    lo <= lo_s[15:0];
                    hi <= hi_s[15:0];
                    if (s2dg) begin         // the union of the row phases' E rows (ConvArgs.a_rows)
                        lo <= ph_rows[0] && ph_rows[1] ? (ph_lo[0] < ph_lo[1] ? ph_lo[0] : ph_lo[1])
                              : ph_rows[0] ? ph_lo[0] : ph_rows[1] ? ph_lo[1] : 16'd0;
                        hi <= ph_rows[0] && ph_rows[1] ? (ph_hi[0] > ph_hi[1] ? ph_hi[0] : ph_hi[1])
                              : ph_rows[0] ? ph_hi[0] : ph_rows[1] ? ph_hi[1] : 16'd0;
                    end
                    for (i = 0; i < 4; i = i + 1)
                        ph_kw[i] <= kbits_ph[i][LOG_D +: 16] + {15'd0, kbits_ph[i][LOG_D-1:0] != 0};
                    state <= S_5;
                end
                S_5: begin
                    x_stride <= {{(AW-IB_W){1'b0}}, image_bytes};
                    x_bytes <= {{(AW-IB_W){1'b0}}, span_bytes};
                    a_first <= a + {{(AW-IB_W){1'b0}}, skip_bytes};
                    col_words <= c_in * {{(16-`CPT_BITS_W){1'b0}}, bb32[`CPT_BITS_W-1:0]};
                    kw_sum <= {2'd0, ph_kw[0]} + {2'd0, ph_kw[1]} + {2'd0, ph_kw[2]} + {2'd0, ph_kw[3]};
                    state <= S_6;
                end
                S_6: begin
                    // no row reached: nothing is read (an empty range, inside every window)
                    a_size <= span_rows == 0 ? 68'd0
                              : {{(68-`CPT_DIM_W-IB_W){1'b0}}, lead_bytes} + {{(68-IB_W){1'b0}}, span_bytes};
                    b_size <= {30'd0, p_bsize} << LOG_WB;
                    state <= S_7;
                end
                default: begin  // S_7
                    status <= 32'd0;
                    status[STATUS_ERR_CONV] <= !built || geom;
                    if (built) begin                // (ops 1-3 all are)
                        status[STATUS_ERR_DIM] <= dim;
                        status[STATUS_ERR_BITS] <= bits_err;
                        status[STATUS_ERR_ALIGN] <= align;
                        status[STATUS_ERR_FLAGS] <= flags_err;
                    end
                    win_eval <= built && !geom && !dim && !bits_err;
                    gm <= m48[31:0];
                    gn <= {16'd0, n_out};
                    gk <= {7'd0, kred};
                    cp <= cp17[15:0];
                    width <= str_w;
                    height <= str_h;
                    kh <= kh4[1:0];
                    kw <= kw4[1:0];
                    stride <= s2;
                    pad_h <= off_h;
                    pad_w <= off_w;
                    row0 <= lo;
                    row1 <= hi;
                    band0 <= b0;
                    rows <= rows18[15:0];
                    wo <= res_w[15:0];
                    batch <= batch32[`CPT_DIM_W-1:0];
                    phased <= s2dg;
                    ph_zero <= 1'b0;
                    b_first <= b_addr;
                    b_size_sel <= s2dg;
                    dx_w <= w_in;
                    dx_rows <= rows18[15:0];
                    ph <= 3'd0;
                    woff <= 18'd0;
                    narrow <= flags[FLAG_C16];
                    done <= 1'b1;
                    state <= S_IDLE;
                end
            endcase
        end
    end

    // ---------------------------------------------------------------- weight gradient (op 3)
    // Its own registers, computed alongside the states above (their inputs are ready in the same states).
    localparam integer RWE_W = $clog2(MAX_ROW_BITS / D + 1);          // E row_words of a legal call
    localparam [16:0] MRB17 = MAX_ROW_BITS[16:0];
    localparam [79:0] BUF80 = {48'd0, WGRAD_BUF_WORDS[31:0]};
    localparam [71:0] BANK72 = {40'd0, WGRAD_BANK_WORDS[31:0]};
    localparam [31:0] LOG_D32 = LOG_D;
    localparam [3:0] LOG_D4 = LOG_D32[3:0];
    // a former's fullest bank (cpt_wgrad_former.v, packed rows; conv_calls.twin_wgrad_bank_words): rows of
    // P = max(8, width rounded up to a power of two) bits, R = D / P a word, groups of R rows over two bank
    // parities, channels over two channel banks: ceil(ceil(batch rows / R) / 2) bits ceil(channels / 2)
    function [3:0] log_r(input [16:0] w);  // log2 R for width w <= D
        integer l;
        begin
            log_r = 4'd0;
            for (l = LOG_D; l >= 3; l = l - 1)
                if (w <= (17'd1 << l)) log_r = LOG_D4 - l[3:0];
        end
    endfunction
    reg  [15:0] x_cc, e_cc;                 // ceil(C / 2), ceil(K / 2)
    reg  [47:0] x_nh, e_nh;                 // batch H, batch Ho
    reg  [23:0] x_bcc, e_bcc;               // a_bits ceil(C / 2), b_bits ceil(K / 2)
    reg  [47:0] x_g2, e_g2;                 // ceil(ceil(batch rows / R) / 2)
    reg  [71:0] xbank, ebank;               // the fullest bank's words
    reg  [16:0] ecp17;                      // Cp(K)
    reg  [19:0] taps_c;                     // kh kw C
    reg  [32:0] erow_bits;                  // Wo Cp(K)
    reg  [23:0] bits_c;                     // a_bits C
    reg  [31:0] x_hw;                       // H W
    reg  [55:0] xwords_c;                   // a_bits C ceil(H W / D)
    reg  [79:0] xbuf;                       // batch a_bits C ceil(H W / D): the X chunk's words
    wire [31:0] x_hw_words = (x_hw >> LOG_D) + {31'd0, x_hw[LOG_D-1:0] != 0};
    reg  [RWE_W-1:0] erw;                   // E row_words
    reg  [RB_W-1:0]  ebytes_row;            // R(E)
    reg  [IB_W-1:0]  eimage;                // Ho R(E)
    wire [`CPT_DIM_W+IB_W-1:0] eall = batch32[`CPT_DIM_W-1:0] * eimage;
    wire [67:0] eall68 = {{(68-`CPT_DIM_W-IB_W){1'b0}}, eall};
    assign wg_dim_late = {32'd0, k_out} > MAX_DIM48 || {28'd0, taps_c} > MAX_DIM48 || m48 > K_MAX48;
    assign wg_limits = b0 != 0 || rows18 != {1'b0, ho17} || lo != 0 || hi == 0 || {1'b0, w_in} > D17
                       || wo17 > D17 || (cp17 & (cp17 - 17'd1)) != 0 || (ecp17 & (ecp17 - 17'd1)) != 0
                       || erow_bits > {16'd0, MRB17} || xbuf > BUF80 || xbank > BANK72
                       || ebank > BANK72;
    // conv_calls._inside: an empty range, or one inside [win_base, win_limit)
    // the code sums (conv_calls.ConvArgs.sums_count): forward, M result rows' then K kh kw weight taps';
    // weight gradient, kh kw C rows' then kh kw K error taps'
    wire [47:0] sums_rows = wgo ? {28'd0, taps_c} : m48;
    wire [67:0] sums_bytes = {20'd0, sums_rows + {32'd0, n_out} * {44'd0, kh4} * {44'd0, kw4}}
                             << `CPT_LOG_SUM_BYTES;
    function in_win(input [AW-1:0] base, input [67:0] bytes);
        in_win = bytes == 68'd0
                 || (base >= win_lo && {{(68-AW){1'b0}}, base} + bytes <= {{(68-AW){1'b0}}, win_hi});
    endfunction
    wire [3:0]  x_lr = log_r({1'b0, w_in});
    wire [3:0]  e_lr = log_r(wo17);
    wire [47:0] x_gr = (x_nh + ~(48'hFFFF_FFFF_FFFF << x_lr)) >> x_lr;     // ceil(batch H / R)
    wire [47:0] e_gr = (e_nh + ~(48'hFFFF_FFFF_FFFF << e_lr)) >> e_lr;

    always @(posedge clk) begin
        case (state)
            S_1: begin
                ecp17 <= pitch(k_out);
                x_cc <= c_in[15:1] + {15'd0, c_in[0]};
                e_cc <= k_out[15:1] + {15'd0, k_out[0]};
                bits_c <= ab32[7:0] * c_in;
            end
            S_2: begin
                taps_c <= (kh4 * kw4) * c_in;
                erow_bits <= wo17 * ecp17;
                x_hw <= h_in * w_in;
                x_nh <= batch32 * h_in;
                e_nh <= batch32 * ho17[15:0];
                x_bcc <= ab32[7:0] * x_cc;
                e_bcc <= bb32[7:0] * e_cc;
            end
            S_3: begin
                x_g2 <= (x_gr + 48'd1) >> 1;
                e_g2 <= (e_gr + 48'd1) >> 1;
                erw <= erow_bits[LOG_D +: RWE_W] + (erow_bits[LOG_D-1:0] != 0);
                xwords_c <= {8'd0, bits_c} * x_hw_words;
            end
            S_4: begin
                ebytes_row <= bb32[`CPT_BITS_W-1:0] * erw * WB[RB_W-1:0];
                xbank <= x_g2 * x_bcc;
                xbuf <= batch32[23:0] * xwords_c;
                if (batch32 > MAX_DIM)          // (ERR_DIM: the product is not needed)
                    xbuf <= {80{1'b1}};
                ebank <= e_g2 * e_bcc;
            end
            S_5: eimage <= ho17[15:0] * ebytes_row;
            S_6: begin
                e_size <= eall68;
                e_bytes <= eall68[AW-1:0];
                pf_x_base <= next_a + {{(AW-IB_W){1'b0}}, skip_bytes};
            end
            S_7: begin
                pf <= wg_pf;
                pf_e_base <= next_b;
                pf_win_err <= wg_pf && !(in_win(pf_x_base, a_size) && in_win(next_b, e_size));
                sums_en <= flags[FLAG_SUMS] && op != 2'd2;
                sums_base <= sums_addr;
                sums_win_err <= flags[FLAG_SUMS] && op != 2'd2 && !in_win(sums_addr, sums_bytes);
                wg <= wgo;
                wg_m <= {12'd0, taps_c};
                wg_k <= m48[31:0];
                c_ch <= c_in;
                e_cp <= ecp17[15:0];
            end
            default: ;
        endcase
    end

    // ---------------------------------------------------------------- C16's worst case (conv_calls.k_real)
    // K (2^a_bits - 1)(2^b_bits - 1) >= 2^15, K = kh kw C (forward), kh kw K (input gradient) or the call's
    // positions batch Ho Wo (weight gradient, = m48): K >= 2^15 overflows whatever the precisions (both >= 1),
    // else a 15 x 16-bit product decides.  Only a call with clean geometry, ERR_DIM and ERR_BITS uses it.
    // (2^a_bits - 1)(2^b_bits - 1) likewise: >= 2^15 overflows, else its low 15 bits enter the product.
    reg  [31:0] c16_ab;                     // precisions <= OP_BITS <= 16
    reg  [47:0] c16_k;
    wire [15:0] c16_amax = ~(16'hFFFF << ab32[4:0]), c16_bmax = ~(16'hFFFF << bb32[4:0]);
    wire [29:0] c16_worst = c16_k[14:0] * c16_ab[14:0];
    wire [19:0] c16_taps = {16'd0, kh4} * {16'd0, kw4} * {4'd0, dg ? k_out : c_in};   // kh kw C or kh kw K
    always @(posedge clk) begin
        case (state)
            S_2: c16_ab <= c16_amax * c16_bmax;
            S_5: c16_k <= wgo ? m48 : {28'd0, c16_taps};
            S_6: c16_err <= flags[FLAG_C16] && (c16_k[47:15] != 0 || c16_ab[31:15] != 0 || c16_worst[29:15] != 0);
            default: ;
        endcase
    end

    wire unused = &{1'b0, c16_worst[14:0], ab32[31:`CPT_BITS_W], cp17[16], wo17[16], res_h[16], res_w[16],
                    rows18[17:16], lo_s[19:16], hi_s[19:16],
                    ecp17[16], erow_bits[32:LOG_D+RWE_W], eall68,
                    arg_b[AW-1:LOG_WB], arg_c[AW-1:LOG_WB], arg_sums[AW-1:LOG_WB],
                    p_skip68[67:AW], p_span68[67:AW], p_boff68[67:AW]};
endmodule

`default_nettype wire
`endif
