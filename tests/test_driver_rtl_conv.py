"""The driver's convolution calls (interface 4) on the Verilog twin under cocotb, as a board with the twin would run
them (``make bitstream RTL=1``).

The pytest function below builds ``sim`` with the engine and runs this very module as the cocotb test module;
inside the simulator :func:`compare` drives ``Accelerator(RtlBackend)`` through ``conv2d``, ``conv2d_input`` and
``conv2d_weight`` -- the driver's own calls: row-plane packing, C16 where the worst case fits, stride-2 phases,
weight-gradient chunks chained by the prefetch hint -- and the same on the emulated device with the twin's limits
(``twin_limits=True``), and writes what it saw to a JSON file, which the pytest side checks:

* every result equal to ``cpt_hw.hw.golden``'s (the twin is bit-exact through the driver, not only call by call),
  and the code sums the forward and weight-gradient calls are asked for (``x_sums``, ``e_sums``) equal to their
  definitions: the twin writes both ops' (SUMS), so every forward and weight-gradient call asks and is taken
  (but the weight gradient the twin's formers never take, below);
* the same device calls on both (op, result rows and columns, reduction, precisions, flags, hint), refused ones
  included: a weight gradient of rows wider than D, which the twin's formers never take, is refused with
  ERR_CONV before any bus request at three images and at one, and the driver lowers it to GEMM calls, on the
  twin as on the emulated device.  (Halving the images a call where the twin's formers take fewer than the
  design's rule -- zc706's stage 2 and 3 layers, by their bank limit -- is tests/test_driver_conv_engine.py's: on
  ``sim`` k_max bounds a call's positions first.)

Cycles are not compared: the twin's conv cycles differ from the design's model (docs/rtl.md).
"""

from __future__ import annotations


import numpy as np
import pytest

#: (op, N, C, K, H, W, kernel, stride, padding, a_bits, b_bits, a_signed, b_signed): a forward with int16
#: results and one at 8 x 8 bits (int32) at stride 2, input gradients at stride 1 and 2, weight gradients whose
#: images need several calls (the twin's formers take fewer a call than the design's rule: refused, halved).
CASES = [
    ("fwd", 2, 3, 5, 5, 6, 3, 1, 1, 4, 3, False, True),
    ("fwd", 1, 8, 9, 6, 6, 3, 2, 1, 8, 8, True, False),
    ("dgrad", 2, 4, 6, 5, 5, 3, 1, 1, 8, 4, True, True),
    ("dgrad", 1, 5, 8, 6, 6, 3, 2, 1, 8, 3, True, False),
    ("wgrad", 8, 4, 6, 6, 6, 3, 1, 1, 3, 8, False, True),
    ("wgrad", 3, 8, 4, 8, 8, 1, 2, 0, 5, 8, True, True),
    ("wgrad", 3, 2, 3, 2, 40, 3, 1, 1, 2, 8, False, True),     # W = 40 > D: the twin never takes it (lowered)
]


def codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    from cpt_hw.hw import golden

    lo, hi = golden.operand_range(bits, signed)
    return rng.integers(lo, hi + 1, size=shape)


def run_case(acc, case: tuple, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One driver call of ``case`` on ``acc`` and golden's result for the same codes (forward and weight
    gradient: with their code sums, by their definitions, after the result)."""
    from cpt_hw.hw import golden

    op, n, c, k, h, w, kern, s, p, ab, bb, sa, sb = case
    geo = dict(stride=s, padding=p)
    ho, wo = ((size + 2 * p - kern) // s + 1 for size in (h, w))
    if op == "fwd":
        x, wt = codes(rng, (n, c, h, w), ab, sa), codes(rng, (k, c, kern, kern), bb, sb)
        args = dict(x_bits=ab, w_bits=bb, x_signed=sa, w_signed=sb, **geo)
        sums = np.empty((n, ho, wo), np.int64)
        window = golden.conv2d(x, np.ones((1, c, kern, kern), np.int64), x_bits=ab, w_bits=1, x_signed=sa, **geo)
        return (np.concatenate([acc.conv2d(x, wt, **args, x_sums=sums).ravel(), sums.ravel()]),
                np.concatenate([golden.conv2d(x, wt, **args).ravel(), window.ravel()]))
    if op == "dgrad":
        wt, e = codes(rng, (k, c, kern, kern), bb, sb), codes(rng, (n, k, ho, wo), ab, sa)
        args = dict(w_bits=bb, e_bits=ab, w_signed=sb, e_signed=sa, **geo)
        return acc.conv2d_input((n, c, h, w), wt, e, **args), golden.conv2d_input((n, c, h, w), wt, e, **args)
    x, e = codes(rng, (n, c, h, w), ab, sa), codes(rng, (n, k, ho, wo), bb, sb)
    args = dict(x_bits=ab, e_bits=bb, x_signed=sa, e_signed=sb, **geo)
    sums = np.empty((c, kern, kern), np.int64), np.empty((k, kern, kern), np.int64)
    x_taps = golden.conv2d_weight(x, (1, c, kern, kern), np.ones((n, 1, ho, wo), np.int64), x_bits=ab, e_bits=1,
                                  x_signed=sa, **geo)[0]
    e_taps = golden.conv2d_weight(np.ones((n, 1, h, w), np.int64), (k, 1, kern, kern), e, x_bits=1, e_bits=bb,
                                  e_signed=sb, **geo)[:, 0]
    dw = acc.conv2d_weight(x, (k, c, kern, kern), e, **args, x_sums=sums[0], e_sums=sums[1])
    return (np.concatenate([dw.ravel(), sums[0].ravel(), sums[1].ravel()]),
            np.concatenate([golden.conv2d_weight(x, (k, c, kern, kern), e, **args).ravel(), x_taps.ravel(),
                            e_taps.ravel()]))


def compare(tb, clock_period_ns: float) -> dict:
    """Runs in cocotb's bridge thread: the same driver calls on the twin and on the emulated device."""
    from cpt_driver import Accelerator

    sides = {"rtl": Accelerator("rtl", config=tb.cfg, dut=tb.dut, axil=tb.ctrl, ram=tb.ram,
                                clock_period_ns=clock_period_ns, timeout_s=5e-3),
             "emu": Accelerator("emu", config=tb.cfg, twin_limits=True)}
    out = {"mismatches": [], "calls": {side: [] for side in sides}, "errors": []}
    for i, case in enumerate(CASES):
        for side, acc in sides.items():
            start = len(acc.history)
            try:
                got, want = run_case(acc, case, np.random.default_rng(100 + i))
            except Exception as e:  # noqa: BLE001 - reported to the pytest side, which fails on it
                out["errors"].append({"case": case, "side": side, "error": f"{type(e).__name__}: {e}"})
                return out
            if not np.array_equal(got, want):
                out["mismatches"].append({"case": case, "side": side})
            out["calls"][side] += [{"case": i, "op": r.op, "m": r.m, "n": r.n, "k": r.k, "a_bits": r.a_bits,
                                    "b_bits": r.b_bits, "flags": r.flags, "prefetch": r.prefetch,
                                    "ran": r.status == 0} for r in list(acc.history)[start:]]
    return out


try:
    import cocotb

    _IN_SIM = cocotb.is_simulation
except ImportError:  # pragma: no cover - cocotb is a test dependency
    _IN_SIM = False

if _IN_SIM:
    @cocotb.test()
    async def driver_conv_on_the_twin(dut):
        from sim.cpt_gemm.tb import run_driver_in_sim  # the checkout's root is on the simulator's PYTHONPATH

        await run_driver_in_sim(dut, compare)


# ----------------------------------------------------------------------------- pytest side

@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_driver_conv_on_the_twin(simulator, driver_on_rtl):
    from cpt_hw.hw.config import HardwareConfig

    res = driver_on_rtl(HardwareConfig.from_preset("sim", {"conv_engine": True, "name": "sim_conv"}), simulator,
                        __file__)
    assert res["errors"] == [] and res["mismatches"] == [], (res["errors"], res["mismatches"])
    rtl, emu = res["calls"]["rtl"], res["calls"]["emu"]
    assert rtl == emu, "the driver made other calls on the twin than on the emulated device with its limits"
    assert {c["op"] for c in rtl} == {"fwd", "dgrad", "wgrad", "gemm"}
    sums = 1 << 3   # every forward call and weight gradient writes its code sums
    fwd, wgrad = ([c for c in rtl if c["op"] == op] for op in ("fwd", "wgrad"))
    assert fwd and all(c["flags"] & sums and c["ran"] for c in fwd)
    assert wgrad and all(c["flags"] & sums for c in wgrad)
    assert all(c["ran"] for c in wgrad if c["case"] != len(CASES) - 1)
    c16 = 1 << 4
    assert any(c["flags"] & c16 for c in rtl) and any(not c["flags"] & c16 for c in rtl)
    # a weight gradient over several calls; one the twin refuses at 3 images and at 1, then lowered (op 0 calls)
    assert [c["ran"] for c in rtl if c["case"] == 4] == [True, True]     # 8 images in two calls, hinted
    lowered = [c for c in rtl if c["case"] == len(CASES) - 1]
    assert [(c["op"], c["ran"]) for c in lowered[:2]] == [("wgrad", False)] * 2
    assert lowered[2:] and all(c["op"] == "gemm" and c["ran"] for c in lowered[2:])
