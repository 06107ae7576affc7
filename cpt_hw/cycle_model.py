"""Cycle model of the accelerator: how many clock cycles one ``cpt_gemm`` call takes.

The emulated device reports these cycles in its ``cycles`` register; the RTL testbenches check the model
against the Verilog (within 2 %).  First-order model of the dataflow in docs/architecture.md; the RTL
issue refines it to the controller's exact schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RESULT_BITS, HardwareConfig


@dataclass(frozen=True)
class CycleEstimate:
    total: int
    compute: int          # cycles the PE array is stepping
    memory: int           # cycles the AXI master is busy (beats)
    useful_binary_ops: int

    def utilisation(self, cfg: HardwareConfig) -> float:
        """Useful binary ops / (peak ops per cycle x cycles)."""
        return self.useful_binary_ops / (cfg.peak_binary_ops_per_cycle * self.total) if self.total else 0.0


def gemm_cycles(cfg: HardwareConfig, m: int, n: int, k: int, a_bits: int, b_bits: int) -> CycleEstimate:
    """Cycles of one legal call (M x K) . (K x N) at a_bits x b_bits."""
    kw = -(-k // cfg.dot_width)
    beats_per_word = cfg.dot_width // cfg.axi_data_width
    fill = cfg.rows + cfg.cols  # systolic skew
    compute = memory = total = 0
    for n0 in range(0, n, cfg.b_block_cols):
        nb = min(cfg.b_block_cols, n - n0)
        col_tiles = -(-nb // cfg.cols)
        b_load = nb * b_bits * kw * beats_per_word
        total += b_load
        memory += b_load
        for m0 in range(0, m, cfg.rows):
            rows = min(cfg.rows, m - m0)
            a_load = rows * a_bits * kw * beats_per_word
            steps = col_tiles * (a_bits * b_bits * kw + fill)
            c_store = col_tiles * rows * cfg.cols * RESULT_BITS // cfg.axi_data_width
            compute += steps
            memory += a_load + c_store
            total += max(steps, a_load + c_store)
        total += fill
    return CycleEstimate(total, compute, memory, m * n * k * a_bits * b_bits)
