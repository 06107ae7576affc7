"""The emulated device's convolution calls (interface 4): read row-plane tensors, compute with golden, write C.

:func:`execute` runs one legal conv call (status 0 by :func:`cpt_hw.hw.conv_calls.conv_status`) over the byte
views of the ranges :func:`cpt_hw.hw.conv_calls.operand_ranges` names, exactly as docs/architecture.md lays
them out: it unpacks only the bytes those ranges hold (rows outside them read as zeros, so a layout or window
mistake shows up as a wrong result), computes with ``cpt_hw.hw.golden`` (bit-exact) and writes int32, or int16
with C16, in today's C layout, and the code sums with SUMS.

**Cycles are the design's model, not a measurement**: :func:`call_cycles` is ``cpt_hw.hw.conv_model.estimate``
of the call (a square kernel of side max(kh, kw); a band costs its share of the whole images), with the
exposed first load removed when a weight-gradient call hits the previous call's prefetch hint.  No hardware
checks it yet: the HLS kernel's C-simulated ``cycles`` is a busy count of its own (``hls_cycles.conv_cycles``).
"""

from __future__ import annotations

import math

import numpy as np

from cpt_driver import layout

from . import golden
from .config import HardwareConfig
from .conv_calls import ConvArgs, channel_pitch, unpack_tensor_rows
from .conv_model import ConvDesign, estimate
from .cycle_model import MemoryTiming


def _weights_fwd(b: np.ndarray, g: ConvArgs, signed: bool, d: int) -> np.ndarray:
    """(K, C, kh, kw) from the B layout with K = kh kw Cp (tap-major, channel-minor)."""
    cp = channel_pitch(g.c, d)
    kred = g.kh * g.kw * cp
    vals = layout.unpack_rows(b.reshape(g.k, g.b_bits, -1), g.b_bits, signed, kred)
    return vals.reshape(g.k, g.kh, g.kw, cp)[..., :g.c].transpose(0, 3, 1, 2)


def _weights_dgrad(b: np.ndarray, g: ConvArgs, signed: bool, d: int) -> np.ndarray:
    """(K, C, kh, kw) from the rotated weights stored phase by phase: phase (ry, rx) is a B operand of C
    columns with K = |taps_i| |taps_j| Cp(K), rows (tap i, tap j, k) in the phase's tap order."""
    cp = channel_pitch(g.k, d)
    w = np.zeros((g.k, g.c, g.kh, g.kw), dtype=np.int64)
    offset = 0
    for ti, tj in g.phases():
        kred = len(ti) * len(tj) * cp
        nbytes = g.c * g.b_bits * -(-kred // d) * d // 8
        if kred:
            vals = layout.unpack_rows(b[offset:offset + nbytes].reshape(g.c, g.b_bits, -1), g.b_bits, signed, kred)
            block = vals.reshape(g.c, len(ti), len(tj), cp)[..., :g.k]          # (C, i, j, K)
            w[:, :, np.ix_(ti, tj)[0], np.ix_(ti, tj)[1]] = block.transpose(3, 0, 1, 2)
        offset += nbytes
    return w


def execute(cfg: HardwareConfig, g: ConvArgs, a_mem: np.ndarray, b_mem: np.ndarray, c_mem: np.ndarray,
            sums_mem: np.ndarray | None) -> None:
    """Compute the call and write C (and the sums) into the memory views."""
    d = cfg.dot_width
    a_signed, b_signed = g.flag("A_SIGNED"), g.flag("B_SIGNED")
    r0, r1 = g.band0, g.band0 + g.rows
    if g.op == "dgrad":
        e = unpack_tensor_rows(a_mem, g, g.a_bits, a_signed, g.k, g.ho, g.wo, g.a_rows(), d)
        w = _weights_dgrad(b_mem, g, b_signed, d)
        dx = golden.conv2d_input((g.batch, g.c, g.h, g.w), w, e, w_bits=g.b_bits, e_bits=g.a_bits, stride=g.stride,
                                 padding=g.padding, w_signed=b_signed, e_signed=a_signed, max_kernel=cfg.max_kernel)
        result = dx[:, :, r0:r1, :].transpose(0, 2, 3, 1).reshape(-1, g.c)
    else:
        x = unpack_tensor_rows(a_mem, g, g.a_bits, a_signed, g.c, g.h, g.w, g.a_rows(), d)
        if g.op == "fwd":
            w = _weights_fwd(b_mem, g, b_signed, d)
            y = golden.conv2d(x, w, x_bits=g.a_bits, w_bits=g.b_bits, stride=g.stride, padding=g.padding,
                              x_signed=a_signed, w_signed=b_signed, max_kernel=cfg.max_kernel)
            result = y[:, :, r0:r1, :].transpose(0, 2, 3, 1).reshape(-1, g.k)
        else:
            e = unpack_tensor_rows(b_mem, g, g.b_bits, b_signed, g.k, g.ho, g.wo, (r0, r1), d)
            dw = golden.conv2d_weight(x, (g.k, g.c, g.kh, g.kw), e, x_bits=g.a_bits, e_bits=g.b_bits,
                                      stride=g.stride, padding=g.padding, x_signed=a_signed, e_signed=b_signed,
                                      max_kernel=cfg.max_kernel)
            result = dw.transpose(2, 3, 1, 0).reshape(-1, g.k)                   # rows (i, j, c): dW^T
    stride = -(-g.n_cols // cfg.cols) * cfg.cols
    out = c_mem.view("<i2" if g.flag("C16") else "<i4").reshape(g.m, stride)
    out[:, g.n_cols:] = 0
    np.copyto(out[:, :g.n_cols], result, casting="unsafe")
    if sums_mem is not None:
        sums_mem.view("<i4")[:] = _sums(g, x, w if g.op == "fwd" else e, r0, r1)


def _sums(g: ConvArgs, x: np.ndarray, other: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """The code sums of SUMS (docs/architecture.md, "Code sums"), as :meth:`ConvArgs.sums_count` orders them."""
    kw = {"stride": g.stride, "padding": g.padding}
    if g.op == "fwd":
        ones = np.ones((1, g.c, g.kh, g.kw), dtype=np.int64)
        window = golden.conv2d(x, ones, x_bits=g.a_bits, w_bits=1, x_signed=g.flag("A_SIGNED"), **kw)
        rows = window[:, 0, r0:r1, :].reshape(-1)
        columns = other.sum(axis=1).reshape(-1)                                  # (K, kh, kw): K-major
        return np.concatenate([rows, columns])
    e_mask = np.zeros((g.batch, 1, g.ho, g.wo), dtype=np.int64)
    e_mask[:, :, r0:r1, :] = 1
    rows = golden.conv2d_weight(x, (1, g.c, g.kh, g.kw), e_mask, x_bits=g.a_bits, e_bits=1,
                                x_signed=g.flag("A_SIGNED"), **kw)[0].transpose(1, 2, 0).reshape(-1)
    x_ones = np.ones((g.batch, 1, g.h, g.w), dtype=np.int64)
    border = golden.conv2d_weight(x_ones, (g.k, 1, g.kh, g.kw), other, x_bits=1, e_bits=g.b_bits,
                                  e_signed=g.flag("B_SIGNED"), **kw)[:, 0].transpose(1, 2, 0).reshape(-1)
    return np.concatenate([rows, border])                                        # (tap, c) then (tap, K)


def call_cycles(cfg: HardwareConfig, g: ConvArgs, prefetched: bool = False,
                timing: MemoryTiming = MemoryTiming()) -> int:
    """The design's predicted cycles of one legal conv call (conv_model; not yet checked against a twin)."""
    design = ConvDesign.for_config(cfg, sums=g.flag("SUMS"), narrow_results=g.flag("C16"))
    est = estimate(cfg, g.op, g.model_shape(), g.a_bits, g.b_bits, design=design, timing=timing)
    cycles = est.cycles
    if g.rows != g.rows_per_image:   # a band: its share of the whole images' call
        cycles = math.ceil(cycles * g.rows / g.rows_per_image)
    if prefetched:                   # its X and E came in during the previous call (the chain's overlap)
        cycles -= timing.read_latency + math.ceil(est.read_bytes / (cfg.axi_data_width // 8))
    return max(cycles, 1)
