"""cpt_hw.hw.cycle_model on its own: the periodic fast-forward changes nothing but the model's speed, and the
B prefetch terms behave as the RTL does (sim/cpt_gemm/test_cpt_gemm.py compares with the RTL itself)."""

import numpy as np
import pytest

from cpt_hw.flows.rtl_sim import WIDE
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import Prefetch, gemm_cycles

ZC706 = HardwareConfig.from_preset("zc706")

# (M, N, K, a_bits, b_bits): write-bound (a C FIFO backlog builds up slowly), read-bound, compute-bound,
# and on a wider array
SHAPES = [(32768, 32, 288, 3, 3), (65536, 16, 144, 3, 8), (8192, 64, 576, 8, 8), (576, 64, 4608, 3, 8),
          (4096, 16, 27, 8, 8)]


@pytest.mark.parametrize("cfg", [ZC706, ZC706.replace(cols=32, name="wide")], ids=["zc706", "16x32"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("hinted", [False, True])
def test_fast_forward_is_exact(cfg, shape, hinted):
    m, n, k, a_bits, b_bits = shape
    hint = Prefetch(0, n, k, b_bits) if hinted else None
    fast = gemm_cycles(cfg, *shape, prefetch=hint)
    slow = gemm_cycles(cfg, *shape, prefetch=hint, fast_forward=False)
    assert fast == slow


# The RTL tests' second geometry (2-beat bursts: the memory's AR and AW queues pace the engines) at the
# limits of its config: write-bound, read-bound and compute-bound
SIMWIDE = HardwareConfig.from_preset("sim", WIDE)
SIMWIDE_SHAPES = [(1024, 24, 64, 1, 1), (1024, 8, 256, 3, 8), (1000, 40, 256, 8, 8), (997, 17, 100, 2, 5)]


@pytest.mark.parametrize("shape", SIMWIDE_SHAPES, ids=str)
@pytest.mark.parametrize("hinted", [False, True])
def test_fast_forward_is_exact_on_short_bursts(shape, hinted):
    m, n, k, a_bits, b_bits = shape
    hint = Prefetch(4096, n, k, b_bits) if hinted else None
    fast = gemm_cycles(SIMWIDE, *shape, prefetch=hint)
    assert fast == gemm_cycles(SIMWIDE, *shape, prefetch=hint, fast_forward=False)


@pytest.mark.parametrize("cfg", [ZC706, SIMWIDE], ids=["zc706", "simwide"])
def test_fast_forward_is_exact_at_any_address(cfg):
    """Unaligned operands split bursts at 4 KiB boundaries differently from one A tile to the next; the
    skip must still change nothing (hints, hits and several B blocks included)."""
    rng = np.random.default_rng(11)
    for _ in range(12):
        m, n = int(rng.integers(50, 1500)), int(rng.integers(1, 2 * cfg.b_block_cols + 8))
        k, a_bits, b_bits = int(rng.integers(1, cfg.k_max + 1)), *(int(b) for b in rng.integers(1, 9, size=2))
        a, b, c, nb = (int(x) * cfg.word_bytes for x in rng.integers(0, 1 << 18, size=4))
        kw = dict(a_addr=a, b_addr=b, c_addr=c, b_prefetched=bool(rng.integers(0, 2)),
                  prefetch=Prefetch(nb, n, k, b_bits) if rng.integers(0, 2) else None)
        assert gemm_cycles(cfg, m, n, k, a_bits, b_bits, **kw) == \
            gemm_cycles(cfg, m, n, k, a_bits, b_bits, fast_forward=False, **kw), (m, n, k, a_bits, b_bits, kw)


def test_prefetch_terms():
    """A hit is cheaper than a miss; a hint is free when the call has idle port cycles to hide it in
    (compute-bound) and costs at most the prefetch's beats plus a chunk overhead otherwise."""
    m, n, k = 576, 64, 4608
    miss = gemm_cycles(ZC706, m, n, k, 3, 8).total
    hit = gemm_cycles(ZC706, m, n, k, 3, 8, b_prefetched=True).total
    hinted = gemm_cycles(ZC706, m, n, k, 3, 8, prefetch=Prefetch(0, n, k, 8)).total
    b_beats = n * 8 * (k // 64)
    assert miss - hit >= 0.9 * b_beats and hinted == miss
    read_bound = gemm_cycles(ZC706, 4096, 16, 144, 3, 8).total
    read_bound_hinted = gemm_cycles(ZC706, 4096, 16, 144, 3, 8, prefetch=Prefetch(0, 16, 144, 8)).total
    pf_beats = 16 * 8 * 3
    assert read_bound < read_bound_hinted <= read_bound + pf_beats * 17 // 16 + 64
