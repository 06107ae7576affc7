"""Convolution calls (interface 4) for the HLS kernel's C simulation, placed in a :class:`Workload`.

:func:`add_conv` places random codes as row-plane tensors (``conv_model.pack_tensor``) and weights in the B
layout (``cpt_driver.rowplanes``: forward K = kh kw Cp, the input gradient's rotated weights phase by phase),
and records the call with the status :func:`cpt_hw.hw.conv_calls.conv_status` gives; what a legal call must
write is computed when the expected image is built (:func:`cpt_hw.gen.hls_vectors.conv_result`, i.e.
``cpt_hw.hw.emu_conv`` on the same bytes).  :data:`REFUSED_CONV` are register changes every one of which
the rules refuse; a refused call must leave memory untouched.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from cpt_driver import rowplanes

from ..errors import CptHwError
from ..hw import golden
from ..hw.calls import ConvCall
from ..hw.config import HardwareConfig
from ..hw.conv_calls import ConvArgs, conv_status, encode_conv, operand_ranges
from ..hw.conv_model import pack_tensor
from ..hw.regmap import CONV_FLAG_BITS, FLAG_BITS
from .hls_vectors import Expected, Workload, flags_word


def _codes(w: Workload, shape: tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    lo, hi = golden.operand_range(bits, signed)
    return w.rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


def _weights(cfg: HardwareConfig, op: str, wt: np.ndarray, bits: int, stride: int, padding: int) -> np.ndarray:
    d = cfg.dot_width
    rows = [rowplanes.fwd_weight_rows(wt, d)] if op == "fwd" else rowplanes.dgrad_weight_rows(wt, stride, padding, d)
    out = np.zeros(rowplanes.weight_bytes(rows, bits, d), dtype=np.uint8)
    rowplanes.pack_weights_into(rows, bits, d, out)
    return out


def conv_call(w: Workload, op: str, batch: int, c: int, k: int, h: int, w_: int, kh: int, kw: int, stride: int,
              padding: int, a_bits: int, b_bits: int, a_signed: bool, b_signed: bool, *, band: tuple[int, int] = (0, 0),
              c16: bool = False, sums: bool = False, window: str = "tight") -> ConvCall:
    """Place the operands of a conv call (random codes) and return its registers (not yet recorded); with
    ``sums`` the call sets SUMS and gets a code-sum area after its C area (canaries around both)."""
    cfg = w.cfg
    d = cfg.dot_width
    conv = encode_conv(op, kh, kw, stride, padding)
    flags = flags_word(a_signed, b_signed) | (int(c16) << CONV_FLAG_BITS["C16"]) | (int(sums) << CONV_FLAG_BITS["SUMS"])
    regs = ConvCall(0, 0, 0, 0, 0, 0, a_bits, b_bits, flags, 0, 0, conv=conv, batch=batch, channels=c | k << 16,
                    size=h | w_ << 16, band=band[0] | band[1] << 16)
    g = ConvArgs.decode(regs)
    ho, wo = max(g.ho, 1), max(g.wo, 1)
    wt = _codes(w, (k, c, kh, kw), b_bits if op != "wgrad" else a_bits, b_signed)
    if op == "fwd":
        a = pack_tensor(_codes(w, (batch, c, h, w_), a_bits, a_signed), a_bits, d)
        b = _weights(cfg, op, wt, b_bits, stride, padding)
    elif op == "dgrad":
        a = pack_tensor(_codes(w, (batch, k, ho, wo), a_bits, a_signed), a_bits, d)
        b = _weights(cfg, op, wt, b_bits, stride, padding)
    else:
        a = pack_tensor(_codes(w, (batch, c, h, w_), a_bits, a_signed), a_bits, d)
        b = pack_tensor(_codes(w, (batch, k, ho, wo), b_bits, b_signed), b_bits, d)
    a_addr, b_addr = w._place(a), w._place(b if b.size else np.zeros(d // 8, np.uint8))
    c_addr = w._alloc(max(g.c_bytes(cfg.cols), 1))
    sums_addr = w._alloc(4 * g.sums_count()) if sums else 0
    regs = replace(regs, a=a_addr, b=b_addr, c=c_addr, sums=sums_addr)
    if g.kh and g.kw and g.stride in (1, 2) and g.padding in (0, 1) and g.ho >= 1 and g.wo >= 1 and \
            g.band0 < g.rows_per_image and g.band0 + g.rows <= g.rows_per_image:
        ranges = [(x, n) for x, n in operand_ranges(cfg, regs, g) if n]
    else:
        ranges = [(a_addr, a.size), (b_addr, b.size), (c_addr, 0)]
    lo, hi = min(x for x, _ in ranges), max(x + n for x, n in ranges)
    if window == "loose":
        lo -= int(w.rng.integers(0, lo + 1))
        hi += int(w.rng.integers(0, 4096))
    return replace(regs, win_base=lo, win_limit=hi)


def add_conv(w: Workload, *args: object, note: str = "", **kw: object) -> ConvCall:
    """A legal conv call (see :func:`conv_call`), recorded with the result it must write."""
    call = conv_call(w, *args, **kw)  # type: ignore[arg-type]
    status = conv_status(w.cfg, call)
    if status:
        raise CptHwError(f"workload conv call {note!r}: refused (status 0x{status:x}) but meant to run")
    w.expected.append(Expected(call, 0, note, None, conv=True))
    return call


def add_refused_conv(w: Workload, call: ConvCall, note: str) -> ConvCall:
    """A conv call the rules refuse: it must return its status and write nothing."""
    status = conv_status(w.cfg, call)
    if not status:
        raise CptHwError(f"workload conv call {note!r}: legal, but meant to be refused")
    w.expected.append(Expected(call, status, note, None))
    return call


def _flag(name: str) -> int:
    return 1 << {**FLAG_BITS, **CONV_FLAG_BITS}[name]


#: (name, change of a legal forward 3x3 call's registers): each is refused by conv_calls' rules.
REFUSED_CONV: tuple[tuple[str, Callable[[HardwareConfig, ConvCall], dict[str, int]]], ...] = (
    ("op wgrad with SUMS on dgrad", lambda cfg, c: {"conv": c.conv & ~3 | 2, "flags": c.flags | _flag("SUMS")}),
    ("stride 3", lambda cfg, c: {"conv": c.conv & ~(3 << 12) | 3 << 12}),
    ("padding 2", lambda cfg, c: {"conv": c.conv & ~(3 << 14) | 2 << 14}),
    ("kernel > max_kernel", lambda cfg, c: {"conv": c.conv & ~(0xF << 4) | (cfg.max_kernel + 1) << 4}),
    ("kernel 0", lambda cfg, c: {"conv": c.conv & ~(0xF << 8)}),
    ("reserved conv bit", lambda cfg, c: {"conv": c.conv | 1 << 20}),
    ("band outside the image", lambda cfg, c: {"band": 1 | 64 << 16}),
    ("band start past the last row", lambda cfg, c: {"band": 200}),
    ("batch 0", lambda cfg, c: {"batch": 0}),
    ("batch > max_dim", lambda cfg, c: {"batch": cfg.max_dim + 1}),
    ("channels 0", lambda cfg, c: {"channels": c.channels & 0xFFFF0000}),
    ("kernel larger than the padded input", lambda cfg, c: {"size": 1 | 1 << 16, "conv": c.conv & ~(3 << 14)}),
    ("reduction > k_max", lambda cfg, c: {"channels": (c.channels & 0xFFFF0000) | cfg.k_max}),
    ("a_bits 0", lambda cfg, c: {"a_bits": 0}),
    ("b_bits > operand_bits", lambda cfg, c: {"b_bits": cfg.operand_bits + 1}),
    ("C16 beyond int16", lambda cfg, c: {"flags": c.flags | _flag("C16"), "a_bits": 8, "b_bits": 8}),
    ("line buffer too small", lambda cfg, c: {"size": (c.size & 0xFFFF) | 4000 << 16, "a_bits": 8}),
    ("wgrad chunk positions > k_max", lambda cfg, c: {"conv": encode_conv("wgrad", 1, 1, 2, 0), "batch": 60,
                                                      "channels": 64 | 1 << 16, "size": 16 | 16 << 16}),
    ("misaligned a", lambda cfg, c: {"a": c.a + 1}),
    ("misaligned c", lambda cfg, c: {"c": c.c + 2}),
    ("misaligned sums", lambda cfg, c: {"flags": c.flags | _flag("SUMS"), "sums": c.c + 1}),
    ("prefetch on a forward call", lambda cfg, c: {"flags": c.flags | _flag("PREFETCH_B")}),
    ("unknown flag", lambda cfg, c: {"flags": c.flags | 1 << 7}),
    ("window ends one byte early", lambda cfg, c: {"win_limit": _c_end(cfg, c) - 1}),
    ("window starts one byte late", lambda cfg, c: {"win_base": c.a + 1}),
    ("window misses the weights", lambda cfg, c: {"win_base": c.b + cfg.word_bytes}),
    ("window misses a halo row", lambda cfg, c: {"band": 1 | 1 << 16, "win_base": c.a + _row_bytes(cfg, c)}),
    ("window misses the sums", lambda cfg, c: {"flags": c.flags | _flag("SUMS"), "sums": c.win_limit}),
    ("dims and window", lambda cfg, c: {"batch": 0, "win_limit": 0, "a": c.a + 4}),
    ("everything", lambda cfg, c: {"conv": c.conv | 3 << 12, "batch": 0, "a_bits": 9 + cfg.operand_bits,
                                   "a": c.a + 1, "flags": 0xFF}),
)


def _c_end(cfg: HardwareConfig, c: ConvCall) -> int:
    return c.c + ConvArgs.decode(c).c_bytes(cfg.cols)


def _row_bytes(cfg: HardwareConfig, c: ConvCall) -> int:
    g = ConvArgs.decode(c)
    return g.a_bits * rowplanes.row_words(g.w, g.c, cfg.dot_width) * cfg.word_bytes


def refused_conv_workload(cfg: HardwareConfig, seed: int) -> Workload:
    """Every case of :data:`REFUSED_CONV` on a fresh legal forward call (3x3, pad 1, 8x8, C = 8), then a legal call."""
    w = Workload(cfg, seed=seed)
    for name, change in REFUSED_CONV:
        base = conv_call(w, "fwd", 2, 8, 5, 8, 8, 3, 3, 1, 1, 3, 2, False, True)
        add_refused_conv(w, replace(base, **change(cfg, base)), name)
    add_conv(w, "fwd", 2, 8, 5, 8, 8, 3, 3, 1, 1, 3, 2, False, True, note="legal conv call after refusals")
    return w


#: The geometries the random suites draw from (issue 17's list).
CHANNELS = (3, 8, 16, 64)
SIZES = (4, 8, 16)
KERNELS = (1, 3)


def random_conv_workload(cfg: HardwareConfig, seed: int, calls: int, ops: tuple[str, ...] = ("fwd", "dgrad", "wgrad"),
                         max_batch: int = 2) -> Workload:
    """``calls`` legal conv calls of random geometry (channels, sizes, 1x1/3x3, stride 1/2, padding 0/1, bits
    1..8 signed/unsigned, a band now and then, C16 where it is legal, SUMS in about half of the forward and
    weight-gradient calls), cycling through ``ops``; a drawn
    geometry the rules refuse (reduction > k_max, buffers) is drawn again."""
    w = Workload(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    top = min(8, cfg.operand_bits)
    made = 0
    while made < calls:
        op = ops[made % len(ops)]
        c, k = int(rng.choice(CHANNELS)), int(rng.choice(CHANNELS + (1, 5)))
        h = int(rng.choice(SIZES))
        kk, s, p = int(rng.choice(KERNELS)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
        ab, bb = int(rng.integers(1, top + 1)), int(rng.integers(1, top + 1))
        a_signed, b_signed = bool(rng.integers(2)), bool(rng.integers(2))
        batch = int(rng.integers(1, max_batch + 1))
        probe = ConvCall(0, 0, 0, 0, 0, 0, ab, bb, 0, 0, 1 << 62, conv=encode_conv(op, kk, kk, s, p), batch=batch,
                         channels=c | k << 16, size=h | h << 16)
        g = ConvArgs.decode(probe)
        rows = g.rows_per_image if g.ho >= 1 else 0
        band = (0, 0)
        if rows > 2 and rng.integers(3) == 0:
            r0 = int(rng.integers(0, rows - 1))
            band = (r0, int(rng.integers(1, rows - r0 + 1)))
        c16 = bool(rng.integers(2))
        sums = op != "dgrad" and bool(rng.integers(2))  # code sums in about half the calls that may have them
        for flags in (c16, False):
            regs = replace(probe, band=band[0] | band[1] << 16, flags=int(flags) << CONV_FLAG_BITS["C16"])
            if conv_status(cfg, regs) == 0:
                note = (f"{op} {batch}x{c}x{h}x{h} -> {k} {kk}x{kk}/{s} p{p} {ab}x{bb} band {band}"
                        f"{' C16' if flags else ''}{' SUMS' if sums else ''}")
                add_conv(w, op, batch, c, k, h, h, kk, kk, s, p, ab, bb, a_signed, b_signed, band=band, c16=flags,
                         sums=sums, window=("tight", "loose")[int(rng.integers(2))], note=note)
                made += 1
                break
    return w
