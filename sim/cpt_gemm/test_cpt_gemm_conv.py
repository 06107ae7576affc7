"""cocotb system tests of the Verilog twin's convolution engine (interface 4, ``conv_engine = true``): forward
convolution calls (conv op 1), input-gradient calls (op 2, stride 1 and 2) and weight-gradient calls (op 3)
through s_axi_control and m_axi_gmem, and their pytest runners.

Every call places random codes as a row-plane tensor (``conv_model.pack_tensor``: X, or E of an input
gradient) and weights in the B layout (``cpt_driver.rowplanes``: the rotated kernel for op 2), or for op 3 X and
E both as row-plane tensors, runs on the twin and is compared byte for byte with the emulated device's datapath
(``cpt_hw.hw.emu_conv.execute`` on the bytes of the call's ranges, ``conv_calls.operand_ranges``): the whole C
area, padding columns included; no byte outside C may change.  Its status must be the twin's rule
(``conv_calls.conv_status(..., twin=True)``), which for every call run here equals the emulator's.  Refused
calls (``hls_conv_vectors.REFUSED_CONV``, and the twin's own limits) must return that rule's status without
any bus request.  Every test runs with random AXI back-pressure off and on.

Records (one per call) carry the twin's cycles next to the design's model (``emu_conv.call_cycles``) and the
HLS kernel's busy count (``hls_cycles.conv_cycles``), for the report; neither is asserted equal.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import cocotb
import numpy as np
import pytest

from cpt_driver import rowplanes
from cpt_hw.flows import rtl_sim
from cpt_hw.gen.hls_conv_vectors import REFUSED_CONV
from cpt_hw.hw import emu_conv, golden, hls_cycles
from cpt_hw.hw.calls import ConvCall
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.cycle_model import setup_cycles
from cpt_hw.hw.conv_calls import (ConvArgs, c16_fits, conv_status, encode_conv, operand_ranges, prefetch_hit,
                                  twin_row_bits)
from cpt_hw.hw.conv_cycle_model import CONV_SETUP_CYCLES
from cpt_hw.hw.conv_model import pack_tensor
from cpt_hw.hw.regmap import CONV_FLAG_BITS, FLAG_BITS
from cpt_hw.hw.twin_cycle_model import twin_cycles
from sim import runner
from sim.cpt_gemm.tb import CptGemmTB
from sim.tbutil import record, seeded_rng

#: The test geometries with the engine: the sim preset (3 x 2, D = 32) and the wide one (10 x 4, D = 64 on a
#: 32-bit bus: two beats per word, bursts of 2).
CONFIGS = {
    "sim_conv": ("sim", {"conv_engine": True, "name": "sim_conv"}),
    "simwide_conv": ("sim", {**rtl_sim.WIDE, "conv_engine": True, "name": "simwide_conv"}),
    # the wide array on a 64-bit bus (zc706's): two code sums a beat, so a run of sums may start or end mid-beat
    "simwide64_conv": ("sim", {**rtl_sim.WIDE, "axi_data_width": 64, "burst_beats": 4, "conv_engine": True,
                               "name": "simwide64_conv"}),
}
P_STALL = 0.3
BACKPRESSURE = (False, True)
ERR_CONV = 1 << 6
C16 = 1 << CONV_FLAG_BITS["C16"]          # flags: int16 results
SUMS = 1 << CONV_FLAG_BITS["SUMS"]        # flags: the code sums (forward and weight-gradient calls)


def config(name: str) -> HardwareConfig:
    preset, overrides = CONFIGS[name]
    return HardwareConfig.from_preset(preset, overrides)


async def start(dut, backpressure: bool) -> CptGemmTB:
    tb = CptGemmTB(dut)
    tb.variant = f"/backpressure={backpressure}"
    await tb.reset()
    if backpressure:
        tb.set_backpressure(P_STALL, seed=random.getrandbits(32))
    return tb


def codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    lo, hi = golden.operand_range(bits, signed)
    x = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    if rng.random() < 0.3:                      # the extremes: top plane and carries
        x = np.where(rng.random(shape) < 0.5, lo, hi)
    return x


def place(tb: CptGemmTB, rng: np.random.Generator, *, batch: int, c: int, k: int, h: int, w: int, kh: int,
          kw: int, stride: int, padding: int, a_bits: int, b_bits: int, a_signed: bool, b_signed: bool,
          band: tuple[int, int] = (0, 0), flags: int = 0, op: str = "fwd") -> ConvCall:
    """Random codes in the RAM: X (batch, c, h, w) for op fwd, E (batch, k, Ho, Wo) for op dgrad, and
    W (k, c, kh, kw) in that op's weight layout; for op wgrad X at ``a`` and E at ``b``, both row-plane tensors.
    The call's registers, window tight."""
    d = tb.cfg.dot_width
    call = ConvCall(0, 0, 0, 0, 0, 0, a_bits, b_bits, flags, 0, 0, conv=encode_conv(op, kh, kw, stride, padding),
                    batch=batch, channels=c | k << 16, size=h | w << 16, band=band[0] | band[1] << 16)
    g = ConvArgs.decode(call)
    if op == "dgrad":
        x = pack_tensor(codes(rng, (batch, k, max(g.ho, 1), max(g.wo, 1)), a_bits, a_signed), a_bits, d)
        rows = rowplanes.dgrad_weight_rows(codes(rng, (k, c, kh, kw), b_bits, b_signed), stride, padding, d)
    else:
        x = pack_tensor(codes(rng, (batch, c, h, w), a_bits, a_signed), a_bits, d)
        rows = [rowplanes.fwd_weight_rows(codes(rng, (k, c, kh, kw), b_bits, b_signed), d)]
    if op == "wgrad":
        wt = pack_tensor(codes(rng, (batch, k, max(g.ho, 1), max(g.wo, 1)), b_bits, b_signed), b_bits, d)
    else:
        wt = np.zeros(rowplanes.weight_bytes(rows, b_bits, d), dtype=np.uint8)
        rowplanes.pack_weights_into(rows, b_bits, d, wt)
    flags |= (a_signed << FLAG_BITS["A_SIGNED"]) | (b_signed << FLAG_BITS["B_SIGNED"])
    call = replace(call, flags=flags)
    a_addr, b_addr = tb.alloc(x.size), tb.alloc(wt.size)
    c_addr = tb.alloc(max(g.c_bytes(tb.cfg.cols), 1) if g.ho >= 1 and g.wo >= 1 else 64)
    sums_addr = tb.alloc(4 * g.sums_count()) if flags & SUMS and g.ho >= 1 and g.wo >= 1 else 0
    tb.ram.write(a_addr, x.tobytes())
    tb.ram.write(b_addr, wt.tobytes())
    call = replace(call, a=a_addr, b=b_addr, c=c_addr, sums=sums_addr)
    if g.ho >= 1 and g.wo >= 1 and g.band0 < g.rows_per_image and g.band0 + g.rows <= g.rows_per_image:
        ranges = [(p, n) for p, n in operand_ranges(tb.cfg, call, g) if n]
    else:
        ranges = [(a_addr, x.size), (b_addr, wt.size)]
    return replace(call, win_base=min(p for p, _ in ranges), win_limit=max(p + n for p, n in ranges))


def wgrad_chunks(tb: CptGemmTB, rng: np.random.Generator, calls: int, **spec) -> Callable[..., ConvCall]:
    """A weight gradient split into ``calls`` calls of spec's batch, as the driver splits one: X and E of all their
    images placed once (``place``, window over all of them); ``chunk(j, hint)`` is call j, with ``hint`` the call
    whose chunks it hints (PREFETCH_B, next_a/next_b), or none."""
    d = tb.cfg.dot_width
    batch = spec["batch"]
    whole = place(tb, rng, op="wgrad", **{**spec, "batch": batch * calls})
    g = ConvArgs.decode(whole)
    x_image = g.h * rowplanes.row_bytes(g.w, g.c, g.a_bits, d)
    e_image = g.ho * rowplanes.row_bytes(g.wo, g.k, g.b_bits, d)

    def chunk(j: int, hint: int | None = None) -> ConvCall:
        call = replace(whole, batch=batch, a=whole.a + batch * j * x_image, b=whole.b + batch * j * e_image)
        if hint is None:
            return call
        return replace(call, flags=call.flags | 1 << FLAG_BITS["PREFETCH_B"], next_a=whole.a + batch * hint * x_image,
                       next_b=whole.b + batch * hint * e_image)
    return chunk


def useful_ops(g: ConvArgs) -> int:
    """The call's binary products as its GEMM counts them (padded taps included), for make sim's PE utilisation:
    result rows x columns x the taps each row reduces over (a stride-2 input gradient's row: its phase's) x the
    reduced tensor's channels x bits."""
    if g.op != "dgrad" or g.stride == 1:
        return g.m * g.n_cols * g.k_real() * g.a_bits * g.b_bits
    s, phases = g.stride, g.phases()
    taps = sum(len(phases[(h % s) * s + w % s][0]) * len(phases[(h % s) * s + w % s][1])
               for h in range(g.band0, g.band0 + g.rows) for w in range(g.w))
    return g.batch * taps * g.n_cols * g.k * g.a_bits * g.b_bits


async def run_conv(tb: CptGemmTB, call: ConvCall, name: str, keep: bool = False,
                   stale: dict[int, bytes] | None = None) -> int:
    """Run a legal conv call; C (padding columns included) and with SUMS the code sums byte for byte as the emulator
    writes them, nothing outside them touched.  Returns the cycles and records them with the models'.  ``keep``:
    the RAM's allocations stay (the next call reuses the tensors); ``stale``: bytes (by address) the emulator is
    given in place of the RAM's, as the twin read them before (a prefetch hit)."""
    cfg = tb.cfg
    g = ConvArgs.decode(call)
    assert conv_status(cfg, call, twin=True) == 0 == conv_status(cfg, call), f"{name}: not a legal call"
    ranges = operand_ranges(cfg, call, g)
    c_addr, c_bytes = ranges[2]
    sums_addr, sums_bytes = ranges[3] if g.flag("SUMS") else (0, 0)
    tb.ram.write(c_addr, bytes([0xA5]) * c_bytes)        # poison: every byte of C (and the sums) must be written
    tb.ram.write(sums_addr, bytes([0x5A]) * sums_bytes)
    before = np.frombuffer(tb.snapshot(), np.uint8).copy()
    model = emu_conv.call_cycles(cfg, g)
    # the interrupt's deadline: the default, or four times the design's model for the larger calls (ResNet-74's)
    status, cycles = await tb.call(timeout_cycles=max(200_000, 4 * model),
                                   **{f: getattr(call, f) for f in call.__dataclass_fields__})
    after = np.frombuffer(tb.snapshot(), np.uint8)
    assert status == 0, f"{name}: status {status:#x} for {g}, ranges {ranges}, window {call.win_base}..{call.win_limit}"
    source = before.copy()
    for addr, data in (stale or {}).items():
        source[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    views = [source[p:p + n].copy() for p, n in ranges]
    want = np.zeros(c_bytes, np.uint8)
    want_sums = np.zeros(sums_bytes, np.uint8)
    emu_conv.execute(cfg, g, views[0], views[1], want, want_sums if g.flag("SUMS") else None)
    got_sums = after[sums_addr:sums_addr + sums_bytes].view("<i4")
    if not np.array_equal(got_sums, want_sums.view("<i4")):
        bad = np.flatnonzero(got_sums != want_sums.view("<i4"))
        raise AssertionError(f"{name}: {bad.size} of {g.sums_count()} code sums differ (the first {g.m} are the rows'),"
                             f" first at {bad[0]}: twin {got_sums[bad[0]]}, emulator {want_sums.view('<i4')[bad[0]]}")
    got = after[c_addr:c_addr + c_bytes]
    if not np.array_equal(got, want):
        dtype = "<i2" if g.flag("C16") else "<i4"
        bad = np.flatnonzero(got.view(dtype) != want.view(dtype))
        raise AssertionError(f"{name}: {bad.size} of {c_bytes // g.result_bytes_per()} results differ, first at "
                             f"{bad[0]}: twin {got.view(dtype)[bad[0]]}, emulator {want.view(dtype)[bad[0]]}")
    changed = np.flatnonzero(before != after)
    stray = changed[((changed < c_addr) | (changed >= c_addr + c_bytes))
                    & ((changed < sums_addr) | (changed >= sums_addr + sums_bytes))]
    assert stray.size == 0, f"{name}: {stray.size} bytes outside C and the sums changed"
    record(name=name + tb.variant, op=g.op, batch=g.batch, c=g.c, k=g.k, h=g.h, w=g.w, kh=g.kh, kw=g.kw,
           stride=g.stride, padding=g.padding, band=[g.band0, g.band_rows], a_bits=g.a_bits, b_bits=g.b_bits,
           c16=g.flag("C16"), sums=g.flag("SUMS"), m=g.m, status=0, cycles=cycles, model_cycles=model,
           useful_ops=useful_ops(g),
           hls_cycles=hls_cycles.conv_cycles(cfg, g), backpressure=tb.backpressure,
           call={f: getattr(call, f) for f in call.__dataclass_fields__})
    if not keep:
        tb.free_all()
    return cycles


def twin_takes(rng: np.random.Generator, cfg: HardwareConfig, g: dict) -> bool:
    """Gives call ``g`` (random_forward's or random_dgrad's fields) a band of its result rows now and then (3 or
    more rows, 30 %; never a weight gradient, which the twin runs on whole images only), and says whether the
    twin takes the call (conv_status with twin=True is 0)."""
    op = g.get("op", "fwd")
    probe = ConvCall(0, 0, 0, 0, 0, 0, g["a_bits"], g["b_bits"], g.get("flags", 0), 0, 1 << 40,
                     conv=encode_conv(op, g["kh"], g["kw"], g["stride"], g["padding"]), batch=g["batch"],
                     channels=g["c"] | g["k"] << 16, size=g["h"] | g["w"] << 16)
    rows = ConvArgs.decode(probe).ho if op == "fwd" else g["h"]  # forward: Ho; input gradient: dX's H
    if rows >= 3 and op != "wgrad" and rng.random() < 0.3:
        r0 = int(rng.integers(0, rows - 1))
        g["band"] = (r0, int(rng.integers(1, rows - r0 + 1)))
        probe = replace(probe, band=g["band"][0] | g["band"][1] << 16)
    return conv_status(cfg, probe, twin=True) == 0


def random_call(rng: np.random.Generator, cfg: HardwareConfig, op: str = "fwd", *, max_batch: int = 2,
                p_any_kernel: float = 0.25) -> dict:
    """A small legal call of ``op`` that the twin takes (a band now and then where it allows one): 1..max_batch
    images, the streamed tensor's channels (X: C; E of an input gradient: K) in {1, 2, 3, 5, 8, D, D + 3}
    (Cp < D, = D and 2D), the result's columns (K; C of an input gradient) spanning one to three B blocks, H, W
    1..7, 1x1 or 3x3 (any kh x kw with probability p_any_kernel), stride 1/2, padding 0/1, precisions 1..8,
    signed and unsigned; int16 results (C16) half the time where the worst case fits, as the driver asks."""
    pitches = [1, 2, 3, 5, 8, cfg.dot_width, cfg.dot_width + 3]
    while True:
        kh = kw = int(rng.choice([1, 3]))
        if rng.random() < p_any_kernel:
            kh, kw = (int(v) for v in rng.integers(1, cfg.max_kernel + 1, size=2))
        batch = int(rng.integers(1, max_batch + 1))
        # drawn in this order (C, then K) whichever is streamed
        c = int(rng.integers(1, 2 * cfg.b_block_cols + 3)) if op == "dgrad" else int(rng.choice(pitches))
        k = int(rng.choice(pitches)) if op == "dgrad" else int(rng.integers(1, 2 * cfg.b_block_cols + 3))
        g = dict(op=op, batch=batch, c=c, k=k, h=int(rng.integers(1, 8)), w=int(rng.integers(1, 8)), kh=kh, kw=kw,
                 stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2)),
                 a_bits=int(rng.integers(1, cfg.operand_bits + 1)), b_bits=int(rng.integers(1, cfg.operand_bits + 1)),
                 a_signed=bool(rng.integers(2)), b_signed=bool(rng.integers(2)))
        if rng.random() < 0.5:
            g["flags"] = c16_if_fits(g)
        if twin_takes(rng, cfg, g):
            return g


def c16_if_fits(g: dict) -> int:
    """Flags C16 for call ``g`` (random_call's fields) where its worst case fits int16, else 0."""
    probe = ConvCall(0, 0, 0, 0, 0, 0, g["a_bits"], g["b_bits"], 0, 0, 0,
                     conv=encode_conv(g["op"], g["kh"], g["kw"], g["stride"], g["padding"]), batch=g["batch"],
                     channels=g["c"] | g["k"] << 16, size=g["h"] | g["w"] << 16)
    return C16 if c16_fits(ConvArgs.decode(probe)) else 0


def random_forward(rng: np.random.Generator, cfg: HardwareConfig) -> dict:
    """A small legal forward call (random_call; any kh x kw one time in five), with the code sums (SUMS) half
    the time."""
    g = random_call(rng, cfg, "fwd", p_any_kernel=0.2)
    if rng.random() < 0.5:
        g["flags"] = g.get("flags", 0) | SUMS
    return g


@cocotb.test(timeout_time=400, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_conv_fixed(dut, backpressure: bool):
    """Fixed edge shapes: the stem (C = 3, Cp = 4), 1x1 stride 2, Cp = D and 2D (a row of several words), a tile
    crossing output rows and images, several B blocks, a band, a band that reaches no stored row (zeros from
    padding only), W = 1; int16 results (C16) over several B blocks and in a band at stride 2; 3x3 unpadded at
    stride 1 and 2.  Every other shape with the code sums (SUMS), the last one besides with a burst of sums that
    crosses a 4 KiB page."""
    tb = await start(dut, backpressure)
    cfg = tb.cfg
    rng = seeded_rng("conv_fixed")
    d = cfg.dot_width
    shapes = [
        dict(batch=2, c=3, k=5, h=5, w=6, kh=3, kw=3, stride=1, padding=1, a_bits=4, b_bits=3),
        dict(batch=1, c=8, k=3, h=7, w=7, kh=1, kw=1, stride=2, padding=0, a_bits=2, b_bits=8),
        dict(batch=2, c=d, k=2 * cfg.b_block_cols + 1, h=3, w=4, kh=1, kw=3, stride=1, padding=1, a_bits=3,
             b_bits=2),
        dict(batch=1, c=d + 5, k=3, h=3, w=3, kh=1, kw=1, stride=1, padding=0, a_bits=2, b_bits=5),
        dict(batch=3, c=2, k=1, h=4, w=1, kh=3, kw=1, stride=1, padding=1, a_bits=8, b_bits=8),
        dict(batch=2, c=16, k=7, h=6, w=5, kh=3, kw=3, stride=2, padding=1, a_bits=5, b_bits=6, band=(1, 2)),
        dict(batch=1, c=4, k=2, h=3, w=4, kh=1, kw=1, stride=2, padding=1, a_bits=1, b_bits=1, band=(0, 1)),
        # int16 results (C16): several B blocks (a column tile's offset), a band
        dict(batch=2, c=3, k=2 * cfg.b_block_cols + 1, h=4, w=5, kh=3, kw=3, stride=1, padding=1, a_bits=3,
             b_bits=3, flags=C16),
        dict(batch=1, c=5, k=3, h=6, w=5, kh=3, kw=3, stride=2, padding=1, a_bits=2, b_bits=4, band=(1, 2), flags=C16),
        # 3x3 without padding at stride 1 and 2 (every (stride, padding, kernel) pair in each run, whatever the
        # random calls draw)
        dict(batch=1, c=5, k=4, h=5, w=6, kh=3, kw=3, stride=1, padding=0, a_bits=6, b_bits=5),
        dict(batch=2, c=3, k=3, h=7, w=6, kh=3, kw=3, stride=2, padding=0, a_bits=3, b_bits=7),
    ]
    for i, s in enumerate(shapes):
        flags = s.pop("flags", 0) | (SUMS if i % 2 == 0 else 0)
        call = place(tb, rng, a_signed=bool(i % 2), b_signed=bool(i % 3 == 0), flags=flags, **s)
        await run_conv(tb, call, "test_conv_fixed")
    # the sums two rows below a 4 KiB page: their run crosses it
    call = place(tb, rng, a_signed=True, b_signed=False, flags=SUMS, **shapes[0])
    sums_bytes = 4 * ConvArgs.decode(call).sums_count()
    sums = tb.alloc(4096 + sums_bytes, align=4096) + 4096 - 8
    call = replace(call, sums=sums, win_limit=max(call.win_limit, sums + sums_bytes))
    await run_conv(tb, call, "test_conv_fixed")


@cocotb.test(timeout_time=2000, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_conv_random(dut, backpressure: bool):
    """Random small forward calls (random_forward), bit-exact against the emulator."""
    tb = await start(dut, backpressure)
    rng = seeded_rng("conv_random")
    for _ in range(16):
        await run_conv(tb, place(tb, rng, **random_forward(rng, tb.cfg)), "test_conv_random")


def random_dgrad(rng: np.random.Generator, cfg: HardwareConfig) -> dict:
    """A small legal input-gradient call (random_call), a band of dX rows now and then."""
    return random_call(rng, cfg, "dgrad")


@cocotb.test(timeout_time=400, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_dgrad_fixed(dut, backpressure: bool):
    """Fixed stride-1 input gradients: 3x3 pad 1 (offsets 1), 3x3 pad 0 (offsets 2: E smaller than dX), 1x1
    pad 1 (offset -1: E's border rows and columns never read), 1x1 pad 0, 2x3 (unequal row and column offsets),
    Cp(K) = D and 2D, C over several B blocks, bands (one that starts inside the image), W = 1; then the
    stride-2 calls of stride2_dgrad."""
    tb = await start(dut, backpressure)
    cfg = tb.cfg
    rng = seeded_rng("dgrad_fixed")
    d = cfg.dot_width
    shapes = [
        dict(batch=2, c=3, k=5, h=5, w=6, kh=3, kw=3, padding=1, a_bits=8, b_bits=3),
        dict(batch=1, c=2 * cfg.b_block_cols + 1, k=8, h=5, w=4, kh=3, kw=3, padding=0, a_bits=4, b_bits=8),
        dict(batch=2, c=4, k=3, h=3, w=5, kh=1, kw=1, padding=1, a_bits=2, b_bits=2),
        dict(batch=1, c=5, k=d, h=4, w=3, kh=1, kw=1, padding=0, a_bits=8, b_bits=8),
        dict(batch=2, c=3, k=5, h=4, w=4, kh=2, kw=3, padding=0, a_bits=3, b_bits=5),
        dict(batch=2, c=3, k=d + 5, h=3, w=4, kh=1, kw=1, padding=1, a_bits=6, b_bits=7),
        dict(batch=3, c=2, k=2, h=4, w=1, kh=3, kw=1, padding=1, a_bits=8, b_bits=8, band=(1, 2)),
        dict(batch=1, c=7, k=16, h=6, w=5, kh=3, kw=3, padding=1, a_bits=5, b_bits=6, band=(2, 0)),
        dict(batch=1, c=1, k=1, h=3, w=3, kh=1, kw=1, padding=1, a_bits=1, b_bits=1, band=(2, 1), flags=C16),
    ]
    for i, s in enumerate(shapes):
        call = place(tb, rng, op="dgrad", stride=1, a_signed=bool(i % 2), b_signed=bool(i % 3 == 0), **s)
        await run_conv(tb, call, "test_dgrad_fixed")
    for i, s in enumerate(stride2_dgrad(cfg)):
        call = place(tb, rng, op="dgrad", stride=2, a_signed=bool(i % 2), b_signed=bool(i % 3 == 0), **s)
        await run_conv(tb, call, "test_dgrad_fixed")


def stride2_dgrad(cfg: HardwareConfig) -> list[dict]:
    """test_dgrad_fixed's stride-2 input gradients (the polyphase walk): 3x3 pad 1 (phases of 1, 2, 2, 4 taps)
    and pad 0, 1x1 pad 0 (three phases without taps: zero rows) and pad 1 (phase row 0 without taps), a 2x3
    kernel, odd H and W, W = 1 (column phase 1 without pixels), Cp(K) = D and 2D, C over three B blocks, bands
    that start on an odd row, of one row (one row phase) and to the last row; a 3x3 whose largest phase (4 taps)
    reduces over k_max bits (9 taps at stride 1 would be ERR_DIM)."""
    d = cfg.dot_width
    return [
        dict(batch=2, c=3, k=5, h=5, w=6, kh=3, kw=3, padding=1, a_bits=4, b_bits=3),
        dict(batch=2, c=4, k=3, h=5, w=5, kh=1, kw=1, padding=0, a_bits=3, b_bits=2),
        dict(batch=1, c=2 * cfg.b_block_cols + 1, k=8, h=6, w=7, kh=3, kw=3, padding=1, a_bits=3, b_bits=5),
        dict(batch=1, c=5, k=d, h=7, w=5, kh=3, kw=3, padding=0, a_bits=8, b_bits=8),
        dict(batch=1, c=3, k=d + 5, h=4, w=5, kh=1, kw=1, padding=1, a_bits=2, b_bits=6),
        dict(batch=2, c=3, k=5, h=6, w=4, kh=2, kw=3, padding=1, a_bits=5, b_bits=4, band=(1, 3)),
        dict(batch=3, c=2, k=2, h=5, w=1, kh=3, kw=1, padding=1, a_bits=8, b_bits=8, band=(2, 1)),
        dict(batch=1, c=6, k=4, h=5, w=4, kh=1, kw=1, padding=0, a_bits=1, b_bits=1, band=(1, 2), flags=C16),
        dict(batch=1, c=7, k=16, h=7, w=6, kh=3, kw=3, padding=1, a_bits=6, b_bits=7, band=(3, 0)),
        dict(batch=1, c=2, k=cfg.k_max // 4, h=3, w=3, kh=3, kw=3, padding=1, a_bits=2, b_bits=2),
    ]


@cocotb.test(timeout_time=2000, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_dgrad_random(dut, backpressure: bool):
    """Random small input-gradient calls (random_dgrad), bit-exact against the emulator; a forward
    call between some of them (the engine's state from one op must not leak into the other)."""
    tb = await start(dut, backpressure)
    rng = seeded_rng("dgrad_random")
    for i in range(16):
        await run_conv(tb, place(tb, rng, **random_dgrad(rng, tb.cfg)), "test_dgrad_random")
        if i % 4 == 3:
            await run_conv(tb, place(tb, rng, **random_forward(rng, tb.cfg)), "test_dgrad_random_fwd")


def random_wgrad(rng: np.random.Generator, cfg: HardwareConfig) -> dict:
    """A small legal weight-gradient call the twin takes (random_call): 1..3 whole images, with the code sums
    (SUMS) half the time."""
    g = random_call(rng, cfg, "wgrad", max_batch=3)
    if rng.random() < 0.5:
        g["flags"] = g.get("flags", 0) | SUMS
    return g


@cocotb.test(timeout_time=1000, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_wgrad_fixed(dut, backpressure: bool):
    """Fixed weight gradients: the stem (C = 3, Cp = 4), 1x1 stride 2 on an even H (the last row is never read),
    3x3 stride 2 pad 1 and pad 0, a 2x3 kernel at stride 2, W = Wo = D (one word per output row), several images, K over
    three B blocks, Cp = D and 2D, M over several A tiles, 1-bit and 8-bit planes; every other one with the code
    sums (SUMS: each (tap, c) row's x sum, each tap's error sums over the positions where it is real)."""
    tb = await start(dut, backpressure)
    cfg = tb.cfg
    rng = seeded_rng("wgrad_fixed")
    d = cfg.dot_width
    shapes = [
        dict(batch=2, c=3, k=5, h=6, w=6, kh=3, kw=3, stride=1, padding=1, a_bits=4, b_bits=3),
        dict(batch=1, c=8, k=3, h=8, w=8, kh=1, kw=1, stride=2, padding=0, a_bits=2, b_bits=8),
        dict(batch=2, c=5, k=4, h=7, w=6, kh=3, kw=3, stride=2, padding=1, a_bits=5, b_bits=6),
        dict(batch=1, c=3, k=2, h=5, w=7, kh=2, kw=3, stride=2, padding=1, a_bits=3, b_bits=3),
        dict(batch=1, c=2, k=3, h=3, w=d, kh=3, kw=3, stride=1, padding=1, a_bits=2, b_bits=2),
        dict(batch=4, c=4, k=2, h=4, w=5, kh=3, kw=3, stride=1, padding=0, a_bits=2, b_bits=2),
        dict(batch=2, c=2, k=2 * cfg.b_block_cols + 1, h=4, w=4, kh=3, kw=3, stride=1, padding=1, a_bits=3,
             b_bits=4),
        dict(batch=1, c=d, k=3, h=3, w=3, kh=1, kw=1, stride=1, padding=0, a_bits=3, b_bits=5),
        dict(batch=1, c=d + 3, k=2, h=3, w=2, kh=1, kw=1, stride=2, padding=0, a_bits=1, b_bits=7),
        dict(batch=3, c=1, k=1, h=2, w=3, kh=1, kw=1, stride=1, padding=1, a_bits=1, b_bits=1, flags=C16),
        dict(batch=1, c=2, k=1, h=5, w=4, kh=3, kw=3, stride=1, padding=1, a_bits=8, b_bits=8),
        dict(batch=2, c=3, k=3, h=7, w=7, kh=3, kw=3, stride=2, padding=0, a_bits=4, b_bits=5),  # 3x3/2 unpadded
    ]
    for i, s in enumerate(shapes):
        flags = s.pop("flags", 0) | (SUMS if i % 2 == 0 else 0)
        call = place(tb, rng, op="wgrad", a_signed=bool(i % 2), b_signed=bool(i % 3 == 0), flags=flags, **s)
        await run_conv(tb, call, "test_wgrad_fixed")


@cocotb.test(timeout_time=4000, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_wgrad_random(dut, backpressure: bool):
    """Random small weight gradients (random_wgrad), bit-exact against the emulator; a forward call and an input
    gradient between some of them (no state from one op may leak into another)."""
    tb = await start(dut, backpressure)
    rng = seeded_rng("wgrad_random")
    for i in range(16):
        await run_conv(tb, place(tb, rng, **random_wgrad(rng, tb.cfg)), "test_wgrad_random")
        if i % 6 == 5:
            await run_conv(tb, place(tb, rng, **random_forward(rng, tb.cfg)), "test_wgrad_random_fwd")
            await run_conv(tb, place(tb, rng, **random_dgrad(rng, tb.cfg)), "test_wgrad_random_dgrad")


@cocotb.test(timeout_time=2000, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_wgrad_prefetch(dut, backpressure: bool):
    """Weight-gradient chains with the prefetch hint (PREFETCH_B, next_a/next_b), as the driver makes them: a batch
    of 6 images in calls of 2, each hinting the next, every call bit-exact against the emulator.  Without
    back-pressure a call that hits its predecessor's hint takes fewer cycles than the same call cold (its chunks
    came in during the previous call), and one whose predecessor hinted other chunks, or that follows a refused
    call, takes exactly the cold cycles.  A hit computes with the chunks as the previous call read them
    (docs/registers.md, "The Verilog twin"): chunk 1 rewritten after call 0 still gives the old chunk's result.
    The second chain writes the code sums (SUMS; on sim_conv its K = 5 spans two B blocks): a hit's block-0 error
    sums are the ones its predecessor counted, and a hint made without SUMS is no hit for a call with them."""
    tb = await start(dut, backpressure)
    rng = seeded_rng("wgrad_prefetch")
    shapes = [dict(c=4, k=3, h=8, w=8, kh=3, kw=3, stride=1, padding=1, a_bits=3, b_bits=4),      # whole words
              dict(c=3, k=5, h=6, w=6, kh=3, kw=3, stride=2, padding=1, a_bits=5, b_bits=2,       # segments
                   flags=SUMS)]
    for i, s in enumerate(shapes):
        chunk = wgrad_chunks(tb, rng, 3, batch=2, a_signed=bool(i), b_signed=True, **s)
        name = "test_wgrad_prefetch"
        cold = [await run_conv(tb, chunk(j), name, keep=True) for j in range(3)]
        chain = [await run_conv(tb, chunk(0, 1), name, keep=True), await run_conv(tb, chunk(1, 2), name, keep=True),
                 await run_conv(tb, chunk(2), name, keep=True)]
        await run_conv(tb, chunk(0, 2), name, keep=True)           # hints chunk 2: chunk 1 runs cold
        other = await run_conv(tb, chunk(1), name, keep=True)
        await run_conv(tb, chunk(0, 1), name, keep=True)           # a refused call in between loses the hint
        status, cycles = await tb.call(**{f: getattr(chunk(1), f) for f in ConvCall.__dataclass_fields__}
                                       | {"batch": 0})
        assert status, "a call of batch 0 ran"
        # (recorded: the cycle checks follow the hint from call to call, and a refused call ends it)
        record(name=name + tb.variant, op="refused", status=status, cycles=cycles, backpressure=tb.backpressure)
        after_refused = await run_conv(tb, chunk(1), name, keep=True)
        if not backpressure:
            assert chain[1] < cold[1] and chain[2] < cold[2], (cold, chain)
            assert other == after_refused == cold[1], (other, after_refused, cold[1])
        # a hit computes with the chunks the previous call read: rewrite chunk 1's X after call 0 prefetched it
        await run_conv(tb, chunk(0, 1), name, keep=True)
        x1, x_bytes = chunk(1).a, chunk(2).a - chunk(1).a
        old = bytes(tb.ram.read(x1, x_bytes))
        tb.ram.write(x1, bytes(rng.integers(0, 256, x_bytes, dtype=np.uint8)))
        await run_conv(tb, chunk(1), name, keep=True, stale={x1: old})
        if s.get("flags", 0) & SUMS:
            # the hint's key includes SUMS: a call without them hints, the call with them runs cold
            await run_conv(tb, replace(chunk(0, 1), flags=chunk(0, 1).flags & ~SUMS), name, keep=True)
            unsummed_hint = await run_conv(tb, chunk(1), name, keep=True)
            if not backpressure:
                assert unsummed_hint == cold[1], (unsummed_hint, cold[1])
        tb.free_all()


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def test_dgrad_sizes(dut):
    """Input gradients of a few hundred result rows (stride 2: 3x3 padding 1 at 4 and 8 bits, a 1x1 padding 0
    downsample; the 3x3 at stride 1 for comparison), bit-exact against the emulator, for the cycles report:
    with more rows per phase the phases' fixed costs matter less (Verilator only: long for Icarus)."""
    tb = await start(dut, False)
    tb.variant = ""                              # records named as the test (it has no back-pressure variants)
    rng = seeded_rng("dgrad_sizes")
    for s in [dict(batch=1, c=16, k=16, h=12, w=12, kh=3, kw=3, stride=2, padding=1, a_bits=4, b_bits=4),
              dict(batch=1, c=16, k=16, h=12, w=12, kh=3, kw=3, stride=1, padding=1, a_bits=4, b_bits=4),
              dict(batch=2, c=16, k=8, h=16, w=16, kh=1, kw=1, stride=2, padding=0, a_bits=4, b_bits=4),
              dict(batch=1, c=8, k=16, h=16, w=16, kh=3, kw=3, stride=2, padding=1, a_bits=8, b_bits=8)]:
        await run_conv(tb, place(tb, rng, op="dgrad", a_signed=True, b_signed=True, **s), "test_dgrad_sizes")


@cocotb.test(timeout_time=400, timeout_unit="ms")
@cocotb.parametrize(backpressure=BACKPRESSURE)
async def test_conv_refused(dut, backpressure: bool):
    """Every case of hls_conv_vectors.REFUSED_CONV (C16 beyond int16 among them, here also of the other ops) and
    the twin's own limits (SUMS outside forward calls, a row wider than the former's, also an input gradient's E
    row; weight gradients its formers do not take) returns conv_status(twin=True) without a bus request; a GEMM
    call (op 0) and a forward call still run after them."""
    tb = await start(dut, backpressure)
    cfg = tb.cfg
    rng = seeded_rng("conv_refused")
    tb.watch_requests()
    base = place(tb, rng, batch=2, c=8, k=5, h=8, w=8, kh=3, kw=3, stride=1, padding=1, a_bits=3, b_bits=2,
                 a_signed=False, b_signed=True)
    flag = {**FLAG_BITS, **CONV_FLAG_BITS}
    wide = twin_row_bits(cfg) // 8 + 1          # W with C = 8 (Cp = 8) one pixel past the former's row
    dgrad = encode_conv("dgrad", 3, 3, 1, 1)
    wide_e = twin_row_bits(cfg) // 8 + 1        # Wo of E with K = 8 one pixel past the former's row (3x3 pad 1)
    d = cfg.dot_width
    wgrad = encode_conv("wgrad", 3, 3, 1, 1)
    wgrad1 = encode_conv("wgrad", 1, 1, 1, 0)
    twin_cases = [
        ("stride-2 dgrad, largest phase above k_max", {"conv": encode_conv("dgrad", 3, 3, 2, 1),
                                                         "channels": 5 | (cfg.k_max // 4 + 1) << 16}),
        # weight gradients the formers do not take (the emulator runs each)
        ("wgrad band", {"conv": wgrad, "band": 1 | 3 << 16}),
        ("wgrad band of every row from 1", {"conv": wgrad, "band": 1}),
        ("wgrad 1x1 stride 2 padding 1", {"conv": encode_conv("wgrad", 1, 1, 2, 1)}),
        ("wgrad W > D", {"conv": wgrad, "batch": 1, "size": 3 | (d + 1) << 16}),
        ("wgrad Cp(C) 3D", {"conv": encode_conv("wgrad", 1, 1, 1, 0), "batch": 1, "size": 4 | 2 << 16,
                            "channels": (2 * d + 1) | 5 << 16}),
        ("wgrad Cp(K) 3D", {"conv": wgrad, "batch": 1, "size": 4 | 2 << 16, "channels": 3 | (2 * d + 1) << 16,
                            "b_bits": 1}),
        ("C16 beyond int16, wgrad", {"conv": wgrad, "flags": base.flags | 1 << flag["C16"], "a_bits": 8,
                                     "b_bits": 8}),
        ("wgrad SUMS reaching past the window", {"conv": wgrad, "flags": base.flags | 1 << flag["SUMS"],
                                                 "sums": base.win_limit - 8}),
        ("prefetch hint: next_a misaligned", {"conv": wgrad, "flags": base.flags | 1 << flag["PREFETCH_B"],
                                                 "next_a": base.a + 1, "next_b": base.b}),
        ("prefetch hint: next_b outside the window", {"conv": wgrad, "flags": base.flags | 1 << flag["PREFETCH_B"],
                                                         "next_a": base.a, "next_b": base.win_limit}),
        ("C16 beyond int16, dgrad", {"conv": dgrad, "flags": base.flags | 1 << flag["C16"], "a_bits": 8,
                                     "b_bits": 8}),
        ("dgrad E row wider than the former's", {"conv": dgrad, "size": 3 | wide_e << 16, "batch": 1,
                                                 "a_bits": 1, "channels": 5 | 8 << 16}),
        ("SUMS misaligned", {"flags": base.flags | 1 << flag["SUMS"], "sums": base.c + 2}),
        ("SUMS outside the window", {"flags": base.flags | 1 << flag["SUMS"], "sums": base.win_limit}),
        ("SUMS reaching past the window", {"flags": base.flags | 1 << flag["SUMS"], "sums": base.win_limit - 8}),
        ("SUMS in an input gradient", {"conv": dgrad, "flags": base.flags | 1 << flag["SUMS"], "sums": base.c}),
        ("row wider than the former's", {"size": 3 | wide << 16, "batch": 1, "a_bits": 1}),
    ]
    if cfg.k_max >= 65 * d:     # a former's bank overflows only where a call may have that many positions (zc706)
        twin_cases += [("wgrad X chunk above a former's bank", {"conv": wgrad1, "batch": 1, "channels": 15 | 1 << 16,
                                                                "a_bits": 8, "b_bits": 1, "size": 65 | d << 16}),
                       ("wgrad E chunk above a former's bank", {"conv": wgrad1, "batch": 1, "channels": 1 | 15 << 16,
                                                                "a_bits": 1, "b_bits": 8, "size": 65 | d << 16})]
    # random weight-gradient geometries the twin refuses (legal or not): the setup's arithmetic on the rule's limits
    wrng = np.random.default_rng(31)
    random_wgrad_cases = []
    while len(random_wgrad_cases) < 24:
        change = {"conv": encode_conv("wgrad", int(wrng.integers(1, 4)), int(wrng.integers(1, 4)),
                                      int(wrng.integers(1, 3)), int(wrng.integers(0, 2))),
                  "batch": int(wrng.integers(1, 5)),
                  "channels": int(wrng.choice([1, 3, 8, d, d + 3, 2 * d + 1, 300]))
                  | int(wrng.choice([1, 5, 2 * d + 1, 300])) << 16,
                  "size": int(wrng.integers(1, 12)) | int(wrng.choice([1, 5, d, d + 1, d + 5])) << 16,
                  "a_bits": int(wrng.integers(1, 9)), "b_bits": int(wrng.integers(1, 9)),
                  "band": 0 if wrng.random() < 0.8 else int(wrng.integers(0, 3)) | int(wrng.integers(0, 3)) << 16}
        if conv_status(cfg, replace(base, **change), twin=True):
            random_wgrad_cases.append((f"random wgrad {len(random_wgrad_cases)}", change))
    cases = [(name, change(cfg, base)) for name, change in REFUSED_CONV] + twin_cases + random_wgrad_cases
    before = tb.snapshot()
    requests = tb.bus_requests
    for name, change in cases:
        call = replace(base, **change)
        want = conv_status(cfg, call, twin=True)
        assert want, f"{name}: the twin's rule runs it"
        status, cycles = await tb.call(**{f: getattr(call, f) for f in call.__dataclass_fields__})
        assert status == want, f"{name}: status {status:#x}, want {want:#x}"
        if name in dict(twin_cases) and name.startswith("op"):
            assert status == ERR_CONV
        if name in dict(twin_cases) and name.startswith(("dgrad", "wgrad")):
            # the twin's limit alone: the emulator runs it (in a window wide enough for its larger tensor)
            assert conv_status(cfg, replace(call, win_base=0, win_limit=1 << 40)) == 0, f"{name}: emulator refuses"
        record(name="test_conv_refused" + tb.variant, op="refused", status=status, cycles=cycles,
               backpressure=tb.backpressure)
    assert tb.bus_requests == requests, "a refused call touched the bus"
    assert tb.snapshot() == before, "a refused call changed memory"
    # still alive: a GEMM call (op 0) and the forward call itself
    a = rng.integers(0, 4, size=(5, 40))
    b = rng.integers(0, 4, size=(40, 3))
    run = await tb.gemm(a, b, 2, 2, name="test_conv_refused_gemm", window=False, check_untouched=False)
    assert run.status == 0 and np.array_equal(run.c, golden.gemm(a, b, 2, 2, False, False, acc_width=cfg.acc_width))
    await run_conv(tb, base, "test_conv_refused")


def variants(tests: tuple[str, ...], *backpressure: bool) -> list[str]:
    return [f"{t}/backpressure={bp}" for t in tests for bp in backpressure]


#: The cocotb tests of each pytest runner: forward and weight-gradient calls (with the refused ones and a GEMM
#: call), input gradients.
TESTS = ("test_conv_fixed", "test_conv_random", "test_wgrad_fixed", "test_wgrad_random", "test_wgrad_prefetch",
         "test_conv_refused")
DGRAD_TESTS = ("test_dgrad_fixed", "test_dgrad_random")
#: The cocotb tests `make test` runs on Icarus (4-5x slower here than Verilator), with random back-pressure: every
#: op and kind of call -- forward calls, weight gradients cold and in prefetch chains, refusals, input gradients
#: at both strides -- but not the longest random sets (test_wgrad_random, 250 s there; test_dgrad_fixed, 240 s),
#: which Verilator runs on both geometries and the slow set on Icarus too.
ICARUS_QUICK = {"fwd": ("test_conv_fixed", "test_conv_random", "test_wgrad_fixed", "test_wgrad_prefetch",
                        "test_conv_refused"),
                "dgrad": ("test_dgrad_random",)}
#: (geometry, simulator, back-pressure variants, the cocotb tests: None for all).  Both simulators run cocotb tests
#: with random back-pressure; Icarus runs the rest, and the variants without back-pressure (the same calls, no
#: stalls: the cycle checks, which Verilator makes too), only when slow tests are asked for, as the GEMM runners do
#: (test_cpt_gemm.py).
SLOW = pytest.mark.slow
RUNS = [pytest.param("sim_conv", "icarus", (True,), "quick", id="sim_conv-icarus-bp"),
        pytest.param("sim_conv", "verilator", (False, True), None, id="sim_conv-verilator"),
        pytest.param("simwide_conv", "verilator", (False, True), None, id="simwide_conv-verilator"),
        pytest.param("sim_conv", "icarus", (True,), "rest", id="sim_conv-icarus-bp-rest", marks=SLOW),
        pytest.param("sim_conv", "icarus", (False,), None, id="sim_conv-icarus-nobp", marks=SLOW),
        pytest.param("simwide_conv", "icarus", (False, True), None, id="simwide_conv-icarus", marks=SLOW)]


def chosen(every: tuple[str, ...], op: str, subset: str | None) -> tuple[str, ...]:
    """The cocotb tests of a runner: all of ``every``, Icarus' quick ones (ICARUS_QUICK[op]) or the rest."""
    if subset is None:
        return every
    quick = ICARUS_QUICK[op]
    return tuple(t for t in every if (t in quick) == (subset == "quick"))


def mark_hits(records: list[dict]) -> list[dict]:
    """Each record of a call that ran gets "hit": whether it found its chunks loaded by the previous call's hint
    (prefetch_hit of the call recorded before it in the same cocotb test; a refused call in between ends the hint)."""
    previous, test = None, None
    for r in records:
        if r["name"] != test:
            previous, test = None, r["name"]
        if r.get("op") == "refused" or "call" not in r:
            previous = None
            continue
        call = ConvCall(**r["call"])
        r["hit"] = prefetch_hit(previous, call)
        previous = call
    return records


def off_the_model(cfg: HardwareConfig, records: list[dict]) -> list[tuple[str, int, int]]:
    """(name, twin's cycles, the conv cycle model's) of each recorded call where the two differ (records that went
    through mark_hits)."""
    both = [(r["name"], r["cycles"], twin_cycles(cfg, ConvCall(**r["call"]), hit=r["hit"])) for r in records]
    return [b for b in both if b[1] != b[2]]


@pytest.mark.sim
@pytest.mark.parametrize("geometry, simulator, backpressure, subset", RUNS)
def test_cpt_gemm_conv(simulator: str, geometry: str, backpressure: tuple[bool, ...], subset: str | None) -> None:
    """Forward and weight-gradient conv calls on the twin, bit-exact against the emulator; refused calls; a GEMM
    call of a config with the engine.  ``backpressure``: the cocotb tests' variants run; ``subset``: see RUNS."""
    from sim.cpt_gemm.test_cpt_gemm import compare_with_model  # here: its cocotb tests stay out of this module
    tests = variants(chosen(TESTS, "fwd", subset), *backpressure)
    v = len(backpressure)
    result = runner.run(config(geometry), simulator, __file__, testcase=tests)
    assert len(result.tests) == len(tests), f"{len(result.tests)} of {len(tests)} cocotb tests ran"
    mark_hits(result.records)
    if subset is not None:  # every call was checked bit-exact in its cocotb test; the counts below are of all tests
        names = {r["name"].split("/")[0] for r in result.records if r.get("op") in ("fwd", "wgrad")}
        assert names >= {t for t in chosen(TESTS, "fwd", subset) if t != "test_conv_refused"}, names
        return
    ran = [r for r in result.records if r.get("op") == "fwd"]
    assert len(ran) >= v * (9 + 16 + 1 + 2) and all(r["cycles"] > 0 for r in ran)
    assert {(r["stride"], r["padding"], r["kh"]) for r in ran} >= {(s, p, k) for s in (1, 2) for p in (0, 1)
                                                                   for k in (1, 3)}
    wgrad = [r for r in result.records if r.get("op") == "wgrad"]
    assert len(wgrad) == v * (12 + 16 + 2 * 12 + 2) and all(r["cycles"] > 0 for r in wgrad)
    assert {(r["stride"], r["padding"], r["kh"]) for r in wgrad} >= {(s, p, k) for s in (1, 2) for p in (0, 1)
                                                                     for k in (1, 3)} - {(2, 1, 1)}
    # int16 results: the fixed calls' and random ones' (each back-pressure variant)
    assert sum(r["c16"] for r in ran) >= v * (2 + 2) and sum(r["c16"] for r in wgrad) >= v, "too few C16 calls"
    assert sum(r["sums"] for r in ran) >= v * (6 + 2), "too few forward calls with the code sums (SUMS)"
    assert sum(r["sums"] for r in wgrad) >= v * (6 + 13) + 2 * v, "too few weight gradients with the code sums"
    if False in backpressure:  # the cycle checks need calls without stalls
        # a GEMM call (op 0) of a config with the engine takes the cycles of interface 3's model
        gemm = [r for r in result.records if "op" not in r and not r["backpressure"]]
        assert gemm and not compare_with_model(config(geometry), gemm)
        # a forward call, with its code sums (SUMS) or without, takes the cycles of the conv cycle model, exactly
        plain = [r for r in ran if not r["backpressure"]]
        assert sum(not r["sums"] for r in plain) >= 5 + 6 and sum(r["sums"] for r in plain) >= 6 + 2
        off = off_the_model(config(geometry), plain)
        assert not off, f"{len(off)} of {len(plain)} forward calls off the conv cycle model: {off[:5]}"
        # a weight gradient, with SUMS or without, cold or a hit, with a hint or without, likewise
        plain = [r for r in wgrad if not r["backpressure"]]
        assert sum(r["hit"] and not r["sums"] for r in plain) >= 2 and sum(r["hit"] and r["sums"] for r in plain) >= 2
        off = off_the_model(config(geometry), plain)
        assert not off, f"{len(off)} of {len(plain)} weight gradients off the conv cycle model: {off[:5]}"
        # a refused conv call: cpt_conv_setup, then cpt_setup, whatever was wrong
        refused = {r["cycles"] for r in result.records if r.get("op") == "refused" and not r["backpressure"]}
        assert refused == {CONV_SETUP_CYCLES + setup_cycles(config(geometry))}, refused


@pytest.mark.sim
def test_cpt_gemm_conv_sums_on_a_64_bit_bus() -> None:
    """Forward calls with their code sums (SUMS) where a beat holds two sums (zc706's 64-bit bus; the other
    geometries' is 32 bits): runs of sums that start and end inside a beat, bit-exact; both back-pressure variants,
    Verilator; without back-pressure, every call's cycles are the conv cycle model's."""
    tests = variants(("test_conv_fixed", "test_conv_random"), False, True)
    result = runner.run(config("simwide64_conv"), "verilator", __file__, testcase=tests)
    assert len(result.tests) == len(tests), f"{len(result.tests)} of {len(tests)} cocotb tests ran"
    summed = [r for r in result.records if r.get("op") == "fwd" and r["sums"]]
    assert len(summed) >= 2 * (6 + 2), "too few forward calls with the code sums"
    plain = [r for r in mark_hits(result.records) if r.get("op") == "fwd" and not r["backpressure"]]
    off = off_the_model(config("simwide64_conv"), plain)
    assert not off, f"{len(off)} of {len(plain)} forward calls off the conv cycle model: {off[:5]}"


@pytest.mark.sim
@pytest.mark.parametrize("geometry, simulator, backpressure, subset", RUNS)
def test_cpt_gemm_conv_dgrad(simulator: str, geometry: str, backpressure: tuple[bool, ...], subset: str | None) -> None:
    """Input-gradient conv calls at stride 1 and 2 on the twin, bit-exact against the emulator.
    ``backpressure``: the cocotb tests' variants run; ``subset``: see RUNS."""
    tests = variants(chosen(DGRAD_TESTS, "dgrad", subset), *backpressure) \
        + (["test_dgrad_sizes"] if simulator == "verilator" else [])
    v = len(backpressure)
    result = runner.run(config(geometry), simulator, __file__, testcase=tests)
    assert len(result.tests) == len(tests), f"{len(result.tests)} of {len(tests)} cocotb tests ran"
    if subset is not None:  # bit-exact in its cocotb tests; the counts below are of all tests
        strides = {r["stride"] for r in result.records if r.get("op") == "dgrad"}
        assert strides == {1, 2} or subset == "rest", f"input gradients at strides {strides} only"
        return
    dgrad = [r for r in result.records if r.get("op") == "dgrad" and not r["name"].startswith("test_dgrad_sizes")]
    assert len(dgrad) == v * (9 + len(stride2_dgrad(config(geometry))) + 16) and all(r["cycles"] > 0 for r in dgrad)
    assert {(r["stride"], r["padding"], r["kh"]) for r in dgrad} >= {(s, p, k) for s in (1, 2) for p in (0, 1)
                                                                     for k in (1, 3)}
    assert sum(r["stride"] == 2 for r in dgrad if r["name"].startswith("test_dgrad_random")) >= v
    assert sum(r["c16"] for r in dgrad) >= v * 2, "too few C16 calls"
    if False in backpressure:  # an input gradient takes the cycles of the conv cycle model, exactly
        plain = [r for r in mark_hits(result.records) if r.get("op") == "dgrad" and not r["backpressure"]]
        assert sum(r["stride"] == 2 for r in plain) >= 5, "too few stride-2 input gradients"
        off = off_the_model(config(geometry), plain)
        assert not off, f"{len(off)} of {len(plain)} input gradients off the conv cycle model: {off[:5]}"


#: The cocotb tests whose calls the cycles table lists, by op (without back-pressure; test_dgrad_sizes has none).
TABLE_TESTS = {"fwd": ("test_conv_fixed", "test_conv_random"), "dgrad": (*DGRAD_TESTS, "test_dgrad_sizes"),
               "wgrad": ("test_wgrad_fixed", "test_wgrad_random")}


def cycles_table(geometry: str, simulator: str = "verilator", op: str = "fwd") -> str:
    """The calls of one op (its TABLE_TESTS) without back-pressure: the twin's cycles next to the design's model
    (emu_conv.call_cycles) and the HLS kernel's busy count, as a markdown table (geometry in forward terms:
    batch x C x H x W -> K), with the ratio's spread per stride."""
    tests = [t if t == "test_dgrad_sizes" else f"{t}/backpressure=False" for t in TABLE_TESTS[op]]
    result = runner.run(config(geometry), simulator, __file__, testcase=tests)
    lines = ["| call | M | twin | model | twin / model | HLS busy |", "|---|---:|---:|---:|---:|---:|"]
    ratios: dict[int, list[float]] = {1: [], 2: []}
    for r in (r for r in result.records if r.get("op") == op and r["name"].split("/")[0] in TABLE_TESTS[op]):
        band = f" band {r['band'][0]}+{r['band'][1]}" if r["band"] != [0, 0] else ""
        ratios[r["stride"]].append(r["cycles"] / r["model_cycles"])
        lines.append(f"| {r['batch']}x{r['c']}x{r['h']}x{r['w']} -> {r['k']} {r['kh']}x{r['kw']}/{r['stride']} "
                     f"p{r['padding']}{band} ({r['a_bits']},{r['b_bits']}) | {r['m']} | {r['cycles']} | "
                     f"{r['model_cycles']} | {r['cycles'] / r['model_cycles']:.2f} | {r['hls_cycles']} |")
    lines.append("")
    for stride, rs in ratios.items():
        if rs:
            rs.sort()
            lines.append(f"stride {stride}: {len(rs)} calls; twin / model: min {rs[0]:.2f}, "
                         f"median {rs[len(rs) // 2]:.2f}, max {rs[-1]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m sim.cpt_gemm.test_cpt_gemm_conv sim_conv [fwd|dgrad|wgrad]
    import sys

    args = sys.argv[1:] + ["sim_conv", "fwd"][len(sys.argv) - 1:]
    print(cycles_table(args[0], op=args[1]))
