"""The Verilog twin's conv-call rule (conv_calls.conv_status with twin=True) and the arithmetic its setup uses.

The twin runs forward calls, input gradients (at stride 2 phase by phase) and weight gradients of whole images
(SUMS in forward and weight-gradient calls); its status must equal the emulator's on every such call whose rows fit
its former, which holds because the generator renders the twin only when no such call can overflow the tensor buffer
(cpt_hw.gen.rtl.twin_line_buffer_bound; for weight gradients the twin's X-chunk limit is the design's check with
every row of the image counted, twin_wgrad_buf_words words of D bits in half of it).  rtl/cpt_conv_setup.v finds
the input rows a band reaches from two candidate output rows at each end; the transliteration here checks that one
step inwards always suffices.  An input gradient runs as a forward convolution of E (Ho x Wo, K channels) with the
rotated kernel, the im2col former's row and column offsets being kh - 1 - padding and kw - 1 - padding (-1..2), so
the same arithmetic serves it with that offset in place of the padding.  At stride 2 each phase (ry, rx) is
such a walk with its own taps, offsets, pixels and E rows; setup_phases transliterates how the setup derives
them, checked here against ConvArgs.phases and a_rows for every band of every small geometry.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cpt_hw.gen.rtl import twin_line_buffer_bound
from cpt_hw.hw.calls import ConvCall
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.conv_calls import (TWIN_WGRAD_BANK_WORDS, ConvArgs, conv_status, encode_conv, twin_row_bits,
                                  twin_wgrad_bank_words, twin_wgrad_buf_words)
from cpt_hw.hw.conv_model import channel_pitch
from cpt_hw.hw.golden import conv_output_size
from cpt_hw.hw.regmap import CONV_FLAG_BITS, CONV_STATUS_BITS, FLAG_BITS, STATUS_BITS

ERR = {name: 1 << bit for name, bit in {**STATUS_BITS, **CONV_STATUS_BITS}.items()}
C16 = 1 << CONV_FLAG_BITS["C16"]
SUMS = 1 << CONV_FLAG_BITS["SUMS"]
CONFIGS = [HardwareConfig.from_preset(p, {"conv_engine": True}) for p in ("sim", "zc706")]


def fwd_call(op: str = "fwd", batch: int = 2, c: int = 8, k: int = 5, h: int = 8, w: int = 8, kh: int = 3, kw: int = 3,
             stride: int = 1, padding: int = 1, a_bits: int = 3, b_bits: int = 2, flags: int = 0,
             band: tuple[int, int] = (0, 0)) -> ConvCall:
    return ConvCall(0, 0x1000, 0x8000, 0, 0, 0, a_bits, b_bits, flags, 0, 1 << 40,
                    conv=encode_conv(op, kh, kw, stride, padding), batch=batch, channels=c | k << 16,
                    size=h | w << 16, band=band[0] | band[1] << 16)


def dgrad_call(c: int = 5, k: int = 8, a_bits: int = 8, b_bits: int = 3, **fields) -> ConvCall:
    """An input-gradient call (8-bit E, 3-bit weights unless given); the other fields as fwd_call's."""
    return fwd_call("dgrad", c=c, k=k, a_bits=a_bits, b_bits=b_bits, **fields)


def band_rows(h: int, kh: int, s: int, p: int, o0: int, o1: int) -> tuple[int, int]:
    """rtl/cpt_conv_setup.v's [r_lo, r_hi): output rows o0 and o1 (inclusive), else their inner neighbours."""
    def hits(st: int) -> bool:
        return st + kh - 1 >= 0 and st <= h - 1

    st0, st1 = o0 * s - p, o1 * s - p
    lo = st0 if hits(st0) else st0 + s if o1 > o0 and hits(st0 + s) else None
    hi = st1 + kh - 1 if hits(st1) else st1 - s + kh - 1 if o1 > o0 and hits(st1 - s) else None
    if lo is None or hi is None:
        return 0, 0
    return max(lo, 0), min(hi, h - 1) + 1


def test_band_rows_one_step_suffices():
    checked = 0
    for h, kh, s, p in itertools.product(range(1, 11), (1, 2, 3), (1, 2), (0, 1)):
        ho = conv_output_size(h, kh, s, p)
        for o0 in range(max(ho, 0)):
            for rows in range(1, ho - o0 + 1):
                g = ConvArgs.decode(fwd_call(h=h, kh=kh, stride=s, padding=p, band=(o0, rows)))
                assert band_rows(h, kh, s, p, o0, o0 + rows - 1) == g.a_rows(), (h, kh, s, p, o0, rows)
                checked += 1
    assert checked == 1805


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_limits(cfg):
    legal = fwd_call()
    assert conv_status(cfg, legal, twin=True) == 0 == conv_status(cfg, legal)
    sums = 1 << CONV_FLAG_BITS["SUMS"]
    # forward calls and weight gradients take SUMS, their sums checked as the design checks them
    for make in (fwd_call, wgrad_call):
        assert conv_status(cfg, make(flags=sums), twin=True) == 0 == conv_status(cfg, make(flags=sums))
        for addr, err in ((2, "ERR_ALIGN"), (1 << 40, "ERR_WINDOW")):
            call = replace(make(flags=sums), sums=addr)
            assert conv_status(cfg, call, twin=True) == ERR[err] == conv_status(cfg, call)
        # the last aligned place for the sums inside the window: taken; one bus word further: ERR_WINDOW
        call, word = make(flags=sums), cfg.axi_data_width // 8
        end = (call.win_limit - 4 * ConvArgs.decode(call).sums_count()) // word * word
        assert conv_status(cfg, replace(call, sums=end), twin=True) == 0 == conv_status(cfg, replace(call, sums=end))
        assert conv_status(cfg, replace(call, sums=end + word), twin=True) == ERR["ERR_WINDOW"]
    # C16 as the design: run within int16, ERR_CONV beyond (fwd_call: kh kw C = 72 products)
    for bits, want in ((1, 0), (8, ERR["ERR_CONV"])):
        call = fwd_call(flags=C16, a_bits=bits, b_bits=bits)
        assert conv_status(cfg, call, twin=True) == want == conv_status(cfg, call)
    # C16 is checked where the emulator checks it: not when ERR_DIM is set
    assert conv_status(cfg, fwd_call(flags=C16, batch=0), twin=True) == ERR["ERR_DIM"]
    wide = twin_row_bits(cfg) // 8 + 1                       # C = 8: Cp = 8
    assert conv_status(cfg, fwd_call(w=wide, h=3, batch=1, a_bits=1)) == 0
    assert conv_status(cfg, fwd_call(w=wide, h=3, batch=1, a_bits=1), twin=True) == ERR["ERR_CONV"]
    assert conv_status(cfg, fwd_call(w=wide - 1, h=3, batch=1, a_bits=1), twin=True) == 0


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_equals_emulator_on_forward_calls_that_fit(cfg):
    """Random forward geometries (legal or not; SUMS now and then) with rows that fit the former: the
    twin's status is the emulator's (so the line-buffer check is never needed in the RTL)."""
    assert twin_line_buffer_bound(cfg) <= cfg.tensor_buffer_bits
    rng = np.random.default_rng(17)
    same = 0
    for _ in range(3000):
        c = int(rng.choice([1, 3, 8, 16, 64, 200, 512]))
        w = int(rng.integers(0, 2 * twin_row_bits(cfg) // channel_pitch(c, cfg.dot_width) + 2))
        call = fwd_call(batch=int(rng.integers(0, 4)), c=c, k=int(rng.integers(0, 70)), h=int(rng.integers(0, 300)),
                        w=w, kh=int(rng.integers(0, 5)), kw=int(rng.integers(0, 5)), stride=int(rng.integers(0, 4)),
                        padding=int(rng.integers(0, 3)), a_bits=int(rng.integers(0, 10)),
                        b_bits=int(rng.integers(1, 9)),
                        flags=int(rng.integers(0, 4)) | C16 * (rng.random() < 0.3) | SUMS * (rng.random() < 0.3),
                        band=(int(rng.integers(0, 4)), int(rng.integers(0, 4))) if rng.random() < 0.3 else (0, 0))
        if w * channel_pitch(c, cfg.dot_width) > twin_row_bits(cfg):
            continue
        assert conv_status(cfg, call, twin=True) == conv_status(cfg, call), call
        same += 1
    assert same > 1000


def test_dgrad_rows_one_step_suffices():
    """Every band of dX rows of every small stride-1 geometry: the setup's E rows (the forward arithmetic over
    E, its offset kh - 1 - padding in place of the padding) are ConvArgs.a_rows."""
    checked = 0
    for h, kh, p in itertools.product(range(1, 11), (1, 2, 3), (0, 1)):
        ho = conv_output_size(h, kh, 1, p)
        if ho < 1:
            continue
        for o0 in range(h):
            for rows in range(1, h - o0 + 1):
                g = ConvArgs.decode(dgrad_call(h=h, kh=kh, padding=p, band=(o0, rows)))
                assert band_rows(ho, kh, 1, kh - 1 - p, o0, o0 + rows - 1) == g.a_rows(), (h, kh, p, o0, rows)
                checked += 1
    assert checked == 1315


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_dgrad_limits(cfg):
    legal = dgrad_call()
    assert conv_status(cfg, legal, twin=True) == 0 == conv_status(cfg, legal)
    # stride 2 (the polyphase input gradient) runs; its errors are the emulator's
    assert conv_status(cfg, dgrad_call(stride=2), twin=True) == 0 == conv_status(cfg, dgrad_call(stride=2))
    bad = dgrad_call(stride=2, a_bits=0, flags=0xFF)
    assert conv_status(cfg, bad, twin=True) == conv_status(cfg, bad) != 0
    # an illegal stride field is checked as the emulator checks it
    for s in (0, 3):
        assert conv_status(cfg, dgrad_call(stride=s, a_bits=0), twin=True) == conv_status(cfg, dgrad_call(stride=s,
                                                                                                           a_bits=0))
    sums = 1 << CONV_FLAG_BITS["SUMS"]
    assert conv_status(cfg, dgrad_call(flags=sums), twin=True) == ERR["ERR_CONV"] == conv_status(cfg, dgrad_call(
        flags=sums))
    for bits, want in ((1, 0), (8, ERR["ERR_CONV"])):
        call = dgrad_call(flags=C16, a_bits=bits, b_bits=bits)
        assert conv_status(cfg, call, twin=True) == want == conv_status(cfg, call)
    # the former holds E's rows: Wo pixels of Cp(K) = 8 bits (3x3 pad 1: Wo = W)
    wide = twin_row_bits(cfg) // 8 + 1
    assert conv_status(cfg, dgrad_call(w=wide, h=3, batch=1, a_bits=1)) == 0
    assert conv_status(cfg, dgrad_call(w=wide, h=3, batch=1, a_bits=1), twin=True) == ERR["ERR_CONV"]
    assert conv_status(cfg, dgrad_call(w=wide - 1, h=3, batch=1, a_bits=1), twin=True) == 0
    # 3x3 pad 0: Wo = W - 2, so W may exceed the former's row by two pixels
    assert conv_status(cfg, dgrad_call(w=wide + 1, h=3, batch=1, a_bits=1, padding=0), twin=True) == 0


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_equals_emulator_on_stride1_dgrad_calls_that_fit(cfg):
    """Random stride-1 input-gradient geometries (legal or not): without SUMS and with E rows that fit
    the former, the twin's status is the emulator's."""
    assert twin_line_buffer_bound(cfg) <= cfg.tensor_buffer_bits
    rng = np.random.default_rng(23)
    same = 0
    for _ in range(3000):
        k = int(rng.choice([1, 3, 8, 16, 64, 200, 512]))
        kw, padding = int(rng.integers(0, 5)), int(rng.integers(0, 3))
        w = int(rng.integers(0, 2 * twin_row_bits(cfg) // channel_pitch(k, cfg.dot_width) + 2))
        call = dgrad_call(batch=int(rng.integers(0, 4)), c=int(rng.integers(0, 70)), k=k, h=int(rng.integers(0, 300)),
                          w=w, kh=int(rng.integers(0, 5)), kw=kw, stride=1, padding=padding,
                          a_bits=int(rng.integers(0, 10)), b_bits=int(rng.integers(1, 9)),
                          flags=int(rng.integers(0, 4)) | C16 * (rng.random() < 0.3),
                          band=(int(rng.integers(0, 4)), int(rng.integers(0, 4))) if rng.random() < 0.3 else (0, 0))
        if conv_output_size(w, kw, 1, padding) * channel_pitch(k, cfg.dot_width) > twin_row_bits(cfg):
            continue
        assert conv_status(cfg, call, twin=True) == conv_status(cfg, call), call
        same += 1
    assert same > 1000


def wgrad_call(c: int = 5, k: int = 8, a_bits: int = 3, b_bits: int = 8, **fields) -> ConvCall:
    """A weight-gradient call (3-bit X, 8-bit E unless given); the other fields as fwd_call's."""
    return fwd_call("wgrad", c=c, k=k, a_bits=a_bits, b_bits=b_bits, **fields)


def formers_take(cfg: HardwareConfig, call: ConvCall) -> bool:
    """The weight gradients the twin's formers take (docs/registers.md, "The Verilog twin"), from the fields as
    written (a geometry the rule refuses anyway may pass)."""
    g = ConvArgs.decode(call)
    d = cfg.dot_width
    if min(g.batch, g.c, g.k, g.h, g.w, g.kh, g.kw, g.stride) < 1 or g.ho < 1 or g.wo < 1:
        return True
    cp_x, cp_e = channel_pitch(g.c, d), channel_pitch(g.k, d)
    buf = twin_wgrad_buf_words(cfg)
    return (g.band0 == 0 and g.band_rows in (0, g.ho) and not (g.kh == 1 and g.stride == 2 and g.padding == 1)
            and g.w <= d and g.wo <= d and cp_x & (cp_x - 1) == 0 and cp_e & (cp_e - 1) == 0
            and max(g.w * cp_x, g.wo * cp_e) <= twin_row_bits(cfg)
            and g.batch * g.a_bits * g.c * -(-g.h * g.w // d) <= buf
            and max(twin_wgrad_bank_words(d, g.batch, g.h, g.w, g.c, g.a_bits),
                    twin_wgrad_bank_words(d, g.batch, g.ho, g.wo, g.k, g.b_bits)) <= TWIN_WGRAD_BANK_WORDS)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_wgrad_limits(cfg):
    """Each limit of the twin's weight-gradient formers alone is ERR_CONV, and the emulator runs that call."""
    d, buf = cfg.dot_width, twin_wgrad_buf_words(cfg)
    legal = wgrad_call()
    assert conv_status(cfg, legal, twin=True) == 0 == conv_status(cfg, legal)
    assert conv_status(cfg, wgrad_call(w=d, h=3, batch=1), twin=True) == 0                  # W = Wo = D
    assert conv_status(cfg, wgrad_call(kh=1, kw=1, stride=2, padding=0), twin=True) == 0    # H even: row 7 unread
    flag = {**FLAG_BITS, **CONV_FLAG_BITS}
    limits = {
        "band": dict(band=(1, 3)),
        "band from row 1 to the last": dict(band=(1, 0)),
        "1x1 stride 2 padding 1": dict(kh=1, kw=1, stride=2, padding=1),
        "W > D": dict(w=d + 1, h=3, batch=1),
        "Wo > D": dict(w=d, h=2, batch=1, kh=1, kw=1, padding=1),                # W = D, Wo = D + 2
        "Cp(C) = 3D": dict(c=2 * d + 1, h=4, w=2, batch=1),
        "Cp(K) = 3D": dict(k=2 * d + 1, h=4, w=2, batch=1, b_bits=1),
    }
    if cfg.k_max >= 65 * d:     # the banks bind only where a call may have that many positions (not on sim)
        one = dict(h=65, w=d, batch=1, kh=1, kw=1, padding=0)
        limits["X bank"] = dict(c=15, k=1, a_bits=8, b_bits=1, **one)     # 33 groups x 8 bits x 8 > 2048 words
        limits["E bank"] = dict(c=1, k=15, a_bits=1, b_bits=8, **one)
    for name, fields in limits.items():
        call = wgrad_call(**fields)
        assert conv_status(cfg, call) == 0, name
        assert conv_status(cfg, call, twin=True) == ERR["ERR_CONV"], name
        assert not formers_take(cfg, call), name
    # The X chunk, batch a_bits C ceil(H W / D) words, refused beyond half the tensor buffer where the banks
    # still take it: the design refuses it too (the twin counts every row of the image, the design the rows read:
    # the same here, 1 x 1 pixels).  On sim the banks overflow first.
    x_chunk = wgrad_call(batch=buf // (16 * d) + 1, c=2 * d, k=1, h=1, w=1, kh=1, kw=1, padding=0, a_bits=8,
                         b_bits=1)
    g = ConvArgs.decode(x_chunk)
    assert g.batch * 8 * 2 * d > buf
    if twin_wgrad_bank_words(d, g.batch, 1, 1, 2 * d, 8) <= TWIN_WGRAD_BANK_WORDS and g.m <= cfg.k_max:
        assert conv_status(cfg, x_chunk, twin=True) == ERR["ERR_CONV"] == conv_status(cfg, x_chunk)
        assert conv_status(cfg, replace(x_chunk, batch=x_chunk.batch - 1), twin=True) == 0
    # The E chunk has no limit but the banks: ResNet-74's stage-3 layer (3x3, 64 -> 64 channels on 8 x 8) takes
    # 16 images of 8-bit X and E (a fullest bank of 2048 words each), where the positions fit k_max (zc706)
    stage3 = wgrad_call(batch=16, c=64, k=64, h=8, w=8, a_bits=8, b_bits=8)
    if d == 64 and ConvArgs.decode(stage3).m <= cfg.k_max:
        assert conv_status(cfg, stage3, twin=True) == 0 == conv_status(cfg, stage3)
        assert conv_status(cfg, replace(stage3, batch=17), twin=True) == ERR["ERR_CONV"]
    # C16 as the design: within int16 it runs, beyond it both refuse
    for bits, want in ((1, 0), (8, ERR["ERR_CONV"])):
        call = wgrad_call(flags=C16, a_bits=bits, b_bits=bits)
        assert conv_status(cfg, call, twin=True) == want == conv_status(cfg, call)
    # the twin prefetches like the design: the hint is checked as the emulator checks it
    pf = replace(wgrad_call(flags=1 << flag["PREFETCH_B"]), win_limit=1 << 20, next_a=0x20000,
                 next_b=0x40000)
    assert conv_status(cfg, pf) == conv_status(cfg, pf, twin=True) == 0
    for bad, status in ((dict(next_a=0x20003), "ERR_ALIGN"), (dict(next_b=0x40003), "ERR_ALIGN"),
                        (dict(next_a=1 << 20), "ERR_WINDOW"), (dict(next_b=(1 << 20) - 64), "ERR_WINDOW")):
        call = replace(pf, **bad)
        assert conv_status(cfg, call) == conv_status(cfg, call, twin=True) == ERR[status], bad


def former_param(name: str) -> int:
    """A parameter's default in rtl/cpt_wgrad_former.v (the walker instantiates the formers with it)."""
    text = (Path(__file__).resolve().parent.parent / "rtl" / "cpt_wgrad_former.v").read_text()
    return int(re.search(rf"parameter integer {name} = (\d+)", text).group(1))


@pytest.mark.parametrize("d", [32, 64])
def test_wgrad_bank_words_count_the_formers_addresses(d):
    """twin_wgrad_bank_words, the rule's count, against the former's storage map itself (rtl/cpt_wgrad_former.v,
    "packed rows"): channel row (n, y, p, c) in slot rb mod R of the word at ((g div 2) bits + p) ceil(C / CB) +
    c div CB of bank (g mod 2) CB + c mod CB, rb = n H + y, g = rb div R.  The largest address + 1 of any bank is
    the count, and no two channel rows share a slot."""
    cb = former_param("CB")
    rng = np.random.default_rng(7)
    for _ in range(300):
        n, h, w, c, bits = (int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(1, d + 1)),
                            int(rng.integers(1, 20)), int(rng.integers(1, 9)))
        p = max(8, 1 << (w - 1).bit_length())
        r = d // p
        used: dict[tuple[int, int], set[int]] = {}
        for rb in range(n * h):
            g = rb // r
            for plane in range(bits):
                for ch in range(c):
                    bank = (g % 2) * cb + ch % cb
                    addr = ((g // 2) * bits + plane) * -(-c // cb) + ch // cb
                    slots = used.setdefault((bank, addr), set())
                    assert rb % r not in slots
                    slots.add(rb % r)
        top = max(addr for _, addr in used) + 1
        assert twin_wgrad_bank_words(d, n, h, w, c, bits) == top, (n, h, w, c, bits)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_equals_emulator_on_wgrad_calls_the_formers_take(cfg):
    """Random weight-gradient geometries (legal or not; SUMS now and then), without PREFETCH_B and within the formers'
    limits the twin's status is the emulator's (the RTL's X-chunk check counts every row of the image, so it is
    never looser than the emulator's); and the twin never runs a call the emulator refuses."""
    d = cfg.dot_width
    rng = np.random.default_rng(29)
    same = ran = 0
    for _ in range(4000):
        call = wgrad_call(batch=int(rng.integers(0, 5)), c=int(rng.choice([0, 1, 2, 3, 8, 16, d, d + 3, 2 * d + 1])),
                          k=int(rng.choice([0, 1, 3, 8, 64, 200, 2 * d + 1])), h=int(rng.integers(0, 16)),
                          w=int(rng.integers(0, d + 3)), kh=int(rng.integers(0, 4)), kw=int(rng.integers(0, 4)),
                          stride=int(rng.integers(0, 3)), padding=int(rng.integers(0, 3)),
                          a_bits=int(rng.integers(0, 10)), b_bits=int(rng.integers(1, 9)),
                          flags=int(rng.integers(0, 4)) | C16 * (rng.random() < 0.3) | SUMS * (rng.random() < 0.3),
                          band=(int(rng.integers(0, 4)), int(rng.integers(0, 4))) if rng.random() < 0.2 else (0, 0))
        twin = conv_status(cfg, call, twin=True)
        if twin == 0:
            assert conv_status(cfg, call) == 0, call
            ran += 1
        if formers_take(cfg, call):
            assert twin == conv_status(cfg, call), call
            same += 1
    assert same > 1000 and ran > 100, (same, ran)


def ph_taps(k: int, r: int, p: int) -> int:
    """rtl/cpt_conv_setup.v's ph_taps: the taps i = r + p (mod 2) of a kernel side k = 1..3."""
    return (0 if r ^ p else 1) if k == 1 else 1 if k == 2 else (1 if r ^ p else 2)


def ph_off(k: int, r: int, p: int) -> int:
    """rtl/cpt_conv_setup.v's ph_off: (first tap - r - p) / 2."""
    return (1 if not r and not p else 0) if k == 3 else (-1 if r and p else 0)


def setup_phases(ho: int, w: int, kh: int, kw: int, p: int, b0: int, rows: int) -> tuple[list[dict], list[dict]]:
    """rtl/cpt_conv_setup.v's row phases (taps, offset, rows gh, first phase row gy0, E rows [lo, hi), whether it
    streams any) and column phases (taps, offset, pixels gw) of a stride-2 input gradient's band."""
    end = b0 + rows
    row_phases = []
    for r in (0, 1):
        h0 = b0 + (r ^ (b0 & 1))
        gh = (end - h0 + 1) >> 1 if h0 < end else 0
        nt, off = ph_taps(kh, r, p), ph_off(kh, r, p)
        lo = max((h0 >> 1) - off, 0)
        hi = min((h0 >> 1) - off + gh - 1 + nt, ho)
        row_phases.append(dict(nt=nt, off=off, gh=gh, gy0=h0 >> 1, lo=lo, hi=hi, ok=nt != 0 and gh != 0 and lo < hi))
    col_phases = [dict(nt=ph_taps(kw, r, p), off=ph_off(kw, r, p), gw=(w + 1 - r) >> 1) for r in (0, 1)]
    return row_phases, col_phases


def test_stride2_phases():
    """Every band of dX rows of every small stride-2 geometry: the setup's phases have the taps of
    ConvArgs.phases (the stored order: offsets from the first tap), the band's pixels of their parity and reach
    exactly the E rows their taps reach; the union of the row phases' E rows is ConvArgs.a_rows."""
    checked = 0
    for h, w, kh, kw, p in itertools.product(range(1, 10), range(1, 6), (1, 2, 3), (1, 2, 3), (0, 1)):
        ho = conv_output_size(h, kh, 2, p)
        if ho < 1 or conv_output_size(w, kw, 2, p) < 1:
            continue
        for b0 in range(h):
            for rows in range(1, h - b0 + 1):
                g = ConvArgs.decode(dgrad_call(h=h, w=w, kh=kh, kw=kw, stride=2, padding=p, band=(b0, rows)))
                row_phases, col_phases = setup_phases(ho, w, kh, kw, p, b0, rows)
                for ph, (ti, tj) in enumerate(g.phases()):
                    rp, cp = row_phases[ph // 2], col_phases[ph % 2]
                    assert (rp["nt"], cp["nt"]) == (len(ti), len(tj))
                    assert not ti or 2 * rp["off"] == ti[0] - ph // 2 - p
                    assert not tj or 2 * cp["off"] == tj[0] - ph % 2 - p
                    hs = [x for x in range(b0, b0 + rows) if x % 2 == ph // 2]
                    assert rp["gh"] == len(hs) and (not hs or rp["gy0"] == hs[0] // 2)
                    assert cp["gw"] == len(range(ph % 2, w, 2))
                    reach = {(x + p - i) // 2 for x in hs for i in ti if 0 <= (x + p - i) // 2 < ho}
                    assert (rp["lo"], rp["hi"]) == (min(reach), max(reach) + 1) if rp["ok"] else not reach
                ok = [rp for rp in row_phases if rp["ok"]]
                union = (min(rp["lo"] for rp in ok), max(rp["hi"] for rp in ok)) if ok else (0, 0)
                assert union == g.a_rows(), (h, kh, p, b0, rows)
                checked += 1
    assert checked == 13305


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_twin_equals_emulator_on_stride2_dgrad_calls_that_fit(cfg):
    """Random stride-2 input-gradient geometries (legal or not): without SUMS and with E rows that fit
    the former, the twin's status is the emulator's (the reduction checked is the largest phase's)."""
    assert twin_line_buffer_bound(cfg) <= cfg.tensor_buffer_bits
    rng = np.random.default_rng(29)
    same = legal = 0
    for _ in range(3000):
        k = int(rng.choice([1, 3, 8, 16, 64, 200, 512]))
        kw, padding = int(rng.integers(0, 5)), int(rng.integers(0, 3))
        w = int(rng.integers(0, 4 * twin_row_bits(cfg) // channel_pitch(k, cfg.dot_width) + 4))
        call = dgrad_call(batch=int(rng.integers(0, 4)), c=int(rng.integers(0, 70)), k=k, h=int(rng.integers(0, 300)),
                          w=w, kh=int(rng.integers(0, 5)), kw=kw, stride=2, padding=padding,
                          a_bits=int(rng.integers(0, 10)), b_bits=int(rng.integers(1, 9)),
                          flags=int(rng.integers(0, 4)) | C16 * (rng.random() < 0.3),
                          band=(int(rng.integers(0, 4)), int(rng.integers(0, 4))) if rng.random() < 0.3 else (0, 0))
        if conv_output_size(w, kw, 2, padding) * channel_pitch(k, cfg.dot_width) > twin_row_bits(cfg):
            continue
        want = conv_status(cfg, call)
        assert conv_status(cfg, call, twin=True) == want, call
        same += 1
        legal += want == 0
    assert same > 1000 and legal > 30, (same, legal)
