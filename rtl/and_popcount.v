// AND + popcount of two D-bit words as a compressor tree of LUT6-sized counters.
//
// count = popcount(a & b), combinational.  A plain sum of D one-bit terms synthesises to ~2.8-3.2
// LUT6 per bit (Yosys synth_xilinx); this tree needs about 1.4 per bit:
//   level "leaf": every three bit pairs (a0 b0 a1 b1 a2 b2: six inputs, one LUT6 per output bit)
//                 feed a full adder of their ANDs -> one bit of weight 1 and one of weight 2;
//   levels 0..NL-1: every column (bits of equal weight) is cut into groups of six bits, each reduced
//                 by a 6:3 counter (three LUT6) to bits of weight 1, 2 and 4 of that column; a
//                 remainder of 3..5 bits gets a 3:2 or 4:3/5:3 counter, a remainder of 1..2 passes;
//   final:        when no column holds more than two bits, one carry-chain adder of two rows.
// Column heights, the number of levels and where every bit lives are computed at elaboration by
// constant functions; all bits of all levels sit in one flat vector `heap` so that no hierarchical
// references are needed.  Bits of weight >= 2^CW are dropped: the count is < 2^CW, so they are 0.

`include "cpt_gemm_widths.vh"

`default_nettype none

module and_popcount #(
    parameter integer D = `CPT_D                // word width in bits: 3..1024
) (
    input  wire [D-1:0]  a,
    input  wire [D-1:0]  b,
    output wire [CW-1:0] count                  // popcount(a & b), 0..D
);
    localparam integer CW = $clog2(D + 1);     // width of the count: 2^CW > D
    localparam integer G0 = (D + 2) / 3;        // leaf full adders
    localparam integer HB = 32;                 // bits per table field below (integers)
    localparam integer MAXL = 16;               // bound on levels (D <= 1024 needs 8)
    localparam integer NF = (MAXL + 1) * CW;    // (level, column) fields per table

    // Whether a column remainder of `rem` (< 6) bits gets a counter or passes to the next level.  A
    // 3:2 counter (2 LUTs for 1 bit eliminated) is worth it; 4:3 and 5:3 counters are used only once
    // no column of the level is six tall (earlier they would save no level): fewer LUTs, same depth.
    function partial(input integer rem, input integer tall);
        partial = (rem == 3) || (rem > 3 && tall == 0);
    endfunction

    // Every table is computed once, as a localparam, by one call of a constant function (Yosys
    // evaluates constant functions slowly: no function below calls another table function).
    // HT: height of column w of level l at field l*CW + w (level 0 = the leaf outputs).
    function [HB*NF-1:0] height_table(input integer leaves);
        reg [HB*NF-1:0] t;
        integer l, w, h, full, rem, ng, tall;
        begin
            t = 0;
            t[0 +: HB] = leaves;
            if (CW > 1) t[HB +: HB] = leaves;
            for (l = 0; l < MAXL; l = l + 1) begin
                tall = 0;
                for (w = 0; w < CW; w = w + 1)
                    if (t[HB*(l*CW + w) +: HB] >= 6) tall = 1;
                for (w = 0; w < CW; w = w + 1) begin
                    h = t[HB*(l*CW + w) +: HB];
                    full = h / 6;
                    rem = h % 6;
                    ng = full + (partial(rem, tall) ? 1 : 0);
                    t[HB*((l+1)*CW + w) +: HB] = t[HB*((l+1)*CW + w) +: HB] + ng + (partial(rem, tall) ? 0 : rem);
                    if (w + 1 < CW)
                        t[HB*((l+1)*CW + w+1) +: HB] = t[HB*((l+1)*CW + w+1) +: HB] + ng;
                    if (w + 2 < CW)
                        t[HB*((l+1)*CW + w+2) +: HB] = t[HB*((l+1)*CW + w+2) +: HB] + full
                                                       + ((partial(rem, tall) && rem >= 4) ? 1 : 0);
                end
            end
            height_table = t;
        end
    endfunction

    localparam [HB*NF-1:0] HT = height_table(G0);

    // TT: bit l set when level l has a column of six or more bits.
    function [MAXL:0] tall_table(input [HB*NF-1:0] t);
        integer l, w;
        begin
            tall_table = 0;
            for (l = 0; l <= MAXL; l = l + 1)
                for (w = 0; w < CW; w = w + 1)
                    if (t[HB*(l*CW + w) +: HB] >= 6) tall_table[l] = 1'b1;
        end
    endfunction

    localparam [MAXL:0] TT = tall_table(HT);

    // Levels until every column holds at most two bits.
    function integer levels(input [HB*NF-1:0] t);
        integer l, w, done;
        begin
            levels = MAXL;
            done = 0;
            for (l = 0; l <= MAXL; l = l + 1) begin
                if (done == 0) begin
                    done = 1;
                    for (w = 0; w < CW; w = w + 1)
                        if (t[HB*(l*CW + w) +: HB] > 2) done = 0;
                    if (done != 0) levels = l;
                end
            end
        end
    endfunction

    localparam integer NL = levels(HT);

    // OT: offset of column w of level l in the flat heap (field l*CW + w; field NF = total size).
    function [HB*(NF+1)-1:0] offset_table(input [HB*NF-1:0] t);
        integer f, acc;
        begin
            offset_table = 0;
            acc = 0;
            for (f = 0; f < NF; f = f + 1) begin
                offset_table[HB*f +: HB] = acc;
                acc = acc + t[HB*f +: HB];
            end
            offset_table[HB*NF +: HB] = acc;
        end
    endfunction

    localparam [HB*(NF+1)-1:0] OT = offset_table(HT);
    localparam integer TOTAL = OT[HB*(NL+1)*CW +: HB];

    initial begin
        if (D < 3 || D > 1024) begin
            $display("%m: error: D = %0d must be in 3..1024", D);
            $finish;
        end
        if (NL >= MAXL) begin
            $display("%m: error: compressor tree did not converge in %0d levels", MAXL);
            $finish;
        end
    end

    wire [3*G0-1:0] a_pad = {{(3*G0-D){1'b0}}, a};
    wire [3*G0-1:0] b_pad = {{(3*G0-D){1'b0}}, b};
    wire [TOTAL-1:0] heap;

    genvar l, w, g;
    generate
        for (g = 0; g < G0; g = g + 1) begin : leaf
            wire [1:0] y;
            and_popcount_leaf leaf_i (.a(a_pad[3*g +: 3]), .b(b_pad[3*g +: 3]), .y(y));
            assign heap[g] = y[0];
            if (CW > 1) begin : carry
                assign heap[G0 + g] = y[1];
            end
        end

        for (l = 0; l < NL; l = l + 1) begin : level
            for (w = 0; w < CW; w = w + 1) begin : column
                localparam integer H = HT[HB*(l*CW + w) +: HB];
                localparam integer FULL = H / 6;
                localparam integer REM = H % 6;
                localparam integer PART = partial(REM, {31'd0, TT[l]}) ? 1 : 0;
                localparam integer NG = FULL + PART;
                localparam integer PASS = (PART != 0) ? 0 : REM;
                // Bits column w+1 of this level keeps in its own column at the next level (they
                // come first there), and the counters column w+1 has (their carries come next).
                localparam integer H1 = (w + 1 < CW) ? HT[HB*(l*CW + w + 1) +: HB] : 0;
                localparam integer PART1 = partial(H1 % 6, {31'd0, TT[l]}) ? 1 : 0;
                localparam integer SAME1 = H1 / 6 + ((PART1 != 0) ? 1 : H1 % 6);
                localparam integer NEXT1 = H1 / 6 + PART1;
                localparam integer H2 = (w + 2 < CW) ? HT[HB*(l*CW + w + 2) +: HB] : 0;
                localparam integer SAME2 = H2 / 6 + (partial(H2 % 6, {31'd0, TT[l]}) ? 1 : H2 % 6);
                localparam integer IN = OT[HB*(l*CW + w) +: HB];
                localparam integer O0 = OT[HB*((l+1)*CW + w) +: HB];
                localparam integer O1 = OT[HB*((l+1)*CW + w + 1) +: HB] + SAME1;
                localparam integer O2 = OT[HB*((l+1)*CW + w + 2) +: HB] + SAME2 + NEXT1;
                for (g = 0; g < NG; g = g + 1) begin : counter
                    wire [5:0] x;
                    if (g < FULL) begin : full
                        assign x = heap[IN + 6*g +: 6];
                    end else begin : partial_group
                        assign x = {{(6-REM){1'b0}}, heap[IN + 6*g +: REM]};
                    end
                    // y[2] is dropped for a 3:2 counter (always 0) and above the count's width.
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire [2:0] y;
                    /* verilator lint_on UNUSEDSIGNAL */
                    and_popcount_counter counter_i (.x(x), .y(y));
                    assign heap[O0 + g] = y[0];
                    if (w + 1 < CW) begin : c1
                        assign heap[O1 + g] = y[1];
                    end
                    if (w + 2 < CW && (g < FULL || REM >= 4)) begin : c2
                        assign heap[O2 + g] = y[2];
                    end
                end
                for (g = 0; g < PASS; g = g + 1) begin : pass
                    assign heap[O0 + NG + g] = heap[IN + 6*FULL + g];
                end
            end
        end

        // Final carry-propagate adder of the (at most) two remaining rows.
        wire [CW-1:0] row0, row1;
        for (w = 0; w < CW; w = w + 1) begin : final_rows
            localparam integer H = HT[HB*(NL*CW + w) +: HB];
            localparam integer IN = OT[HB*(NL*CW + w) +: HB];
            if (H >= 1) begin : r0
                assign row0[w] = heap[IN];
            end else begin : z0
                assign row0[w] = 1'b0;
            end
            if (H >= 2) begin : r1
                assign row1[w] = heap[IN + 1];
            end else begin : z1
                assign row1[w] = 1'b0;
            end
        end
        assign count = row0 + row1;
    endgenerate
endmodule

`default_nettype wire
