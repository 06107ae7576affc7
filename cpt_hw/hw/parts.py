"""FPGA parts and boards cpt-hw knows, with the capacities reports are measured against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """Resource capacity of one FPGA part (7-series primitives, as Yosys ``synth_xilinx`` counts them)."""

    name: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: int
    #: Vivado board part string of the board this part is sold on (empty: no board file).
    board: str


PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        # Xilinx ZC706: Zynq-7000 XC7Z045, speed grade -2 (DS190, UG954).
        Part("xc7z045ffg900-2", "zynq", 218_600, 437_200, 900, 545, "xilinx.com:zc706:part0:1.4"),
        # PYNQ-Z2 / Zybo: XC7Z020, for users who want the small board.
        Part("xc7z020clg400-1", "zynq", 53_200, 106_400, 220, 140, "tul.com.tw:pynq-z2:part0:1.0"),
    )
}
