"""The Verilog twin's cycles of any conv call, exact against it: the entry point of the conv cycle models.

Forward calls and input gradients are :mod:`cpt_hw.hw.conv_cycle_model`'s (with code sums, the write side
:mod:`cpt_hw.hw.sums_cycle_model`'s), weight gradients :mod:`cpt_hw.hw.wgrad_cycle_model`'s; docs/rtl.md, "Cycle
model of the walker's calls", says how each follows the RTL and how the runners check it.
"""

from __future__ import annotations

from typing import Any

from .config import HardwareConfig
from .conv_calls import ConvArgs
from .conv_cycle_model import CONV_SETUP_CYCLES, conv_cycles
from .cycle_model import setup_cycles
from .wgrad_cycle_model import wgrad_cycles


def twin_cycles(cfg: HardwareConfig, call: Any, *, fast_forward: bool = True, skipped: list[int] | None = None,
                hit: bool = False) -> int:
    """Cycles of one legal conv call (a ConvCall: its arguments and addresses) on the twin, its ``cycles``
    register, against AxiRam's timing (cocotb, no back-pressure): forward calls, with their code sums (SUMS) or
    without, input gradients, and weight gradients (with SUMS or without, a prefetch hint or none; ``hit``: the
    previous call's hint loaded this one's chunks, :func:`conv_calls.prefetch_hit`).  Addresses matter through
    4 KiB pages only (where bursts split).  ValueError for a call the twin refuses.  fast_forward=False steps every
    cycle instead of skipping periodic stretches (the same result, slower: for testing the skip; weight gradients
    are never skipped); `skipped` receives the A tiles each run skipped."""
    g = ConvArgs.decode(call)
    if g.op == "wgrad":
        return wgrad_cycles(cfg, g, call, CONV_SETUP_CYCLES + setup_cycles(cfg) + 1, hit)
    if hit:
        raise ValueError("only a weight gradient finds its chunks loaded (hit)")
    return conv_cycles(cfg, call, g, fast_forward=fast_forward, skipped=skipped)
