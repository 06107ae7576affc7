// Code sums writer (flags SUMS, docs/registers.md, "Interface 4"): writes the int32 code sums of a conv call at
// `sums` + 4 idx, and shares the one AXI write channel with the C writer (cpt_writer).
//
// Two streams of (idx, value) arrive from the sums' producers (cpt_sums_rows: result rows; cpt_sums_taps:
// weight columns per tap).  Each port packs its sums into one burst buffer while their indices follow one
// another (a run), as beats of AXI_DW / 32 sums with byte strobes (a run may start or end inside a beat); a
// burst closes when the next index does not follow, when it is full (BURST_BEATS) or would cross 4 KiB, or with
// the port's last sum.  The port then stops taking sums until its burst is on the bus.
//
// Write channel: the C writer's bursts and the ports' are granted one AW at a time, round robin (the grant is
// registered, so an AW never changes while valid); the W channel serves the bursts in the order their AWs were
// accepted and the B channel routes the responses in that order too (two order queues; AXI keeps one ID's
// writes in order).  With `enable` low (a call without SUMS) the C writer's channel passes straight through, so
// such calls keep their cycles exactly.
//
// `busy`: the call's sums are not all written (responses included); `resp_err`: a sums burst had an error
// response (sticky per call).

// Built only with the engine (config conv_engine).
`include "cpt_gemm_widths.vh"

`ifdef CPT_CONV
`default_nettype none

module cpt_sums_writer #(
    parameter integer AXI_DW = `CPT_AXI_DW,     // config axi_data_width (a multiple of 32)
    parameter integer AW = `CPT_AXI_AW,         // config axi_addr_width
    parameter integer BURST_BEATS = `CPT_BURST_BEATS   // config burst_beats
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     start,              // pulse: a call starts; enable and base valid
    input  wire                     enable,             // the call writes sums (held during the call)
    input  wire [AW-1:0]            base,               // the sums' address (aligned to a beat)

    input  wire [1:0]               s_valid,            // port p: bit p of these, [p 32 +: 32] of those
    output wire [1:0]               s_ready,
    input  wire [63:0]              s_idx,
    input  wire [2*`CPT_SUM_W-1:0]  s_value,
    input  wire [1:0]               s_last,             // the port's last sum of the call

    // the C writer's write channel
    input  wire                     c_awvalid,
    output wire                     c_awready,
    input  wire [AW-1:0]            c_awaddr,
    input  wire [7:0]               c_awlen,
    input  wire                     c_wvalid,
    output wire                     c_wready,
    input  wire [AXI_DW-1:0]        c_wdata,
    input  wire                     c_wlast,
    output wire                     c_bvalid,
    input  wire                     c_bready,

    // the memory's (size, burst type and the C writer's strobes are fixed: full beats, INCR)
    output wire                     m_axi_awvalid,
    input  wire                     m_axi_awready,
    output wire [AW-1:0]            m_axi_awaddr,
    output wire [7:0]               m_axi_awlen,
    output wire                     m_axi_wvalid,
    input  wire                     m_axi_wready,
    output wire [AXI_DW-1:0]        m_axi_wdata,
    output wire [AXI_DW/8-1:0]      m_axi_wstrb,
    output wire                     m_axi_wlast,
    input  wire                     m_axi_bvalid,
    output wire                     m_axi_bready,
    input  wire [1:0]               m_axi_bresp,

    output wire                     busy,
    output reg                      resp_err
);
    localparam integer BYTES = AXI_DW / 8;
    localparam integer SW = `CPT_SUM_W;                  // a code sum (int32)
    localparam integer IDX_W = 32;                       // a sum's index in the sums area
    localparam integer LOG_BYTES = $clog2(BYTES);
    localparam integer LN_W = LOG_BYTES > 2 ? LOG_BYTES - 2 : 1;     // a sum's place in its beat
    localparam integer BB_W = $clog2(BURST_BEATS + 1);
    localparam integer BI_W = BURST_BEATS < 2 ? 1 : $clog2(BURST_BEATS);    // a beat of the burst buffer
    localparam [1:0] C_SRC = 2'd2;                       // sources: port 0, port 1, the C writer
    localparam [BB_W-1:0] FULL_BURST = BURST_BEATS[BB_W-1:0];

    initial begin
        if (AXI_DW < SW || AXI_DW % SW != 0 || SW != 32) begin
            $display("%m: error: AXI_DW = %0d must be a multiple of the 32-bit code sums", AXI_DW);
            $finish;
        end
    end

    reg en;                                              // this call writes sums
    always @(posedge clk) if (rst) en <= 1'b0; else if (start) en <= enable;

    // ------------------------------------------------------------------ the ports' burst buffers
    wire [1:0]          p_req;                           // a closed burst waits for its AW
    wire [2*AW-1:0]     p_addr;
    wire [15:0]         p_len;
    wire [1:0]          p_done;                          // the port's last burst is on the bus
    wire [2*AXI_DW-1:0] p_wdata;
    wire [2*BYTES-1:0]  p_wstrb;
    wire [1:0]          p_wlast;
    reg  [1:0]          p_w_hs;                          // this cycle's W handshake of each port's burst
    genvar p;
    generate
        for (p = 0; p < 2; p = p + 1) begin : port
            reg              open, closed, final_seen, sent_final;
            reg  [31:0]      next_idx;
            reg  [AW-1:0]    first_beat;                 // the burst's address
            reg  [BB_W-1:0]  beats;                      // beats begun
            reg  [BB_W-1:0]  w_beat;                     // the next beat on the W channel
            reg  [AXI_DW-1:0]  data [0:(1 << BI_W)-1];
            reg  [BYTES-1:0]   strb [0:(1 << BI_W)-1];
            wire [31:0]      idx = s_idx[p*IDX_W +: IDX_W];
            wire [AW-1:0]    byte_addr = base + ({{(AW-32){1'b0}}, idx} << `CPT_LOG_SUM_BYTES);
            wire [AW-1:0]    beat_addr = byte_addr >> LOG_BYTES << LOG_BYTES;
            wire [LN_W-1:0]  lane;
            if (LOG_BYTES > 2) begin : lanes
                assign lane = byte_addr[LOG_BYTES-1:`CPT_LOG_SUM_BYTES];
            end else begin : one_lane
                assign lane = {LN_W{1'b0}};
            end
            // a sum that begins a new beat may extend the burst while it stays below BURST_BEATS beats and
            // does not start a 4 KiB page; one inside the current beat always may
            wire follows = open && idx == next_idx
                           && (lane != 0 || (beats != FULL_BURST && beat_addr[11:0] != 12'd0));
            wire take = en && s_valid[p] && !closed && (!open || follows);
            assign s_ready[p] = en && !closed && (!open || follows);
            wire [BB_W-1:0] slot_x = !open ? {BB_W{1'b0}} : lane == 0 ? beats : beats - 1'b1;
            wire [BI_W-1:0] slot = slot_x[BI_W-1:0];     // < BURST_BEATS
            wire [BB_W-1:0] w_next = w_beat + 1'b1;
            assign p_req[p] = closed;
            assign p_addr[p*AW +: AW] = first_beat;
            assign p_len[p*8 +: 8] = {{(8-BB_W){1'b0}}, beats} - 8'd1;
            assign p_wdata[p*AXI_DW +: AXI_DW] = data[w_beat[BI_W-1:0]];
            assign p_wstrb[p*BYTES +: BYTES] = strb[w_beat[BI_W-1:0]];
            assign p_wlast[p] = w_next == beats;
            assign p_done[p] = !en || sent_final;
            integer j;
            always @(posedge clk) begin
                if (rst || start) begin
                    open <= 1'b0;
                    closed <= 1'b0;
                    final_seen <= 1'b0;
                    sent_final <= 1'b0;
                    w_beat <= {BB_W{1'b0}};
                    for (j = 0; j < (1 << BI_W); j = j + 1) strb[j] <= {BYTES{1'b0}};
                end else begin
                    if (take) begin
                        if (!open) first_beat <= beat_addr;
                        if (!open || lane == 0) beats <= slot_x + 1'b1;
                        open <= 1'b1;
                        next_idx <= idx + 32'd1;
                        data[slot][lane*SW +: SW] <= s_value[p*SW +: SW];
                        strb[slot][lane*(SW/8) +: SW/8] <= {(SW/8){1'b1}};
                        if (s_last[p]) begin
                            closed <= 1'b1;
                            final_seen <= 1'b1;
                        end
                    end else if (en && s_valid[p] && open && !closed) begin
                        closed <= 1'b1;                  // the sum does not follow: send what is held first
                    end
                    if (p_w_hs[p]) begin
                        w_beat <= w_next;
                        if (p_wlast[p]) begin            // the burst is out: the buffer is free again
                            open <= 1'b0;
                            closed <= 1'b0;
                            w_beat <= {BB_W{1'b0}};
                            if (final_seen) sent_final <= 1'b1;
                            for (j = 0; j < (1 << BI_W); j = j + 1) strb[j] <= {BYTES{1'b0}};
                        end
                    end
                end
            end
            wire unused_port = &{1'b0, slot_x};
        end
    endgenerate

    // ------------------------------------------------------------------ AW: registered round-robin grant
    // A source requests while it has an AW to send (a port: its closed burst, until that burst's AW is taken;
    // the C writer: c_awvalid).  A grant lasts until its AW handshake, so the AW never changes while valid.
    reg  [1:0] p_aw_sent;                                // the closed burst's AW is accepted
    wire [2:0] req = {c_awvalid, p_req & ~p_aw_sent};
    reg        granted;
    reg  [1:0] gsel, last_sel;
    wire       q_room;                                   // room in both order queues
    wire       aw_hs = m_axi_awvalid && m_axi_awready;
    // the first requester after the last granted, in the order 0, 1, 2, 0, ...
    wire [1:0] s1 = last_sel == 2'd2 ? 2'd0 : last_sel + 2'd1;
    wire [1:0] s2 = s1 == 2'd2 ? 2'd0 : s1 + 2'd1;
    wire [1:0] pick = req[s1] ? s1 : req[s2] ? s2 : last_sel;
    wire       g_c = gsel == C_SRC;
    always @(posedge clk) begin
        if (rst || start) begin
            granted <= 1'b0;
            gsel <= C_SRC;
            last_sel <= C_SRC;
            p_aw_sent <= 2'b00;
        end else begin
            if (!granted && |req && q_room) begin
                granted <= 1'b1;
                gsel <= pick;
            end
            if (aw_hs) begin
                granted <= 1'b0;
                last_sel <= gsel;
                if (!g_c) p_aw_sent[gsel[0]] <= 1'b1;
            end
            if (p_w_hs[0] && p_wlast[0]) p_aw_sent[0] <= 1'b0;
            if (p_w_hs[1] && p_wlast[1]) p_aw_sent[1] <= 1'b0;
        end
    end
    assign m_axi_awvalid = en ? granted && req[gsel] : c_awvalid;
    assign m_axi_awaddr = !en || g_c ? c_awaddr : p_addr[gsel[0]*AW +: AW];
    assign m_axi_awlen = !en || g_c ? c_awlen : p_len[gsel[0]*8 +: 8];
    assign c_awready = en ? granted && g_c && m_axi_awready : m_axi_awready;

    // ------------------------------------------------------------------ W and B: in the order of the AWs
    wire       wq_empty, bq_empty, wq_full, bq_full;
    wire [1:0] w_src, b_src;
    assign q_room = !wq_full && !bq_full;
    wire w_hs = m_axi_wvalid && m_axi_wready;
    wire b_hs = m_axi_bvalid && m_axi_bready;
    /* verilator lint_off PINCONNECTEMPTY */
    sync_fifo #(.WIDTH(2), .DEPTH(16), .AW(4)) w_order (
        .clk(clk), .rst(rst || start), .push(en && aw_hs), .din(gsel), .pop(en && w_hs && m_axi_wlast),
        .dout(w_src), .empty(wq_empty), .full(wq_full), .count()
    );
    sync_fifo #(.WIDTH(2), .DEPTH(16), .AW(4)) b_order (
        .clk(clk), .rst(rst || start), .push(en && aw_hs), .din(gsel), .pop(en && b_hs),
        .dout(b_src), .empty(bq_empty), .full(bq_full), .count()
    );
    /* verilator lint_on PINCONNECTEMPTY */
    wire w_c = w_src == C_SRC;
    assign m_axi_wvalid = !en ? c_wvalid : !wq_empty && (w_c ? c_wvalid : 1'b1);
    assign m_axi_wdata = !en || w_c ? c_wdata : p_wdata[w_src[0]*AXI_DW +: AXI_DW];
    assign m_axi_wstrb = !en || w_c ? {BYTES{1'b1}} : p_wstrb[w_src[0]*BYTES +: BYTES];
    assign m_axi_wlast = !en || w_c ? c_wlast : p_wlast[w_src[0]];
    assign c_wready = !en ? m_axi_wready : !wq_empty && w_c && m_axi_wready;
    always @* begin
        p_w_hs = 2'b00;
        if (en && w_hs && !wq_empty && !w_c) p_w_hs[w_src[0]] = 1'b1;
    end

    wire b_c = b_src == C_SRC;
    wire b_sums = en && b_hs && !bq_empty && !b_c;       // a response to a sums burst
    assign c_bvalid = !en ? m_axi_bvalid : m_axi_bvalid && !bq_empty && b_c;
    assign m_axi_bready = !en ? c_bready : bq_empty || !b_c || c_bready;
    reg [4:0] sums_out;                                  // sums bursts whose responses are due
    always @(posedge clk) begin
        if (rst || start) begin
            sums_out <= 5'd0;
            resp_err <= 1'b0;
        end else begin
            sums_out <= sums_out + {4'd0, en && aw_hs && !g_c} - {4'd0, b_sums};
            if (b_sums && m_axi_bresp[1]) resp_err <= 1'b1;
        end
    end
    assign busy = en && (!(&p_done) || sums_out != 5'd0);

    wire unused = &{1'b0, m_axi_bresp[0]};
endmodule

`default_nettype wire
`endif
