// AXI4 read engine: loads B blocks and A tiles from DDR into the on-chip plane buffers.
//
// Command order (one in-order stream, so one AXI ID suffices and R data needs no reordering):
//   block 0:  B(0), A(0), A(1), ..., A(T-1)
//   block k:  A(0), B(k), A(1), ..., A(T-1)     (the first A tile of a block loads while the feeder
//                                               still finishes the previous block)
// A(t) goes to half t mod 2 (counted over the whole call) of the ping-pong A buffer and waits until the
// feeder has released that half (a_busy low); B(k) waits until the feeder has released the B buffer.
// Issuing a load marks its buffer busy at once (a_issue / b_issue), long before its data is in.
// The B buffer has two halves: the call's blocks go to half b_cur; with b_hit its block 0 is already
// there (prefetched by the previous call) and B(0) is not loaded.
//
// Prefetch (pf_en): the first B block of the next call, [pf_base, pf_end), goes to half !b_cur in chunks
// of PF_CHUNK bytes, issued only when no demand command can go (its buffer is still busy, or the call's
// own loads are all issued) and the descriptor queue is empty: A tiles and the call's B blocks keep
// priority, and wait behind at most one queued chunk.  pf_busy stays high until its last word is written.
// A tile is ROWS consecutive rows of A and a B block B_BLOCK_COLS consecutive columns of B, each one
// contiguous range of the DDR layout, read in bursts of at most BURST_BEATS that never cross 4 KiB.
//
// The AR side walks the commands and pushes one descriptor per command into a FIFO before issuing its
// bursts; the R side pops descriptors and steers every D-bit word (D / AXI_DW beats, little endian) to
// its bank: A row r -> bank r, B column n -> bank n mod COLS at slot n div COLS.  Within a row or
// column the words are consecutive (plane-major, the layout's order), so a bank address is a counter.
//
// A forward convolution call (`conv`, interface 4) reads no A: after each B block (B first in every block,
// since the X stream is consumed only as the block's tiles are formed, which needs the B buffer free) it
// streams the X tensor, one command of x_bytes per image from a_base, x_stride apart (the band's rows of
// every image), and hands its words in order to the im2col former (x_valid/x_ready, cpt_conv_walker), which
// forms the A tiles; R beats wait while the former cannot take a word.
//
// A weight-gradient call (`wg` with `conv`) reads no B block either: its only commands are the E tensor
// (e_bytes from b_base, one command) and then the X stream as above, once (one block as far as the reader
// is concerned); x_is_e tells the stream's consumer (cpt_wgrad_walker) which of the two a word belongs to.
// Its prefetch (wg_pf) streams the next call's chunks behind them the same way, E from pf_e_base then X from
// pf_x_base (same geometry); a call that hits the previous call's prefetch (!wg_own) streams only that.

`include "cpt_gemm_widths.vh"

`default_nettype none

module cpt_reader #(
    parameter integer ROWS = `CPT_ROWS,           // config: PE array rows
    parameter integer COLS = `CPT_COLS,           // config: PE array columns
    parameter integer D = `CPT_D,                 // config: bits of a plane word
    parameter integer B_BLOCK_COLS = `CPT_B_BLOCK_COLS,  // config: columns of B per block
    parameter integer AXI_DW = `CPT_AXI_DW,       // config: m_axi data bits
    parameter integer AW = `CPT_AXI_AW,           // config: m_axi address bits
    parameter integer BURST_BEATS = `CPT_BURST_BEATS  // config: beats per full burst
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  start,             // pulse: run parameters below are valid
    input  wire [`CPT_DIM_W-1:0] m,
    input  wire [`CPT_DIM_W-1:0] n,
    input  wire [`CPT_RW_W-1:0]  a_row_words,
    input  wire [`CPT_RW_W-1:0]  b_col_words,
    input  wire [AW-1:0]         a_base,
    input  wire [AW-1:0]         b_base,
    input  wire [AW-1:0]         a_end,
    input  wire [AW-1:0]         b_end,
    input  wire [AW-1:0]         a_tile_bytes,
    input  wire [AW-1:0]         b_block_bytes,
    input  wire                  b_cur,             // the B half this call's blocks use
    input  wire                  b_hit,             // block 0 is already in half b_cur
    input  wire                  pf_en,             // prefetch [pf_base, pf_end) into half !b_cur
    input  wire [AW-1:0]         pf_base,
    input  wire [AW-1:0]         pf_end,
    input  wire [`CPT_RW_W-1:0]  pf_col_words,      // words per B column of the prefetched block
    input  wire                  conv,              // a convolution call: A is the tensor (X or E) stream
    input  wire [`CPT_DIM_W-1:0] x_images,          // conv: images (commands per block)
    input  wire [AW-1:0]         x_bytes,           // conv: bytes of one image's rows (0: none read)
    input  wire [AW-1:0]         x_stride,          // conv: bytes from one image to the next
    output wire                  x_valid,           // conv: an X word for the former
    input  wire                  x_ready,
    output wire [D-1:0]          x_data,
    input  wire                  wg,                // conv: a weight gradient (E, then X; no B commands)
    input  wire [AW-1:0]         e_bytes,           // wg: bytes of the E tensor at b_base
    output wire                  x_is_e,            // wg: the stream's word is E's
    input  wire                  wg_own,            // wg: stream the call's own E and X (0: prefetched)
    input  wire                  wg_pf,             // wg: then the next call's (the prefetch hint)
    input  wire [AW-1:0]         pf_x_base,         // wg: the next call's X chunk (first byte read)
    input  wire [AW-1:0]         pf_e_base,         // wg: the next call's E chunk

    output wire                  m_axi_arvalid,
    input  wire                  m_axi_arready,
    output wire [AW-1:0]         m_axi_araddr,
    output wire [7:0]            m_axi_arlen,
    output wire [2:0]            m_axi_arsize,
    output wire [1:0]            m_axi_arburst,
    input  wire                  m_axi_rvalid,
    output wire                  m_axi_rready,
    input  wire [AXI_DW-1:0]     m_axi_rdata,
    input  wire                  m_axi_rlast,
    input  wire [1:0]            m_axi_rresp,

    input  wire [1:0]            a_busy,            // A half h is loading or holds a tile not yet released
    input  wire                  b_busy,            // the B buffer is loading or holds an unreleased block
    output wire                  a_issue,           // pulse: a load into A half a_issue_half starts
    output wire                  a_issue_half,
    output wire                  b_issue,           // pulse: a load into the B buffer starts
    output reg                   a_loaded,          // pulse: half a_loaded_half now holds its tile
    output reg                   a_loaded_half,
    output reg                   b_loaded,          // pulse: the B buffer now holds its block
    output reg  [ROWS-1:0]       a_we,              // bank write enables (one-hot)
    output reg  [`CPT_A_AW-1:0]  a_waddr,
    output reg  [COLS-1:0]       b_we,
    output reg  [`CPT_B_AW-1:0]  b_waddr,
    output reg  [D-1:0]          wdata,             // shared by all banks
    output reg                   resp_err,          // sticky per call: SLVERR/DECERR seen
    output wire                  pf_busy            // the prefetch has words still to write
);
    localparam integer BYTES = AXI_DW / 8;
    localparam integer LOG_BYTES = $clog2(BYTES);
    localparam integer BPW = D / AXI_DW;        // beats per D-bit word
    localparam integer HALF = `CPT_A_HALF;      // a parameter: a literal cannot be part-selected
    localparam integer BT_W = AW;               // width of beat counters (commands are < 2^AW bytes)
    localparam [`CPT_POS_W-1:0] ROWS_X = ROWS[`CPT_POS_W-1:0];
    localparam [`CPT_POS_W-1:0] BBC_X = B_BLOCK_COLS[`CPT_POS_W-1:0];
    localparam [`CPT_A_AW-1:0] HALF_A = HALF[`CPT_A_AW-1:0];
    localparam integer BK_W = $clog2((ROWS > COLS ? ROWS : COLS) + 1);
    localparam [BK_W-1:0] LAST_BANK_B = COLS[BK_W-1:0] - 1'b1;
    localparam integer BIW = $clog2(BPW + 1);
    localparam [BIW-1:0] LAST_BEAT = BPW[BIW-1:0] - 1'b1;
    localparam integer B_HALF_I = `CPT_B_HALF;  // a parameter: a literal cannot be part-selected
    localparam [`CPT_B_AW-1:0] B_HALF_B = B_HALF_I[`CPT_B_AW-1:0];
    // Prefetch chunk: four bursts, rounded up to whole D-bit words (a chunk never splits a word, so the
    // R side's word assembly is never interleaved with another command's beats).
    localparam integer PF_CHUNK = ((4 * BURST_BEATS * BYTES + D / 8 - 1) / (D / 8)) * (D / 8);
    localparam [AW-1:0] PF_CHUNK_A = {{(AW-31){1'b0}}, PF_CHUNK[30:0]};

    initial begin
        if (BPW < 1 || BPW * AXI_DW != D) begin
            $display("%m: error: D = %0d must be a multiple of AXI_DW = %0d", D, AXI_DW);
            $finish;
        end
        if (B_BLOCK_COLS % COLS != 0) begin
            $display("%m: error: B_BLOCK_COLS = %0d must be a multiple of COLS = %0d", B_BLOCK_COLS, COLS);
            $finish;
        end
    end

    // ------------------------------------------------------------------ AR side: command stream
    localparam [1:0] C_IDLE = 2'd0, C_NEXT = 2'd1, C_BURST = 2'd2;
    reg [1:0]    cstate;
    reg [`CPT_POS_W-1:0] n0, m0;                // current block's first column, next A tile's first row
    reg [AW-1:0] a_addr, b_addr;                // next A tile / next B block in DDR
    reg          b_pending, first_block, half;
    reg [AW-1:0] cur, cur_end;

    wire [`CPT_POS_W-1:0] m_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, m};
    wire [`CPT_POS_W-1:0] n_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, n};
    // Without the engine (no `CPT_CONV) the conv ports are tied off inside this module too, so that its logic
    // is interface 3's even where synthesis keeps the hierarchy (cpt-hw resources).
`ifdef CPT_CONV
    wire conv_on = conv;
    wire wg_on = conv && wg;
`else
    wire conv_on = 1'b0;
    wire wg_on = 1'b0;
    wire unused_conv = &{1'b0, conv, wg, e_bytes, wg_own, wg_pf, pf_x_base, pf_e_base};
`endif
    wire [`CPT_POS_W-1:0] x_w = {{(`CPT_POS_W-`CPT_DIM_W){1'b0}}, x_images};
    wire want_b = b_pending && (first_block || m0 != 0 || conv_on);
    wire want_a = !want_b && (m0 < (conv_on ? x_w : m_w));   // conv: m0 counts images
    wire more_blocks = n0 + BBC_X < n_w && !wg_on;      // a weight gradient reads X once
    reg  e_sent;                                // wg: the E command is issued
    reg  [AW-1:0] e_base;                       // wg: the E chunk of the pass
    reg  wg_next;                               // wg: the prefetch pass follows the call's own
    reg  [AW-1:0] pf_addr;                      // next prefetch byte to request
    wire pf_more = pf_addr != pf_end;

    // descriptor: {is_b, half (A) or B half, is_prefetch, beats}
    localparam integer DESC_W = 3 + BT_W;
    wire              desc_full, desc_empty;
    wire [DESC_W-1:0] desc_out;
    reg               desc_push;
    reg  [DESC_W-1:0] desc_in;
    wire              desc_pop;

    /* verilator lint_off PINCONNECTEMPTY */    // the queue's fill level is not needed
    sync_fifo #(.WIDTH(DESC_W), .DEPTH(4), .AW(2)) desc_fifo (
        .clk(clk), .rst(rst || start), .push(desc_push), .din(desc_in), .pop(desc_pop), .dout(desc_out),
        .empty(desc_empty), .full(desc_full), .count()
    );
    /* verilator lint_on PINCONNECTEMPTY */

    wire [8:0] beats;
    axi_burst #(.BYTES(BYTES), .MAX_BEATS(BURST_BEATS), .RW(BT_W)) ar_split (
        .addr(cur[11:0]), .remaining((cur_end - cur) >> LOG_BYTES), .beats(beats)
    );

    assign m_axi_arvalid = (cstate == C_BURST);
    assign m_axi_araddr = cur;
    assign m_axi_arlen = beats[7:0] - 8'd1;
    assign m_axi_arsize = LOG_BYTES[2:0];
    assign m_axi_arburst = 2'b01;

    assign a_issue = (cstate == C_NEXT) && !desc_full && !desc_push && !want_b && want_a && !a_busy[half] && !conv_on;
    assign a_issue_half = half;
    assign b_issue = (cstate == C_NEXT) && !desc_full && !desc_push && want_b && !b_busy;

    wire [AW-1:0] a_stop = (a_end - a_addr > a_tile_bytes) ? a_addr + a_tile_bytes : a_end;
    wire [AW-1:0] b_stop = (b_end - b_addr > b_block_bytes) ? b_addr + b_block_bytes : b_end;
    wire [AW-1:0] pf_stop = (pf_end - pf_addr > PF_CHUNK_A) ? pf_addr + PF_CHUNK_A : pf_end;

    always @(posedge clk) begin
        desc_push <= 1'b0;
        if (rst) begin
            cstate <= C_IDLE;
        end else if (start) begin
            cstate <= C_NEXT;
            n0 <= 0;
            // a weight gradient's first pass: its own chunks, or (a hit) the prefetch's, or nothing
            m0 <= (wg_on && !wg_own && !wg_pf) ? x_w : 0;
            a_addr <= (wg_on && !wg_own) ? pf_x_base : a_base;
            e_base <= (wg_on && !wg_own) ? pf_e_base : b_base;
            wg_next <= wg_on && wg_own && wg_pf;
            // a hit skips block 0: the next B block to load is block 1
            b_addr <= !b_hit ? b_base : (b_end - b_base > b_block_bytes) ? b_base + b_block_bytes : b_end;
            b_pending <= !b_hit && !wg_on;
            e_sent <= wg_on && !wg_own && !wg_pf;
            first_block <= 1'b1;
            half <= 1'b0;
            pf_addr <= pf_en ? pf_base : pf_end;
        end else begin
            case (cstate)
                C_NEXT: if (!desc_full && !desc_push) begin
                    if (want_b) begin
                        if (!b_busy) begin
                            cur <= b_addr;
                            cur_end <= b_stop;
                            b_addr <= b_stop;
                            b_pending <= 1'b0;
                            desc_in <= {1'b1, b_cur, 1'b0, (b_stop - b_addr) >> LOG_BYTES};
                            desc_push <= 1'b1;
                            cstate <= C_BURST;
                        end
                    end else if (want_a && wg_on && !e_sent) begin
                        cur <= e_base;                   // the E tensor first, whole: one command
                        cur_end <= e_base + e_bytes;
                        e_sent <= 1'b1;
                        desc_in <= {1'b0, 1'b1, 1'b0, e_bytes >> LOG_BYTES};
                        desc_push <= 1'b1;
                        cstate <= C_BURST;
                    end else if (want_a && conv_on) begin
                        if (x_bytes == 0) begin          // the band reaches no stored row
                            m0 <= x_w;
                        end else begin
                            cur <= a_addr;
                            cur_end <= a_addr + x_bytes;
                            a_addr <= a_addr + x_stride;
                            m0 <= m0 + 1'b1;
                            desc_in <= {1'b0, 1'b0, 1'b0, x_bytes >> LOG_BYTES};
                            desc_push <= 1'b1;
                            cstate <= C_BURST;
                        end
                    end else if (want_a) begin
                        if (!a_busy[half]) begin
                            cur <= a_addr;
                            cur_end <= a_stop;
                            a_addr <= a_stop;
                            m0 <= m0 + ROWS_X;
                            desc_in <= {1'b0, half, 1'b0, (a_stop - a_addr) >> LOG_BYTES};
                            desc_push <= 1'b1;
                            half <= !half;
                            cstate <= C_BURST;
                        end
                    end else if (more_blocks) begin
                        n0 <= n0 + BBC_X;
                        m0 <= 0;
                        a_addr <= a_base;
                        b_pending <= 1'b1;
                        first_block <= 1'b0;
                    end else if (wg_next) begin          // the prefetch pass: the next call's E, then X
                        m0 <= 0;
                        a_addr <= pf_x_base;
                        e_base <= pf_e_base;
                        e_sent <= 1'b0;
                        wg_next <= 1'b0;
                    end else if (!pf_more) begin
                        cstate <= C_IDLE;
                    end
                    // The demand command waits for its buffer (or there is none left): a prefetch
                    // chunk may use the idle port, one at a time.
                    if (pf_more && desc_empty && !(want_b ? !b_busy : want_a ? (conv_on || !a_busy[half]) : more_blocks)) begin
                        cur <= pf_addr;
                        cur_end <= pf_stop;
                        pf_addr <= pf_stop;
                        desc_in <= {1'b1, !b_cur, 1'b1, (pf_stop - pf_addr) >> LOG_BYTES};
                        desc_push <= 1'b1;
                        cstate <= C_BURST;
                    end
                end
                C_BURST: if (m_axi_arready) begin
                    cur <= cur + ({{(AW-9){1'b0}}, beats} << LOG_BYTES);
                    if (cur + ({{(AW-9){1'b0}}, beats} << LOG_BYTES) == cur_end) cstate <= C_NEXT;
                end
                default: ;
            endcase
        end
    end

    // ------------------------------------------------------------------ R side: steer words to banks
    reg          active, r_is_b, r_half, r_pf;
    reg [BT_W-1:0] pf_left;                     // prefetch beats still to arrive
    reg [`CPT_RW_W-1:0] pf_word;                     // the prefetch's own steering counters (A tiles and
    reg [BK_W-1:0] pf_bank;                     // the call's B blocks interleave with its chunks)
    reg [`CPT_B_AW-1:0] pf_slot;
    assign pf_busy = pf_left != 0;
    reg [BT_W-1:0] r_left;                      // beats still expected for the active command
    reg [`CPT_RW_W-1:0] word_in_row;
    reg [BK_W-1:0] bank;
    reg [`CPT_B_AW-1:0] slot_base;
    reg [BIW-1:0] beat_in_word;

    // conv: an X word leaves with its last beat, which waits for the former
    wire x_cmd = active && !r_is_b && conv_on;
    assign m_axi_rready = active && (!x_cmd || beat_in_word != LAST_BEAT || x_ready);

    assign desc_pop = !active && !desc_empty;
    wire r_hs = m_axi_rvalid && m_axi_rready;
    wire [D-1:0] word;                          // the word completed by this beat (little endian)
    generate
        if (BPW == 1) begin : one_beat
            assign word = m_axi_rdata;
        end else begin : several_beats
            reg [D-AXI_DW-1:0] assembly;        // the word's earlier beats (a shift register)
            always @(posedge clk) if (r_hs) assembly <= word[D-1:AXI_DW];
            assign word = {m_axi_rdata, assembly};
        end
    endgenerate
    wire word_done = r_hs && (beat_in_word == LAST_BEAT);
    assign x_valid = x_cmd && m_axi_rvalid && beat_in_word == LAST_BEAT;
    assign x_data = word;
    assign x_is_e = r_half;                     // a conv A-side command's half bit marks E (wg)
    wire [`CPT_RW_W-1:0] row_words = r_is_b ? b_col_words : a_row_words;
    // Bank addresses are narrower or wider than word counts depending on the config: zero-extend to
    // the sum of both widths, then take the address bits (the values always fit).
    wire [`CPT_RW_W+`CPT_B_AW-1:0] word_in_row_x = {{`CPT_B_AW{1'b0}}, word_in_row};
    wire [`CPT_RW_W+`CPT_B_AW-1:0] b_col_words_x = {{`CPT_B_AW{1'b0}}, b_col_words};
    wire [`CPT_RW_W+`CPT_B_AW-1:0] pf_word_x = {{`CPT_B_AW{1'b0}}, pf_word};
    wire [`CPT_RW_W+`CPT_B_AW-1:0] pf_col_words_x = {{`CPT_B_AW{1'b0}}, pf_col_words};
    wire unused_x = &{1'b0, word_in_row_x, b_col_words_x, pf_word_x, pf_col_words_x};
    wire [`CPT_B_AW-1:0] r_b_off = r_half ? B_HALF_B : {`CPT_B_AW{1'b0}};    // the B half a B command writes

    always @(posedge clk) begin
        a_we <= 0;
        b_we <= 0;
        a_loaded <= 1'b0;
        b_loaded <= 1'b0;
        if (start) begin                        // (no beat arrives in a call's first cycle)
            pf_word <= 0;
            pf_bank <= 0;
            pf_slot <= 0;
        end
        if (rst) begin
            active <= 1'b0;
        end else if (desc_pop) begin
            active <= 1'b1;
            {r_is_b, r_half, r_pf, r_left} <= desc_out;
            word_in_row <= 0;
            bank <= 0;
            slot_base <= 0;
            beat_in_word <= 0;
        end else if (r_hs) begin
            beat_in_word <= (beat_in_word == LAST_BEAT) ? {BIW{1'b0}} : beat_in_word + 1'b1;
            r_left <= r_left - 1'b1;
            if (word_done) begin
                wdata <= word;
                if (r_pf) begin
                    b_we <= {{(COLS-1){1'b0}}, 1'b1} << pf_bank;
                    b_waddr <= r_b_off + pf_slot + pf_word_x[`CPT_B_AW-1:0];
                end else if (r_is_b) begin
                    b_we <= {{(COLS-1){1'b0}}, 1'b1} << bank;
                    b_waddr <= r_b_off + slot_base + word_in_row_x[`CPT_B_AW-1:0];
                end else if (!conv_on) begin
                    a_we <= {{(ROWS-1){1'b0}}, 1'b1} << bank;
                    a_waddr <= (r_half ? HALF_A : {`CPT_A_AW{1'b0}}) + word_in_row[`CPT_A_AW-1:0];
                end
                if (r_pf) begin                 // B column n -> bank n mod COLS, slot n div COLS
                    if (pf_word == pf_col_words - 1) begin
                        pf_word <= 0;
                        if (pf_bank == LAST_BANK_B) begin
                            pf_bank <= 0;
                            pf_slot <= pf_slot + pf_col_words_x[`CPT_B_AW-1:0];
                        end else begin
                            pf_bank <= pf_bank + 1'b1;
                        end
                    end else begin
                        pf_word <= pf_word + 1'b1;
                    end
                end else if (word_in_row == row_words - 1) begin
                    word_in_row <= 0;
                    if (r_is_b && bank == LAST_BANK_B) begin
                        bank <= 0;
                        slot_base <= slot_base + b_col_words_x[`CPT_B_AW-1:0];
                    end else begin
                        bank <= bank + 1'b1;
                    end
                end else begin
                    word_in_row <= word_in_row + 1'b1;
                end
            end
            if (r_left == 1) begin
                active <= 1'b0;
                a_loaded <= !r_is_b && !conv_on;
                a_loaded_half <= r_half;
                b_loaded <= r_is_b && !r_pf;
            end
        end
    end

    // Prefetch progress: beats still expected.
    always @(posedge clk) begin
        if (rst) begin
            pf_left <= 0;
        end else if (start) begin
            pf_left <= pf_en ? (pf_end - pf_base) >> LOG_BYTES : {BT_W{1'b0}};
        end else if (r_hs && r_pf) begin
            pf_left <= pf_left - 1'b1;
        end
    end

    always @(posedge clk) begin
        if (rst || start) resp_err <= 1'b0;
        else if (r_hs && m_axi_rresp[1]) resp_err <= 1'b1;
    end

    // Bursts are counted, not delimited by RLAST; only RRESP[1] marks an error (SLVERR, DECERR).
    wire unused = &{1'b0, m_axi_rlast, m_axi_rresp[0]};
endmodule

`default_nettype wire
