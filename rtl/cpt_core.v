// cpt_gemm behind its HLS-named ports: control slave, argument checks, read engine, plane buffers,
// feeder, PE array, drain and write engine (docs/rtl.md has the block diagram).
//
// One call: ap_start -> cpt_setup checks the arguments and derives sizes (no bus traffic); with a
// non-zero status the call ends there (ap_done, interrupt, memory untouched).  Otherwise the reader,
// feeder and writer start together and run decoupled, synchronised only by the buffer ownership flags
// below (a_full per A half, b_full), the drain handshake and the writer's tile queue; the call ends
// when the writer has every write response and the B prefetch (if any) is in.  `cycles` counts the
// non-idle cycles of the call.
//
// B prefetch (flags bit PREFETCH_B, docs/rtl.md): the B buffer has two halves.  A call's blocks use
// half b_cur; its prefetch loads the next call's first B block into the other half.  The prefetched
// half and the hint it was loaded for (pf_buf, pf_key) persist across calls until ap_rst_n; the next
// call -- and only the next one -- uses it iff its own (b, n, k, b_bits) equal pf_key (a "hit": B(0)
// is not loaded).  Results never depend on it: a miss simply loads B as usual.
//
// Convolution engine (`CPT_CONV, config conv_engine; interface 4): a call whose conv op is not 0 first runs
// cpt_conv_setup (checks, geometry), then cpt_setup on the call's GEMM (M, N, K; the window with the tensor's
// range); forward calls and input gradients run as a GEMM whose A tiles the walker forms from the tensor stream
// (X; E of an input gradient) the reader delivers (cpt_conv_walker, cpt_im2col_former).  It never uses a B
// prefetch.  A stride-2 input gradient (conv_phased) runs its phases one after another after that check: for
// each, cpt_conv_setup gives its GEMM (K_PHASE), cpt_setup derives its sizes (K_PSETUP, status ignored: the
// call's was checked) and it runs like a call (K_RUN), its C rows placed by cpt_conv_rows.  A weight gradient
// (op 3) runs as a GEMM whose A tiles and B blocks cpt_wgrad_walker forms from the X and E streams (two
// cpt_wgrad_formers): it writes the B banks in place of the reader and owns the B buffer as the reader would
// (b_issue, b_loaded).  Its prefetch hint (PREFETCH_B with next_a/next_b) streams the next call's X and E
// chunks into the formers' other bank set while the call computes; the call ends only when they are stored.
// The hint (cv_valid, cv_key: next_a, next_b, the call's geometry registers and flags SUMS, B_SIGNED) persists
// like the B prefetch's; the next call -- and only the next one -- skips its chunk loads iff its (a, b, geometry,
// those flags) equal cv_key (a
// "wg hit"), and then computes with the chunks as they were read during the previous call.  The prefetching call
// also forms the next call's first B block into the other B half (cv_b_half), which a hit starts with, as a B
// prefetch hit does (b_hit).
//
// Code sums (flags SUMS, forward calls and weight gradients; docs/rtl.md, "Code sums"): cpt_sums_rows counts each
// result row's sum from the A words either walker writes, cpt_sums_taps a forward call's per-tap weight sums from
// the B words the reader writes, cpt_sums_etaps a weight gradient's per-tap error sums from the B words its walker
// writes (and the next call's block 0's, kept for a hit), and cpt_sums_writer writes them at `sums`, sharing the
// write channel with cpt_writer; each producer holds back the next tile or block (rows_hold: the walker sees both
// A halves busy; taps_hold: the reader sees the B buffer busy; etaps_hold: the weight gradient's B walk waits)
// while its sums wait.  The call ends only when they are written and counted (sums_busy).

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_core #(
    // The config's numbers; defaults from cpt_gemm_widths.vh, which also sizes the submodules' ports, so
    // an override that differs from the header is refused below.
    parameter integer ROWS = `CPT_ROWS,                 // config rows
    parameter integer COLS = `CPT_COLS,                 // config cols
    parameter integer D = `CPT_D,                       // config dot_width (a power of two here)
    parameter integer ACC_W = `CPT_ACC_W,               // config acc_width
    parameter integer OP_BITS = `CPT_OP_BITS,           // config operand_bits = max(max_bits, max_grad_bits)
    parameter integer K_WORDS = `CPT_K_WORDS,           // config k_words
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS, // config b_block_cols (a multiple of COLS)
    parameter integer AXI_DW = `CPT_AXI_DW,             // config axi_data_width (divides D and COLS x RESULT_W)
    parameter integer AXI_AW = `CPT_AXI_AW,             // config axi_addr_width
    parameter integer BURST_BEATS = `CPT_BURST_BEATS,   // config burst_beats
    parameter integer MAX_DIM = `CPT_MAX_DIM,           // config max_dim
    parameter integer CTRL_AW = 8                       // s_axi_control address bits (register map)
) (
    input  wire                clk,
    input  wire                rst_n,

    input  wire                s_axi_awvalid,
    output wire                s_axi_awready,
    input  wire [CTRL_AW-1:0]  s_axi_awaddr,
    input  wire                s_axi_wvalid,
    output wire                s_axi_wready,
    input  wire [31:0]         s_axi_wdata,
    input  wire [3:0]          s_axi_wstrb,
    output wire                s_axi_bvalid,
    input  wire                s_axi_bready,
    output wire [1:0]          s_axi_bresp,
    input  wire                s_axi_arvalid,
    output wire                s_axi_arready,
    input  wire [CTRL_AW-1:0]  s_axi_araddr,
    output wire                s_axi_rvalid,
    input  wire                s_axi_rready,
    output wire [31:0]         s_axi_rdata,
    output wire [1:0]          s_axi_rresp,
    output wire                interrupt,

    output wire                m_axi_awvalid,
    input  wire                m_axi_awready,
    output wire [AXI_AW-1:0]   m_axi_awaddr,
    output wire [7:0]          m_axi_awlen,
    output wire [2:0]          m_axi_awsize,
    output wire [1:0]          m_axi_awburst,
    output wire                m_axi_wvalid,
    input  wire                m_axi_wready,
    output wire [AXI_DW-1:0]   m_axi_wdata,
    output wire [AXI_DW/8-1:0] m_axi_wstrb,
    output wire                m_axi_wlast,
    input  wire                m_axi_bvalid,
    output wire                m_axi_bready,
    input  wire [1:0]          m_axi_bresp,
    output wire                m_axi_arvalid,
    input  wire                m_axi_arready,
    output wire [AXI_AW-1:0]   m_axi_araddr,
    output wire [7:0]          m_axi_arlen,
    output wire [2:0]          m_axi_arsize,
    output wire [1:0]          m_axi_arburst,
    input  wire                m_axi_rvalid,
    output wire                m_axi_rready,
    input  wire [AXI_DW-1:0]   m_axi_rdata,
    input  wire                m_axi_rlast,
    input  wire [1:0]          m_axi_rresp
);
    `include "cpt_gemm_regmap.vh"

    initial begin
        if (ROWS != `CPT_ROWS || COLS != `CPT_COLS || D != `CPT_D || ACC_W != `CPT_ACC_W || OP_BITS != `CPT_OP_BITS
                || K_WORDS != `CPT_K_WORDS || B_BLOCK_COLS != `CPT_B_BLOCK_COLS || AXI_DW != `CPT_AXI_DW
                || AXI_AW != `CPT_AXI_AW || BURST_BEATS != `CPT_BURST_BEATS || MAX_DIM != `CPT_MAX_DIM) begin
            $display("%m: error: parameters differ from cpt_gemm_widths.vh, whose widths size the ports: regenerate");
            $finish;
        end
        if (ACC_W > `CPT_RESULT_W || ACC_W < $clog2(D + 1) + 1) begin
            $display("%m: error: ACC_W = %0d must be in %0d..%0d", ACC_W, $clog2(D + 1) + 1, `CPT_RESULT_W);
            $finish;
        end
        if (B_BLOCK_COLS % COLS != 0 || (COLS * `CPT_RESULT_W) % AXI_DW != 0 || D % AXI_DW != 0) begin
            $display("%m: error: need B_BLOCK_COLS %% COLS == 0, COLS x RESULT_W %% AXI_DW == 0, D %% AXI_DW == 0");
            $finish;
        end
    end

    wire rst = !rst_n;

    // ------------------------------------------------------------------ control slave
    wire ap_start, ap_idle, ap_done;
    reg  [31:0] status_out;
    reg  [63:0] cycles_out;
    wire [OUTS_W-1:0] outs;
    // The register bank holds every argument of cpt_hw.hw.regmap.ARGUMENTS; one that no logic reads yet
    // leaves its bits of `args` unconnected.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [ARGS_W-1:0] args;
    /* verilator lint_on UNUSEDSIGNAL */
    assign outs[OUT_STATUS +: 32] = status_out;
    assign outs[OUT_CYCLES +: 64] = cycles_out;
    assign outs[OUT_ID +: 32] = ID_WORD;

    cpt_control #(.CTRL_AW(CTRL_AW), .IN_W(ARGS_W), .OUT_W(OUTS_W)) control (
        .clk(clk), .rst(rst),
        .s_axi_awvalid(s_axi_awvalid), .s_axi_awready(s_axi_awready), .s_axi_awaddr(s_axi_awaddr),
        .s_axi_wvalid(s_axi_wvalid), .s_axi_wready(s_axi_wready), .s_axi_wdata(s_axi_wdata),
        .s_axi_wstrb(s_axi_wstrb), .s_axi_bvalid(s_axi_bvalid), .s_axi_bready(s_axi_bready),
        .s_axi_bresp(s_axi_bresp), .s_axi_arvalid(s_axi_arvalid), .s_axi_arready(s_axi_arready),
        .s_axi_araddr(s_axi_araddr), .s_axi_rvalid(s_axi_rvalid), .s_axi_rready(s_axi_rready),
        .s_axi_rdata(s_axi_rdata), .s_axi_rresp(s_axi_rresp), .interrupt(interrupt),
        .ap_start(ap_start), .ap_idle(ap_idle), .ap_done(ap_done), .outs(outs), .args(args)
    );

    // ------------------------------------------------------------------ call sequencing
    localparam [2:0] K_IDLE = 3'd0, K_SETUP = 3'd1, K_RUN = 3'd2, K_DONE = 3'd3, K_CONV = 3'd4, K_PHASE = 3'd5,
                     K_PSETUP = 3'd6;
    reg  [2:0]  kstate;
    reg  [63:0] cycle_count;
    reg         setup_start, run_start;
    wire        setup_done, writer_done, reader_err, writer_err, pf_busy;
    wire [31:0] setup_status;
    // convolution calls (tied off without the engine)
    wire        conv_arg;                       // the conv op register is not 0
    reg         is_conv;                        // this call is a conv call
    reg         conv_start, conv_run;           // conv_run: a forward conv call is running
    wire        conv_done, conv_win_eval;
    wire [31:0] conv_status;
    reg  [31:0] call_status;
    reg         written;                        // the writer reported done during this call
    wire        conv_phased;                    // a stride-2 input gradient: phase by phase
    reg         ph_next;                        // cpt_conv_setup: the next phase
    wire        ph_done, ph_none;
    // prefetch state, kept across calls
    wire              pf_en;
    wire [`CPT_KEY_W-1:0]  call_key, next_key;
    reg               pf_valid, pf_buf, b_cur, b_hit;
    reg  [`CPT_KEY_W-1:0]  pf_key;
    // the weight gradient's prefetch (tied off without the engine): hint kept across calls, as the B prefetch's
    localparam integer CV_GEOM_W = 226;             // the seven 32-bit geometry registers of the key and flags
                                                    // SUMS and B_SIGNED (the next call's kept error sums)
    localparam integer CV_KEY_W = 2 * AXI_AW + CV_GEOM_W;
    wire [CV_KEY_W-1:0] cv_call_key, cv_next_key;   // (a, b | next_a, next_b) and the geometry registers
    reg               cv_valid, wg_hit, cv_b_half;
    reg  [CV_KEY_W-1:0] cv_key;
    wire              conv_pf, conv_pf_win_err, wg_wr_busy;
    // code sums (flags SUMS): cpt_sums_rows, cpt_sums_taps, cpt_sums_etaps and cpt_sums_writer
    wire              sums_en, sums_win_err, sums_busy, sums_err, rows_hold, taps_hold, etaps_hold, etaps_busy;
    wire              sums_wr_busy;
    wire              cv_hit = cv_valid && cv_call_key == cv_key;
    wire              conv_c16;                 // the conv call's flags C16 (cpt_conv_setup; legal calls)
    wire              c16 = is_conv && conv_c16; // int16 results: C's sizes (cpt_setup), addresses, the writer

    assign ap_idle = (kstate == K_IDLE);
    // ap_done is high during the one K_DONE cycle: the control block clears ap_start at the same edge
    // at which this FSM returns to idle, so a finished call is never started again by accident.
    assign ap_done = (kstate == K_DONE);

    // a conv call's status: cpt_conv_setup's, with cpt_setup's ERR_WINDOW (tensor, weights, C) when due
    wire [31:0] final_status = !is_conv ? setup_status
                               : conv_status | (conv_win_eval ? (setup_status & (32'd1 << STATUS_ERR_WINDOW))
                                                                | ({31'd0, conv_pf_win_err || sums_win_err}
                                                                   << STATUS_ERR_WINDOW)
                                                              : 32'd0);
    wire        hit = pf_valid && call_key == pf_key && !is_conv;

    always @(posedge clk) begin
        setup_start <= 1'b0;
        run_start <= 1'b0;
        conv_start <= 1'b0;
        ph_next <= 1'b0;
        if (rst) begin
            is_conv <= 1'b0;
            conv_run <= 1'b0;
            kstate <= K_IDLE;
            status_out <= 32'd0;
            cycles_out <= 64'd0;
            pf_valid <= 1'b0;
            pf_buf <= 1'b1;
            b_cur <= 1'b0;
            b_hit <= 1'b0;
            cv_valid <= 1'b0;
            wg_hit <= 1'b0;
            cv_b_half <= 1'b0;
        end else begin
            if (kstate != K_IDLE) cycle_count <= cycle_count + 1'b1;
            case (kstate)
                K_IDLE: if (ap_start) begin
                    cycle_count <= 64'd1;
                    is_conv <= conv_arg;
                    conv_run <= 1'b0;
                    if (conv_arg) begin
                        conv_start <= 1'b1;
                        kstate <= K_CONV;
                    end else begin
                        setup_start <= 1'b1;
                        kstate <= K_SETUP;
                    end
                end
                K_CONV: if (conv_done) begin        // then the call's GEMM through cpt_setup
                    setup_start <= 1'b1;
                    kstate <= K_SETUP;
                end
                K_SETUP: if (setup_done) begin
                    call_status <= final_status;
                    status_out <= final_status;
                    cycles_out <= cycle_count + 1'b1;
                    // A prefetch serves the very next call only, whatever that call is.
                    pf_valid <= 1'b0;
                    b_hit <= hit || (is_conv && cv_hit && final_status == 0);
                    cv_valid <= 1'b0;
                    wg_hit <= is_conv && cv_hit && final_status == 0;
                    cv_key <= cv_next_key;
                    b_cur <= hit ? pf_buf : (is_conv && cv_hit) ? cv_b_half : !pf_buf;
                    written <= 1'b0;
                    conv_run <= is_conv && final_status == 0;
                    if (final_status != 0) kstate <= K_DONE;
                    else if (is_conv && conv_phased) begin
                        ph_next <= 1'b1;
                        kstate <= K_PHASE;
                    end else begin
                        run_start <= 1'b1;
                        kstate <= K_RUN;
                    end
                end
                K_PHASE: if (ph_done) begin        // a phase's GEMM through cpt_setup, or the call's end
                    if (ph_none) begin
                        status_out <= call_status;
                        cycles_out <= cycle_count + 1'b1;
                        kstate <= K_DONE;
                    end else begin
                        setup_start <= 1'b1;
                        kstate <= K_PSETUP;
                    end
                end
                K_PSETUP: if (setup_done) begin
                    written <= 1'b0;
                    run_start <= 1'b1;
                    kstate <= K_RUN;
                end
                K_RUN: begin
                    if (writer_done) written <= 1'b1;
                    if ((writer_done || written) && is_conv && conv_phased) begin    // the phase is written
                        if (reader_err || writer_err) call_status[STATUS_ERR_AXI_RESP] <= 1'b1;
                        ph_next <= 1'b1;
                        kstate <= K_PHASE;
                    end else if ((writer_done || written) && !pf_busy && !wg_wr_busy && !sums_busy) begin
                        status_out <= call_status | ((reader_err || writer_err || sums_err)
                                                     ? 32'd1 << STATUS_ERR_AXI_RESP : 32'd0);
                        cycles_out <= cycle_count + 1'b1;
                        kstate <= K_DONE;
                        // the prefetched block is complete; a call with a bus error (status
                        // ERR_AXI_RESP) leaves it unused, as cpt_hw.hw.calls.PrefetchState says
                        if (pf_en && !reader_err && !writer_err && !sums_err) begin
                            pf_valid <= 1'b1;
                            pf_buf <= !b_cur;
                            pf_key <= next_key;
                        end
                        cv_valid <= is_conv && conv_wg && conv_pf && !reader_err && !writer_err && !sums_err;
                        cv_b_half <= !b_cur;                // where the walker formed the next call's block 0
                    end
                end
                default: kstate <= K_IDLE;  // K_DONE: ap_done
            endcase
        end
    end

    // ------------------------------------------------------------------ argument checks, sizes
    wire [`CPT_DIM_W-1:0]  m, n;
    wire [`CPT_KW_W-1:0]   kw;
    wire [`CPT_BITS_W-1:0] a_bits, b_bits;
    wire              a_signed, b_signed;
    wire [`CPT_RW_W-1:0]   a_row_words, b_col_words;
    wire [AXI_AW-1:0] a_base, b_base, c_base, a_end, b_end, a_tile_bytes, b_block_bytes;
    wire [AXI_AW-1:0] c_stride, c_tile_step, c_tile_span, pf_base, pf_end;
    wire [`CPT_RW_W-1:0]   pf_col_words;

    // what cpt_setup checks: the registers, or a conv call's GEMM (signedness flags only: the conv flags are
    // cpt_conv_setup's)
    wire [AXI_AW-1:0] conv_a_first;
    wire [67:0]       conv_a_size;
    wire [31:0]       conv_gm, conv_gn, conv_gk;
    wire              conv_wg;                  // the conv call is a weight gradient (op 3): its GEMM's M and K
    wire [31:0]       conv_wg_m, conv_wg_k;
    wire [67:0]       conv_e_size;              // and B's range: the E tensor
    localparam [31:0] SIGNS = (32'd1 << FLAG_A_SIGNED) | (32'd1 << FLAG_B_SIGNED);
    wire [AXI_AW-1:0] conv_b_first;
    wire [67:0]       conv_b_size;
    wire              conv_b_size_sel;
    wire [AXI_AW-1:0] s_arg_a = is_conv ? conv_a_first : args[ARG_A +: AXI_AW];
    wire [AXI_AW-1:0] s_arg_b = is_conv ? conv_b_first : args[ARG_B +: AXI_AW];
    wire [31:0] s_arg_m = is_conv ? (conv_wg ? conv_wg_m : conv_gm) : args[ARG_M +: 32];
    wire [31:0] s_arg_n = is_conv ? conv_gn : args[ARG_N +: 32];
    wire [31:0] s_arg_k = is_conv ? (conv_wg ? conv_wg_k : conv_gk) : args[ARG_K +: 32];
    wire [31:0] s_arg_flags = is_conv ? args[ARG_FLAGS +: 32] & SIGNS : args[ARG_FLAGS +: 32];
    wire        conv_ph_zero;                   // a stride-2 phase without taps: its zero rows at 1 x 1 bits
    wire [31:0] s_arg_a_bits = is_conv && conv_ph_zero ? 32'd1 : args[ARG_A_BITS +: 32];
    wire [31:0] s_arg_b_bits = is_conv && conv_ph_zero ? 32'd1 : args[ARG_B_BITS +: 32];

    cpt_setup #(
        .ROWS(ROWS), .COLS(COLS), .D(D), .OP_BITS(OP_BITS), .K_WORDS(K_WORDS), .B_BLOCK_COLS(B_BLOCK_COLS),
        .AW(AXI_AW), .MAX_DIM(MAX_DIM)
    ) setup (
        .clk(clk), .rst(rst), .start(setup_start),
        .arg_a(s_arg_a), .arg_b(s_arg_b), .arg_c(args[ARG_C +: AXI_AW]),
        .arg_m(s_arg_m), .arg_n(s_arg_n), .arg_k(s_arg_k),
        .arg_a_bits(s_arg_a_bits), .arg_b_bits(s_arg_b_bits), .arg_flags(s_arg_flags),
        .arg_win_base(args[ARG_WIN_BASE +: AXI_AW]), .arg_win_limit(args[ARG_WIN_LIMIT +: AXI_AW]),
        .arg_next_b(args[ARG_NEXT_B +: AXI_AW]), .arg_next_n(args[ARG_NEXT_N +: 32]),
        .arg_next_k(args[ARG_NEXT_K +: 32]), .arg_next_b_bits(args[ARG_NEXT_B_BITS +: 32]),
        .a_size_sel(is_conv), .a_size_in(conv_a_size), .b_size_sel(is_conv && (conv_wg || conv_b_size_sel)),
        .b_size_in(conv_wg ? conv_e_size : conv_b_size), .narrow(c16),
        .done(setup_done), .status(setup_status),
        .m(m), .n(n), .kw(kw), .a_bits(a_bits), .b_bits(b_bits), .a_signed(a_signed), .b_signed(b_signed),
        .a_row_words(a_row_words), .b_col_words(b_col_words), .a_base(a_base), .b_base(b_base),
        .c_base(c_base), .a_end(a_end), .b_end(b_end), .a_tile_bytes(a_tile_bytes),
        .b_block_bytes(b_block_bytes), .c_stride(c_stride), .c_tile_step(c_tile_step),
        .c_tile_span(c_tile_span), .pf_en(pf_en), .pf_base(pf_base), .pf_end(pf_end),
        .pf_col_words(pf_col_words), .key(call_key), .next_key(next_key)
    );

    // ------------------------------------------------------------------ buffer ownership
    // busy: from the reader issuing a load until the feeder releases the buffer (the reader waits on
    // it); full: from the last word written until the release (the feeder waits on it).
    reg  [1:0] a_busy, a_full;
    reg        b_busy, b_full;
    wire       a_issue, a_issue_half, b_issue, a_loaded, a_loaded_half, b_loaded;
    wire       rd_a_issue, rd_a_issue_half, rd_a_loaded, rd_a_loaded_half;     // the reader's (GEMM calls)
    wire       wk_a_issue, wk_a_issue_half, wk_a_loaded, wk_a_loaded_half;     // the walker's (conv calls)
    wire       rd_b_issue, rd_b_loaded, wg_b_issue, wg_b_loaded;               // B: the reader's, cpt_wgrad_walker's
    assign b_issue = rd_b_issue || wg_b_issue;
    assign b_loaded = rd_b_loaded || wg_b_loaded;
    assign a_issue = rd_a_issue || wk_a_issue;
    assign a_issue_half = conv_run ? wk_a_issue_half : rd_a_issue_half;
    assign a_loaded = rd_a_loaded || wk_a_loaded;
    assign a_loaded_half = conv_run ? wk_a_loaded_half : rd_a_loaded_half;
    wire       a_release, a_release_half, b_release;

    always @(posedge clk) begin
        if (rst || run_start) begin
            a_busy <= 2'b00;
            a_full <= 2'b00;
            b_busy <= b_hit && !rst;            // a hit: block 0 is in place, owned by the feeder
            b_full <= b_hit && !rst;
        end else begin
            if (a_issue) a_busy[a_issue_half] <= 1'b1;
            if (a_loaded) a_full[a_loaded_half] <= 1'b1;
            if (a_release) begin
                a_busy[a_release_half] <= 1'b0;
                a_full[a_release_half] <= 1'b0;
            end
            if (b_issue) b_busy <= 1'b1;
            if (b_loaded) b_full <= 1'b1;
            if (b_release) begin
                b_busy <= 1'b0;
                b_full <= 1'b0;
            end
        end
    end

    // ------------------------------------------------------------------ read engine and buffers
    wire [ROWS-1:0] rd_a_we;
    wire [COLS-1:0] b_we, rd_b_we, wg_b_we;
    wire [`CPT_A_AW-1:0] rd_a_waddr, a_raddr;
    wire [`CPT_B_AW-1:0] b_waddr, rd_b_waddr, wg_b_waddr, b_raddr;
    wire [D-1:0]    wdata, b_wdata, wg_b_wdata;
    wire            wg_run;                     // a weight-gradient call runs: cpt_wgrad_walker writes B
    // the B banks are written by the reader, or by the weight-gradient walker
    assign b_we = wg_run ? wg_b_we : rd_b_we;
    assign b_waddr = wg_run ? wg_b_waddr : rd_b_waddr;
    assign b_wdata = wg_run ? wg_b_wdata : wdata;
    wire            rd_en;
    // the A banks are written by the reader (GEMM calls) or the walker (conv calls), whose lanes (formers)
    // write different banks in the same cycle: bank g takes the word of the lane that writes it
    localparam integer LANES = 4;               // cpt_conv_walker's formers
    wire [LANES*ROWS-1:0]      wk_a_we_l;
    wire [LANES*`CPT_A_AW-1:0] wk_a_waddr_l;
    wire [LANES*D-1:0]         wk_a_wdata_l;
    reg  [ROWS-1:0]            bank_we;
    reg  [ROWS*`CPT_A_AW-1:0]  bank_waddr;
    reg  [ROWS*D-1:0]          bank_wdata;
    integer bg, bl;
    always @* begin
        for (bg = 0; bg < ROWS; bg = bg + 1) begin
            bank_we[bg] = rd_a_we[bg];
            bank_waddr[bg*`CPT_A_AW +: `CPT_A_AW] = rd_a_waddr;
            bank_wdata[bg*D +: D] = wdata;
            if (conv_run) begin
                bank_we[bg] = 1'b0;
                for (bl = 0; bl < LANES; bl = bl + 1)
                    if (wk_a_we_l[bl*ROWS + bg]) begin
                        bank_we[bg] = 1'b1;
                        bank_waddr[bg*`CPT_A_AW +: `CPT_A_AW] = wk_a_waddr_l[bl*`CPT_A_AW +: `CPT_A_AW];
                        bank_wdata[bg*D +: D] = wk_a_wdata_l[bl*D +: D];
                    end
            end
        end
    end
    wire            x_valid, x_ready, x_is_e;   // the X stream of a conv call, reader to walker (wg: E, then X)
    wire [D-1:0]    x_data;
    wire [`CPT_DIM_W-1:0] conv_batch;
    wire [AXI_AW-1:0] conv_x_bytes, conv_x_stride, conv_e_bytes, conv_pf_x_base, conv_pf_e_base;

    cpt_reader #(
        .ROWS(ROWS), .COLS(COLS), .D(D), .B_BLOCK_COLS(B_BLOCK_COLS), .AXI_DW(AXI_DW), .AW(AXI_AW),
        .BURST_BEATS(BURST_BEATS)
    ) reader (
        .clk(clk), .rst(rst), .start(run_start), .m(m), .n(n), .a_row_words(a_row_words),
        .b_col_words(b_col_words), .a_base(a_base), .b_base(b_base), .a_end(a_end), .b_end(b_end),
        .a_tile_bytes(a_tile_bytes), .b_block_bytes(b_block_bytes), .b_cur(b_cur), .b_hit(b_hit),
        .pf_en(pf_en), .pf_base(pf_base), .pf_end(pf_end), .pf_col_words(pf_col_words),
        .conv(conv_run), .x_images(conv_batch), .x_bytes(conv_x_bytes), .x_stride(conv_x_stride),
        .x_valid(x_valid), .x_ready(x_ready), .x_data(x_data), .wg(wg_run), .e_bytes(conv_e_bytes),
        .x_is_e(x_is_e), .wg_own(!wg_hit), .wg_pf(conv_pf), .pf_x_base(conv_pf_x_base), .pf_e_base(conv_pf_e_base),
        .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready), .m_axi_araddr(m_axi_araddr),
        .m_axi_arlen(m_axi_arlen), .m_axi_arsize(m_axi_arsize), .m_axi_arburst(m_axi_arburst),
        .m_axi_rvalid(m_axi_rvalid), .m_axi_rready(m_axi_rready), .m_axi_rdata(m_axi_rdata),
        .m_axi_rlast(m_axi_rlast), .m_axi_rresp(m_axi_rresp),
        .a_busy(a_busy), .b_busy(b_busy || taps_hold), .a_issue(rd_a_issue), .a_issue_half(rd_a_issue_half),
        .b_issue(rd_b_issue),
        .a_loaded(rd_a_loaded), .a_loaded_half(rd_a_loaded_half), .b_loaded(rd_b_loaded), .a_we(rd_a_we),
        .a_waddr(rd_a_waddr), .b_we(rd_b_we), .b_waddr(rd_b_waddr),
        .wdata(wdata), .resp_err(reader_err), .pf_busy(pf_busy)
    );

    wire [ROWS*D-1:0] a_words;
    wire [COLS*D-1:0] b_words, b_masked;
    wire [COLS-1:0]   b_mask;

    genvar g;
    generate
        for (g = 0; g < ROWS; g = g + 1) begin : a_bank
            sdp_ram #(.WIDTH(D), .DEPTH(`CPT_A_DEPTH), .AW(`CPT_A_AW)) ram (
                .clk(clk), .we(bank_we[g]), .waddr(bank_waddr[g*`CPT_A_AW +: `CPT_A_AW]),
                .wdata(bank_wdata[g*D +: D]), .re(rd_en), .raddr(a_raddr), .rdata(a_words[g*D +: D])
            );
        end
        for (g = 0; g < COLS; g = g + 1) begin : b_bank
            sdp_ram #(.WIDTH(D), .DEPTH(`CPT_B_DEPTH), .AW(`CPT_B_AW)) ram (
                .clk(clk), .we(b_we[g]), .waddr(b_waddr), .wdata(b_wdata),
                .re(rd_en), .raddr(b_raddr), .rdata(b_words[g*D +: D])
            );
            assign b_masked[g*D +: D] = b_words[g*D +: D] & {D{b_mask[g]}};
        end
    endgenerate

    // ------------------------------------------------------------------ convolution engine
    wire            tile_empty, tile_pop;       // the tile queue (declared here: cpt_conv_rows follows it)
    wire [`CPT_TI_W-1:0] tile_out;
    wire            w_tile_empty, row_next;     // the writer's view of the queue; it closed a row
    wire [AXI_AW-1:0] row_delta;                // added to a C row's address (cpt_conv_rows)
`ifdef CPT_CONV
    assign conv_arg = args[ARG_CONV +: 2] != 2'd0;
    wire [15:0] cv_cp, cv_width, cv_height, cv_row0, cv_row1, cv_band0, cv_rows, cv_wo, cv_c, cv_e_cp;
    wire [1:0]  cv_kh, cv_kw, cv_stride;
    wire signed [2:0] cv_pad_h, cv_pad_w;
    wire [15:0] cv_dx_w, cv_dx_rows;
    wire        cv_dh, cv_rx;
    wire [AXI_AW-1:0] sums_base;

    cpt_conv_setup #(.D(D), .OP_BITS(OP_BITS), .K_WORDS(K_WORDS), .MAX_DIM(MAX_DIM), .AW(AXI_AW)) conv_setup (
        .clk(clk), .rst(rst), .start(conv_start),
        .arg_conv(args[ARG_CONV +: 32]), .arg_batch(args[ARG_BATCH +: 32]), .arg_channels(args[ARG_CHANNELS +: 32]),
        .arg_size(args[ARG_SIZE +: 32]), .arg_band(args[ARG_BAND +: 32]), .arg_a(args[ARG_A +: AXI_AW]),
        .arg_b(args[ARG_B +: AXI_AW]), .arg_c(args[ARG_C +: AXI_AW]), .arg_sums(args[ARG_SUMS +: AXI_AW]),
        .arg_a_bits(args[ARG_A_BITS +: 32]), .arg_b_bits(args[ARG_B_BITS +: 32]), .arg_flags(args[ARG_FLAGS +: 32]),
        .arg_next_a(args[ARG_NEXT_A +: AXI_AW]), .arg_next_b(args[ARG_NEXT_B +: AXI_AW]),
        .arg_win_base(args[ARG_WIN_BASE +: AXI_AW]), .arg_win_limit(args[ARG_WIN_LIMIT +: AXI_AW]),
        .done(conv_done), .status(conv_status), .win_eval(conv_win_eval), .gm(conv_gm), .gn(conv_gn), .gk(conv_gk),
        .a_first(conv_a_first), .a_size(conv_a_size), .x_bytes(conv_x_bytes), .x_stride(conv_x_stride),
        .cp(cv_cp), .width(cv_width), .height(cv_height), .kh(cv_kh), .kw(cv_kw), .stride(cv_stride),
        .pad_h(cv_pad_h), .pad_w(cv_pad_w),
        .row0(cv_row0), .row1(cv_row1), .band0(cv_band0), .rows(cv_rows), .wo(cv_wo), .batch(conv_batch),
        .wg(conv_wg), .wg_m(conv_wg_m), .wg_k(conv_wg_k), .c_ch(cv_c), .e_cp(cv_e_cp), .e_size(conv_e_size),
        .e_bytes(conv_e_bytes), .pf(conv_pf), .pf_x_base(conv_pf_x_base), .pf_e_base(conv_pf_e_base),
        .pf_win_err(conv_pf_win_err), .sums_en(sums_en), .sums_base(sums_base), .sums_win_err(sums_win_err),
        .phased(conv_phased), .b_first(conv_b_first), .b_size_sel(conv_b_size_sel), .b_size(conv_b_size),
        .ph_next(ph_next), .ph_done(ph_done), .ph_none(ph_none), .dx_w(cv_dx_w), .dx_rows(cv_dx_rows),
        .ph_dh(cv_dh), .ph_rx(cv_rx), .ph_zero(conv_ph_zero), .narrow(conv_c16)
    );
    assign wg_run = conv_run && conv_wg;
    // the prefetch hint's key: the call's tensors (or the next call's) and every register of its geometry
    // and the flags that decide the error sums cpt_sums_etaps keeps for the next call's block 0 (a hit needs
    // them counted, and counted with the same signedness)
    wire [CV_GEOM_W-1:0] cv_geometry = {args[ARG_CONV +: 32], args[ARG_BATCH +: 32], args[ARG_CHANNELS +: 32],
                                   args[ARG_SIZE +: 32], args[ARG_BAND +: 32], args[ARG_A_BITS +: 32],
                                   args[ARG_B_BITS +: 32], args[ARG_FLAGS + FLAG_SUMS],
                                   args[ARG_FLAGS + FLAG_B_SIGNED]};
    assign cv_call_key = {args[ARG_A +: AXI_AW], args[ARG_B +: AXI_AW], cv_geometry};
    assign cv_next_key = {args[ARG_NEXT_A +: AXI_AW], args[ARG_NEXT_B +: AXI_AW], cv_geometry};

    // forward and input-gradient calls: cpt_conv_walker; weight gradients: cpt_wgrad_walker (the other's
    // outputs are idle: each is started only for its own calls)
    wire       fw_a_issue, fw_a_issue_half, fw_a_loaded, fw_a_loaded_half, fw_x_ready;
    wire [LANES*ROWS-1:0] fw_a_we_l;            // cpt_conv_walker's lanes
    wire [LANES*`CPT_A_AW-1:0] fw_a_waddr_l;
    wire [LANES*D-1:0] fw_a_wdata_l;
    wire       wg_a_issue, wg_a_issue_half, wg_a_loaded, wg_a_loaded_half, wg_x_ready;
    localparam integer WG_LANES = 2;            // cpt_wgrad_walker's X lanes (<= LANES): lanes 0 .. WG_LANES - 1
    wire [WG_LANES*ROWS-1:0] wg_a_we;
    wire [WG_LANES*`CPT_A_AW-1:0] wg_a_waddr;
    wire [WG_LANES*D-1:0] wg_a_wdata;
    assign wk_a_issue = fw_a_issue || wg_a_issue;
    assign wk_a_issue_half = conv_wg ? wg_a_issue_half : fw_a_issue_half;
    assign wk_a_loaded = fw_a_loaded || wg_a_loaded;
    assign wk_a_loaded_half = conv_wg ? wg_a_loaded_half : fw_a_loaded_half;
    // a weight gradient's A words come through the first WG_LANES lanes' ports
    assign wk_a_we_l = conv_wg ? {{((LANES-WG_LANES)*ROWS){1'b0}}, wg_a_we} : fw_a_we_l;
    assign wk_a_waddr_l = conv_wg ? {{((LANES-WG_LANES)*`CPT_A_AW){1'b0}}, wg_a_waddr} : fw_a_waddr_l;
    assign wk_a_wdata_l = conv_wg ? {{((LANES-WG_LANES)*D){1'b0}}, wg_a_wdata} : fw_a_wdata_l;
    assign x_ready = conv_wg ? wg_x_ready : fw_x_ready;

    // a phase's C rows: 2 apart along dX rows, every other dX row (stride-2 input gradients only)
    wire rows_on = conv_run && conv_phased;
    wire rows_ready;
    wire [AXI_AW-1:0] rows_delta;
    cpt_conv_rows #(.ROWS(ROWS), .AW(AXI_AW)) c_rows (
        .clk(clk), .rst(rst), .start(run_start && rows_on), .c_base(c_base), .c_stride(c_stride),
        .c_tile_step(c_tile_step), .dx_w(cv_dx_w), .dx_rows(cv_dx_rows), .gh(cv_rows), .gw(cv_wo), .dh(cv_dh),
        .rx(cv_rx), .tile_empty(tile_empty), .tile_base(tile_out[AXI_AW-1:0]), .tile_pop(tile_pop),
        .row_next(row_next), .ready(rows_ready), .row_delta(rows_delta)
    );
    assign row_delta = rows_on ? rows_delta : {AXI_AW{1'b0}};
    assign w_tile_empty = tile_empty || (rows_on && !rows_ready);

    /* verilator lint_off PINCONNECTEMPTY */    // geom_err: cpt_conv_setup refuses every geometry it would
    cpt_conv_walker #(.ROWS(ROWS), .D(D), .OP_BITS(OP_BITS), .B_BLOCK_COLS(B_BLOCK_COLS), .LANES(LANES)) walker (
        .clk(clk), .rst(rst), .start(run_start && conv_run && !conv_wg), .cp(cv_cp), .width(cv_width),
        .height(cv_height),
        .kh(cv_kh), .kw(cv_kw), .stride(cv_stride), .pad_h(cv_pad_h), .pad_w(cv_pad_w), .row0(cv_row0), .row1(cv_row1),
        .band0(cv_band0), .rows(cv_rows), .wo(cv_wo), .a_bits(a_bits), .m(m), .n(n), .k_words(kw),
        .s_valid(x_valid && !conv_wg), .s_ready(fw_x_ready), .s_data(x_data), .a_busy(a_busy | {2{rows_hold}}),
        .a_issue(fw_a_issue),
        .a_issue_half(fw_a_issue_half), .a_loaded(fw_a_loaded), .a_loaded_half(fw_a_loaded_half),
        .a_we(fw_a_we_l), .a_waddr(fw_a_waddr_l), .a_wdata(fw_a_wdata_l), .geom_err()
    );

    cpt_wgrad_walker #(.ROWS(ROWS), .COLS(COLS), .D(D), .OP_BITS(OP_BITS), .B_BLOCK_COLS(B_BLOCK_COLS),
                       .XL(WG_LANES)) wg_walker (
        .clk(clk), .rst(rst), .start(run_start && wg_run), .own(!wg_hit), .pf(conv_pf), .pf_busy(wg_wr_busy),
        .batch(conv_batch), .c(cv_c), .cp(cv_cp),
        .width(cv_width), .height(cv_row1), .kh(cv_kh), .kw(cv_kw), .stride(cv_stride), .pad(cv_pad_h[0]),
        .e_cp(cv_e_cp), .ho(cv_rows), .wo(cv_wo), .a_bits(a_bits), .b_bits(b_bits), .m(m), .n(n), .k_words(kw),
        .b_col_words(b_col_words), .b_cur(b_cur),
        .s_valid(x_valid && conv_wg), .s_ready(wg_x_ready), .s_data(x_data), .s_is_e(x_is_e),
        .a_busy(a_busy | {2{rows_hold}}), .a_issue(wg_a_issue), .a_issue_half(wg_a_issue_half),
        .a_loaded(wg_a_loaded), .a_loaded_half(wg_a_loaded_half), .a_we(wg_a_we), .a_waddr(wg_a_waddr),
        .a_wdata(wg_a_wdata), .b_busy(b_busy), .b_hold(etaps_hold), .b_issue(wg_b_issue), .b_loaded(wg_b_loaded),
        .b_we(wg_b_we), .b_waddr(wg_b_waddr), .b_wdata(wg_b_wdata), .geom_err()
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // code sums (SUMS, forward calls and weight gradients): the result rows' from the A words the walkers write,
    // the weight (error) columns' per tap from the B words the reader (the weight gradient's walker) writes; each
    // holds its producer back while its sums wait
    wire        sums_run = is_conv && sums_en;
    wire        sr_valid, sr_ready, sr_last, st_valid, st_ready, st_last;
    wire [31:0] sr_idx, st_idx;
    wire [`CPT_SUM_W-1:0] sr_value, st_value;
    cpt_sums_rows #(.ROWS(ROWS), .D(D), .OP_BITS(OP_BITS)) sums_rows (
        .clk(clk), .rst(rst), .start(run_start), .enable(sums_run), .a_bits(a_bits), .a_signed(a_signed),
        .kw(kw), .m(m), .bank_we(bank_we), .bank_waddr(bank_waddr), .bank_wdata(bank_wdata),
        .a_loaded(wk_a_loaded), .hold(rows_hold), .s_valid(sr_valid), .s_ready(sr_ready), .s_idx(sr_idx),
        .s_value(sr_value), .s_last(sr_last)
    );
    // the second stream: a forward call's weight taps (cpt_sums_taps), a weight gradient's error taps
    // (cpt_sums_etaps); each is idle in the other's calls
    wire        ft_valid, ft_last, et_valid, et_last;
    wire [31:0] ft_idx, et_idx;
    wire [`CPT_SUM_W-1:0] ft_value, et_value;
    cpt_sums_taps #(.D(D), .B_BLOCK_COLS(B_BLOCK_COLS)) sums_taps (
        .clk(clk), .rst(rst), .start(run_start), .enable(sums_run && !conv_wg), .b_bits(b_bits),
        .b_signed(b_signed), .kw(kw), .cp(cv_cp), .taps({2'd0, cv_kh} * {2'd0, cv_kw}), .m(m), .n(n),
        .b_write(|rd_b_we), .b_wdata(wdata), .hold(taps_hold), .s_valid(ft_valid), .s_ready(st_ready && !conv_wg),
        .s_idx(ft_idx), .s_value(ft_value), .s_last(ft_last)
    );
    cpt_sums_etaps #(.D(D), .B_BLOCK_COLS(B_BLOCK_COLS)) sums_etaps (
        .clk(clk), .rst(rst), .start(run_start), .enable(sums_run && conv_wg), .own(!wg_hit), .b_bits(b_bits),
        .b_signed(b_signed), .k_words(kw), .batch(conv_batch), .height(cv_height), .width(cv_width),
        .ho(cv_rows), .wo(cv_wo), .ker_h(cv_kh), .ker_w(cv_kw), .stride(cv_stride), .pad(cv_pad_h[0]), .m(m),
        .n(n), .b_write(|wg_b_we), .b_wdata(wg_b_wdata), .hold(etaps_hold), .busy(etaps_busy),
        .s_valid(et_valid), .s_ready(st_ready && conv_wg), .s_idx(et_idx), .s_value(et_value), .s_last(et_last)
    );
    assign st_valid = conv_wg ? et_valid : ft_valid;
    assign st_idx = conv_wg ? et_idx : ft_idx;
    assign st_value = conv_wg ? et_value : ft_value;
    assign st_last = conv_wg ? et_last : ft_last;
`else
    // interface 3 only: no conv call exists
    assign conv_arg = 1'b0;
    assign conv_done = 1'b0;
    assign conv_win_eval = 1'b0;
    assign conv_status = 32'd0;
    assign conv_gm = 32'd0;
    assign conv_gn = 32'd0;
    assign conv_gk = 32'd0;
    assign conv_a_first = {AXI_AW{1'b0}};
    assign conv_a_size = 68'd0;
    assign conv_batch = {`CPT_DIM_W{1'b0}};
    assign conv_x_bytes = {AXI_AW{1'b0}};
    assign conv_x_stride = {AXI_AW{1'b0}};
    assign conv_wg = 1'b0;
    assign conv_wg_m = 32'd0;
    assign conv_wg_k = 32'd0;
    assign conv_e_size = 68'd0;
    assign conv_e_bytes = {AXI_AW{1'b0}};
    assign conv_pf = 1'b0;
    assign conv_pf_x_base = {AXI_AW{1'b0}};
    assign conv_pf_e_base = {AXI_AW{1'b0}};
    assign conv_pf_win_err = 1'b0;
    assign conv_c16 = 1'b0;
    assign wg_wr_busy = 1'b0;
    assign sums_en = 1'b0;
    assign sums_win_err = 1'b0;
    assign rows_hold = 1'b0;
    assign taps_hold = 1'b0;
    assign etaps_hold = 1'b0;
    assign etaps_busy = 1'b0;
    assign cv_call_key = {CV_KEY_W{1'b0}};
    assign cv_next_key = {CV_KEY_W{1'b0}};
    assign wg_run = 1'b0;
    assign wg_b_issue = 1'b0;
    assign wg_b_loaded = 1'b0;
    assign wg_b_we = {COLS{1'b0}};
    assign wg_b_waddr = {`CPT_B_AW{1'b0}};
    assign wg_b_wdata = {D{1'b0}};
    assign conv_phased = 1'b0;
    assign conv_ph_zero = 1'b0;
    assign conv_b_first = {AXI_AW{1'b0}};
    assign conv_b_size = 68'd0;
    assign conv_b_size_sel = 1'b0;
    assign ph_done = 1'b0;
    assign ph_none = 1'b0;
    assign row_delta = {AXI_AW{1'b0}};
    assign w_tile_empty = tile_empty;
    assign x_ready = 1'b0;
    assign wk_a_issue = 1'b0;
    assign wk_a_issue_half = 1'b0;
    assign wk_a_loaded = 1'b0;
    assign wk_a_loaded_half = 1'b0;
    assign wk_a_we_l = {LANES*ROWS{1'b0}};
    assign wk_a_waddr_l = {LANES*`CPT_A_AW{1'b0}};
    assign wk_a_wdata_l = {LANES*D{1'b0}};
    wire unused_conv = &{1'b0, x_valid, x_data, x_is_e, conv_start, ph_next, row_next, sums_en, rows_hold,
                        etaps_hold};
`endif

    // ------------------------------------------------------------------ feeder and array
    wire [3:0]      ctl;
    wire            drain_busy, last_emit, tile_full, tile_push;
    wire            feeder_busy_unused;                 // for waveforms: the feeder still walks tiles
    wire [`CPT_TI_W-1:0] tile_in;

    cpt_feeder #(
        .ROWS(ROWS), .COLS(COLS), .OP_BITS(OP_BITS), .K_WORDS(K_WORDS), .B_BLOCK_COLS(B_BLOCK_COLS),
        .AW(AXI_AW)
    ) feeder (
        .clk(clk), .rst(rst), .start(run_start), .m(m), .n(n), .kw(kw), .a_bits(a_bits), .b_bits(b_bits),
        .a_signed(a_signed), .b_signed(b_signed), .a_row_words(a_row_words), .b_col_words(b_col_words),
        .c_base(c_base), .c_tile_step(c_tile_step), .c16(c16), .b_cur(b_cur),
        .a_full(a_full), .b_full(b_full), .a_release(a_release), .a_release_half(a_release_half),
        .b_release(b_release), .rd_en(rd_en), .a_raddr(a_raddr), .b_raddr(b_raddr), .ctl(ctl),
        .b_mask(b_mask), .drain_busy(drain_busy), .last_emit(last_emit), .tile_full(tile_full),
        .tile_push(tile_push), .tile_info(tile_in), .busy(feeder_busy_unused)
    );

    /* verilator lint_off PINCONNECTEMPTY */    // the tile queue's fill level is not needed
    sync_fifo #(.WIDTH(`CPT_TI_W), .DEPTH(4), .AW(2)) tile_fifo (
        .clk(clk), .rst(rst || run_start), .push(tile_push), .din(tile_in), .pop(tile_pop), .dout(tile_out),
        .empty(tile_empty), .full(tile_full), .count()
    );
    /* verilator lint_on PINCONNECTEMPTY */

    wire                  tile_ready, drain;
    wire [COLS*ACC_W-1:0] c_out;

    pe_array #(.ROWS(ROWS), .COLS(COLS), .D(D), .ACC_W(ACC_W)) array (
        .clk(clk), .rst(rst), .a_in(a_words), .ctl_in(ctl), .b_in(b_masked), .drain(drain),
        .c_out(c_out), .tile_ready(tile_ready)
    );

    // ------------------------------------------------------------------ drain, C FIFO, writer
    wire [`CPT_FIFO_AW:0] fifo_count;
    wire                fifo_push, fifo_pop, fifo_empty;
    wire [COLS*`CPT_RESULT_W-1:0] fifo_din, fifo_dout;

    cpt_drain #(.ROWS(ROWS), .COLS(COLS), .ACC_W(ACC_W)) drainer (
        .clk(clk), .rst(rst || run_start), .last_emit(last_emit), .drain_busy(drain_busy),
        .tile_ready(tile_ready), .c_out(c_out), .drain(drain), .fifo_count(fifo_count),
        .fifo_push(fifo_push), .fifo_din(fifo_din)
    );

    /* verilator lint_off PINCONNECTEMPTY */    // the drain never overfills it (it checks the count)
    sync_fifo #(.WIDTH(COLS * `CPT_RESULT_W), .DEPTH(1 << `CPT_FIFO_AW), .AW(`CPT_FIFO_AW)) c_fifo (
        .clk(clk), .rst(rst || run_start), .push(fifo_push), .din(fifo_din), .pop(fifo_pop),
        .dout(fifo_dout), .empty(fifo_empty), .full(), .count(fifo_count)
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // the C writer's write channel: straight to m_axi_gmem, or through the sums writer (engine)
    wire              c_awvalid, c_awready, c_wvalid, c_wready, c_wlast, c_bvalid, c_bready;
    wire [AXI_AW-1:0] c_awaddr;
    wire [7:0]        c_awlen;
    wire [AXI_DW-1:0] c_wdata;
    wire [AXI_DW/8-1:0] c_wstrb;                // all ones
    wire unused_c_wstrb = &{1'b0, c_wstrb};
    cpt_writer #(.ROWS(ROWS), .COLS(COLS), .AXI_DW(AXI_DW), .AW(AXI_AW), .BURST_BEATS(BURST_BEATS)) writer (
        .clk(clk), .rst(rst), .start(run_start), .c_stride(c_stride), .c_tile_span(c_tile_span), .c16(c16),
        .tile_empty(w_tile_empty), .tile_info(tile_out), .tile_pop(tile_pop), .row_delta(row_delta),
        .row_next(row_next),
        .row_pushed(fifo_push), .fifo_empty(fifo_empty), .fifo_dout(fifo_dout), .fifo_pop(fifo_pop),
        .m_axi_awvalid(c_awvalid), .m_axi_awready(c_awready), .m_axi_awaddr(c_awaddr),
        .m_axi_awlen(c_awlen), .m_axi_awsize(m_axi_awsize), .m_axi_awburst(m_axi_awburst),
        .m_axi_wvalid(c_wvalid), .m_axi_wready(c_wready), .m_axi_wdata(c_wdata),
        .m_axi_wstrb(c_wstrb), .m_axi_wlast(c_wlast), .m_axi_bvalid(c_bvalid),
        .m_axi_bready(c_bready), .m_axi_bresp(m_axi_bresp), .done(writer_done), .resp_err(writer_err)
    );
`ifdef CPT_CONV
    cpt_sums_writer #(.AXI_DW(AXI_DW), .AW(AXI_AW), .BURST_BEATS(BURST_BEATS)) sums_writer (
        .clk(clk), .rst(rst), .start(run_start), .enable(sums_run), .base(sums_base),
        .s_valid({st_valid, sr_valid}), .s_ready({st_ready, sr_ready}), .s_idx({st_idx, sr_idx}),
        .s_value({st_value, sr_value}), .s_last({st_last, sr_last}),
        .c_awvalid(c_awvalid), .c_awready(c_awready), .c_awaddr(c_awaddr), .c_awlen(c_awlen), .c_wvalid(c_wvalid),
        .c_wready(c_wready), .c_wdata(c_wdata), .c_wlast(c_wlast), .c_bvalid(c_bvalid), .c_bready(c_bready),
        .m_axi_awvalid(m_axi_awvalid), .m_axi_awready(m_axi_awready), .m_axi_awaddr(m_axi_awaddr),
        .m_axi_awlen(m_axi_awlen), .m_axi_wvalid(m_axi_wvalid), .m_axi_wready(m_axi_wready),
        .m_axi_wdata(m_axi_wdata), .m_axi_wstrb(m_axi_wstrb), .m_axi_wlast(m_axi_wlast),
        .m_axi_bvalid(m_axi_bvalid), .m_axi_bready(m_axi_bready), .m_axi_bresp(m_axi_bresp),
        .busy(sums_wr_busy), .resp_err(sums_err)
    );
`else
    assign m_axi_awvalid = c_awvalid;
    assign c_awready = m_axi_awready;
    assign m_axi_awaddr = c_awaddr;
    assign m_axi_awlen = c_awlen;
    assign m_axi_wvalid = c_wvalid;
    assign c_wready = m_axi_wready;
    assign m_axi_wdata = c_wdata;
    assign m_axi_wstrb = c_wstrb;
    assign m_axi_wlast = c_wlast;
    assign c_bvalid = m_axi_bvalid;
    assign m_axi_bready = c_bready;
    assign sums_wr_busy = 1'b0;
    assign sums_err = 1'b0;
`endif
    // a prefetching call ends once the next call's block 0 is counted too (cpt_sums_etaps keeps its sums)
    assign sums_busy = sums_wr_busy || etaps_busy;
endmodule

`default_nettype wire
