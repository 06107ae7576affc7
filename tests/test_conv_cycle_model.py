"""The conv cycle model (cpt_hw.hw.twin_cycle_model) against cycle counts measured on the Verilog twin.

The model's real check is the RTL runner (sim/cpt_gemm/test_cpt_gemm_conv.py asserts every forward call, with its
code sums or without, and every input gradient equal to it, on sim_conv, simwide_conv and simwide64_conv,
Verilator); these pinned calls keep it there without a simulator.
Each row: the call's arguments and the ``cycles`` register the twin returned, sim_conv, no back-pressure,
2026-12-04 (MEASURED: Icarus, ``sim/cpt_gemm/trace_conv.py``; MEASURED_SUMS: Verilator, the runner's records).
Integer cycles: exact on any CPU.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cpt_hw.flows import rtl_sim
from cpt_hw.hw.calls import ConvCall
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.conv_calls import OP_CODES, encode_conv, prefetch_hit
from cpt_hw.hw.regmap import CONV_FLAG_BITS, FLAG_BITS
from cpt_hw.hw.twin_cycle_model import twin_cycles

SIM_CONV = HardwareConfig.from_preset("sim", {"conv_engine": True, "name": "sim_conv"})

#: (a, b, c, a_bits, b_bits, flags, conv, batch, channels, size, band, twin cycles)
MEASURED = [
    (4096, 4240, 4400, 2, 2, 0, 4913, 1, 262149, 393221, 0, 231),            # 1x5x5x6 -> 4, 3x3/1 p0
    (4096, 4320, 4504, 4, 3, 2, 21297, 2, 327683, 393221, 0, 1761),          # the stem's C = 3, 3x3/1 p1
    (4096, 4448, 4728, 3, 2, 0, 21265, 2, 589856, 262147, 0, 1848),          # Cp = D, K over three B blocks
    (4096, 4880, 5784, 5, 6, 1, 25393, 2, 458768, 327686, 131073, 2866),     # 3x3/2, a band
    (4096, 4256, 4536, 3, 3, 17, 21297, 2, 589827, 327684, 0, 1790),         # int16 results (C16), 3 blocks
    (4096, 5312, 7936, 3, 8, 1, 21297, 3, 1048592, 524296, 0, 62616),        # 3x16x8x8 -> 16, 3x3/1: 171 tiles
    (4096, 6208, 8032, 8, 8, 2, 25393, 2, 720912, 524296, 0, 22085),         # 3x3/2 over three B blocks
    (4096, 4328, 4672, 7, 7, 2, 20753, 1, 327715, 65539, 0, 1612),           # 1x1 p1: tiles of padding before B
    (4096, 4192, 4312, 2, 1, 16, 4385, 1, 458784, 131074, 0, 146),           # 2x1 kernel, C16
    # stride-1 input gradients: the same walk over E
    (4096, 6208, 7552, 8, 4, 3, 21298, 2, 1048592, 524296, 0, 56171),        # dX 2x16x8x8 <- E of 16, 3x3 p1
    (4096, 4200, 4408, 5, 4, 0, 4370, 2, 524297, 65537, 0, 412),             # 1x2 kernel, p0
    (4096, 4256, 4368, 6, 2, 2, 21298, 1, 196611, 393220, 0, 513),           # 3x3 p1, C = 3
    # stride-2 input gradients: phase by phase
    (4096, 4196, 4420, 3, 2, 0, 25394, 1, 262149, 393222, 0, 908),           # 3x3 p1: four phases
    (4096, 4224, 4324, 2, 3, 1, 8466, 2, 524291, 327687, 0, 787),            # 1x1 p0: three phases of zeros
    (4096, 4256, 5616, 2, 6, 1, 25394, 2, 2097158, 262150, 65539, 988),      # a band of dX rows 1..3
    (4096, 4288, 5216, 4, 2, 18, 25394, 2, 2293766, 262146, 0, 2226),        # C16, C over three B blocks
]


#: Forward calls with their code sums (SUMS): (a, b, c, sums, a_bits, b_bits, flags, conv, batch, channels, size,
#: band, twin cycles); the same geometries without SUMS take 1 to 22 cycles fewer.
MEASURED_SUMS = [
    (4096, 4320, 4504, 6008, 4, 3, 10, 21297, 2, 327683, 393221, 0, 1783),      # C = 3, 3x3/1 p1, K over 2 blocks
    (4096, 4320, 4504, 12280, 4, 3, 9, 21297, 2, 327683, 393221, 0, 1783),     # the sums across a 4 KiB page
    (4096, 4448, 4728, 6392, 3, 2, 8, 21265, 2, 589856, 262147, 0, 1879),      # Cp = D, K over three B blocks
    (4096, 4172, 4244, 4332, 1, 1, 10, 24849, 1, 131076, 262147, 65536, 67),   # 1x1/2 p1, a band, 1 x 1 bits
    (4096, 4256, 4464, 4576, 2, 4, 24, 25393, 1, 196613, 327686, 131073, 219),  # 3x3/2, C16, a band
    (4096, 4288, 4568, 6872, 8, 6, 8, 20753, 2, 589825, 327682, 0, 5105),      # C = 1, K = 9 over 3 blocks
    (4096, 4260, 4420, 4580, 5, 1, 26, 25393, 1, 524296, 262149, 0, 505),      # signed X, C16
    (4096, 4960, 5104, 5528, 4, 1, 11, 8465, 1, 655395, 327685, 196608, 817),  # C = 35, 1x1/2 p0
]


#: Weight gradients: (a, b, c, next_a, next_b, a_bits, b_bits, flags, conv, batch, channels, size, band, sums, hit,
#: twin cycles), cold or a hit (the previous call, hinting this one, loaded its chunks and its first B block, and
#: with SUMS counted that block's error sums).
MEASURED_WGRAD = [
    (4096, 4288, 4480, 0, 0, 2, 8, 1, 8467, 1, 196616, 524296, 0, 0, False, 413),        # 1x1/2 on an even H
    (4096, 4220, 4320, 0, 0, 3, 3, 3, 25379, 1, 131075, 458757, 0, 0, False, 381),       # 2x3/2 p1
    (4096, 4288, 4416, 0, 0, 2, 2, 1, 4915, 4, 131076, 327684, 0, 0, False, 765),        # 4 images, 3x3/1 p0
    (4096, 4268, 4392, 0, 0, 3, 5, 1, 4371, 1, 196640, 196611, 0, 0, False, 751),        # C = 32 = D
    (4096, 4184, 4296, 0, 0, 1, 1, 19, 20755, 3, 65537, 196610, 0, 0, False, 96),        # C16, 1 x 1 bits
    (4096, 5280, 5536, 0, 0, 2, 8, 2, 25395, 2, 262179, 458757, 0, 0, False, 5179),      # C = 35, 3x3/2 p1
    (4096, 4664, 5232, 0, 0, 7, 7, 2, 21299, 3, 524289, 65542, 0, 0, False, 3577),       # W = 1, K = 8 (3 blocks)
    (4096, 4736, 5568, 4288, 4992, 3, 4, 6, 21299, 2, 196612, 524296, 0, 0, False, 1477),  # cold, hinting the next
    (4288, 4992, 5568, 4480, 5248, 3, 4, 6, 21299, 2, 196612, 524296, 0, 0, True, 1251),   # a hit, hinting the next
    (4480, 5248, 5568, 0, 0, 3, 4, 2, 21299, 2, 196612, 524296, 0, 0, True, 1251),         # a hit, the chain's last
    # with the code sums (SUMS): the error sums' mask table, their two block slots, the write channel shared
    (4096, 4352, 4704, 0, 0, 4, 3, 10, 21299, 2, 327683, 393222, 0, 5416, False, 2718),  # C = 3, 3x3/1 p1
    (4096, 4256, 4576, 0, 0, 3, 4, 10, 21299, 2, 589826, 262148, 0, 5360, False, 1668),  # K = 9 over three blocks
    (4096, 4208, 4368, 0, 0, 2, 2, 8, 21299, 1, 196610, 2097155, 0, 4720, False, 330),   # W = D: whole words
    (4096, 4196, 4308, 0, 0, 3, 6, 24, 25395, 1, 655365, 262147, 0, 5272, False, 2313),  # C16, K = 10, 3x3/2
    (4096, 4496, 4644, 0, 0, 6, 7, 9, 8739, 1, 393221, 393223, 0, 5188, False, 1535),    # 2x2/2 p0
    (4096, 4880, 5088, 4336, 4928, 5, 2, 15, 25395, 2, 327683, 393222, 0, 5800, False, 2138),  # cold, hinting
    (4336, 4928, 5088, 4576, 4976, 5, 2, 15, 25395, 2, 327683, 393222, 0, 5800, True, 1982),   # a hit, hinting
    (4576, 4976, 5088, 0, 0, 5, 2, 11, 25395, 2, 327683, 393222, 0, 5800, True, 1982),         # a hit, the last
]


def call(row: tuple[int, ...]) -> ConvCall:
    a, b, c, a_bits, b_bits, flags, conv, batch, channels, size, band, _ = row
    return ConvCall(a, b, c, 0, 0, 0, a_bits, b_bits, flags, 0, 1 << 40, conv=conv, batch=batch, channels=channels,
                    size=size, band=band)


@pytest.mark.parametrize("row", MEASURED, ids=lambda r: f"{r[-1]}")
def test_measured_calls(row: tuple[int, ...]) -> None:
    assert twin_cycles(SIM_CONV, call(row)) == row[-1]


@pytest.mark.parametrize("row", MEASURED_WGRAD, ids=lambda r: f"{r[-1]}")
def test_measured_weight_gradients(row: tuple) -> None:
    *_, hit, cycles = row
    assert twin_cycles(SIM_CONV, _wgrad(row), hit=hit) == cycles


def _wgrad(row: tuple) -> ConvCall:
    a, b, c, next_a, next_b, a_bits, b_bits, flags, conv, batch, channels, size, band, sums, _, _ = row
    return ConvCall(a, b, c, 0, 0, 0, a_bits, b_bits, flags, 0, 1 << 40, next_a=next_a, next_b=next_b, conv=conv,
                    batch=batch, channels=channels, size=size, band=band, sums=sums)


def test_a_hit_is_the_hint_of_the_call_before() -> None:
    """prefetch_hit follows cpt_core's key: the previous call hinted (PREFETCH_B) exactly this call's tensors,
    geometry and flags SUMS and B_SIGNED."""
    first, second = _wgrad(MEASURED_WGRAD[7]), _wgrad(MEASURED_WGRAD[8])
    assert prefetch_hit(first, second) and not prefetch_hit(None, second)
    assert not prefetch_hit(replace(first, next_b=first.next_b + 64), second)
    assert not prefetch_hit(replace(first, flags=first.flags & ~(1 << FLAG_BITS["PREFETCH_B"])), second)
    assert not prefetch_hit(first, replace(second, flags=second.flags | 1 << CONV_FLAG_BITS["SUMS"]))
    assert not prefetch_hit(first, replace(second, a_bits=second.a_bits + 1))
    assert prefetch_hit(first, replace(second, c=second.c + 4096))      # C's place is not in the key


@pytest.mark.parametrize("row", MEASURED_SUMS, ids=lambda r: f"{r[-1]}")
def test_measured_calls_with_sums(row: tuple[int, ...]) -> None:
    a, b, c, sums, a_bits, b_bits, flags, conv, batch, channels, size, band, cycles = row
    summed = ConvCall(a, b, c, 0, 0, 0, a_bits, b_bits, flags, 0, 1 << 40, conv=conv, batch=batch,
                      channels=channels, size=size, band=band, sums=sums)
    assert twin_cycles(SIM_CONV, summed) == cycles


def test_tiles_formed_before_b() -> None:
    """A band that reaches no stored row (1x1/2 p1, output row 0 of a 5-row image: padding only) over two B blocks
    on simwide_conv (10 x 4, two beats a word): the walker forms both blocks' tiles before B(0) is in; the call
    ends once the feeder has had them (Verilator, 535 cycles; the model first stopped with the walker: 5)."""
    simwide = HardwareConfig.from_preset("sim", {**rtl_sim.WIDE, "conv_engine": True, "name": "simwide_conv"})
    row = (4096, 4552, 5512, 7, 8, 1, 24849, 1, 917506, 327687, 65536, 535)
    assert twin_cycles(simwide, call(row)) == row[-1]


def test_addresses_matter_through_pages_only() -> None:
    """Moving every operand by whole 4 KiB pages leaves the cycles alone (bursts split at the same places)."""
    row = MEASURED[5]
    moved = replace(call(row), a=row[0] + 8192, b=row[1] + 4096, c=row[2] + 3 * 4096)
    assert twin_cycles(SIM_CONV, moved) == row[-1]


@pytest.mark.parametrize("what", ["PREFETCH_B", "dgrad with SUMS", "a forward hit"])
def test_refuses_what_the_twin_does_not_run(what: str) -> None:
    c = call(MEASURED[0])
    if what == "dgrad with SUMS":           # the twin refuses it (ERR_CONV)
        c = replace(c, conv=(c.conv & ~3) | OP_CODES["dgrad"], flags=c.flags | 1 << CONV_FLAG_BITS["SUMS"])
    elif what == "PREFETCH_B":              # a forward call's hint: no such thing
        c = replace(c, flags=c.flags | 1 << FLAG_BITS["PREFETCH_B"])
    with pytest.raises(ValueError, match="forward calls .with or without SUMS., input gradients and weight"
                                         if what != "a forward hit" else "only a weight gradient"):
        twin_cycles(SIM_CONV, c, hit=what == "a forward hit")


def _zc706_call(op: str, c: int, k: int, hw: int, kernel: int, stride: int, bits: tuple[int, int], batch: int,
                a: int = 1 << 20) -> ConvCall:
    return ConvCall(a, 1 << 24, 1 << 26, 0, 0, 0, *bits, 0, 0, 1 << 40, conv=encode_conv(op, kernel, kernel, stride, 1),
                    batch=batch, channels=c | k << 16, size=hw | hw << 16)


ZC706_CONV = HardwareConfig.from_preset("zc706", {"conv_engine": True, "name": "zc706_conv"})


@pytest.mark.parametrize("op, c, k, hw, kernel, stride, bits, batch", [
    ("fwd", 16, 16, 32, 3, 1, (8, 8), 4),        # ResNet-74 stage 1 (16 pixels a tile, two pieces a row)
    ("fwd", 16, 32, 32, 3, 2, (3, 8), 8),        # stage 2's first convolution
    ("fwd", 64, 64, 8, 3, 1, (5, 8), 40),        # stage 3: Cp = D; X pages repeat every 8 images
    ("dgrad", 32, 32, 16, 3, 1, (8, 3), 8),      # stage 2's input gradient
    ("dgrad", 16, 32, 32, 3, 2, (8, 5), 4),      # stage 2's first convolution's: four phases
])
def test_fast_forward_is_exact(op: str, c: int, k: int, hw: int, kernel: int, stride: int, bits: tuple[int, int],
                               batch: int) -> None:
    """Skipping periodic stretches gives the cycles of stepping every one, and does skip (ResNet-74 layers on
    zc706; an X tensor off a 4 KiB page boundary besides)."""
    for a in (1 << 20, (1 << 20) + 3 * 64):
        call = _zc706_call(op, c, k, hw, kernel, stride, bits, batch=batch, a=a)
        skipped = []
        assert twin_cycles(ZC706_CONV, call, skipped=skipped) == twin_cycles(ZC706_CONV, call, fast_forward=False)
        assert sum(skipped) > 0, "nothing was skipped: the test would not see a wrong skip"


@pytest.mark.parametrize("c, k, hw, kernel, stride, bits, batch", [
    (16, 16, 32, 3, 1, (8, 8), 4),               # stage 1
    (3, 16, 32, 3, 1, (8, 8), 4),                # the stem (C = 3: the sums make it 6 % slower)
    (16, 32, 32, 3, 2, (3, 8), 8),               # stage 2's first convolution
])
def test_fast_forward_is_exact_with_sums(c: int, k: int, hw: int, kernel: int, stride: int, bits: tuple[int, int],
                                         batch: int) -> None:
    """With the code sums (SUMS), whose write side is stepped: skipping equals stepping, and does skip; the sums
    on a full burst's boundary (their page offset then does not matter) and off it (the bursts split at a page)."""
    for sums in (1 << 30, (1 << 30) + 4096 - 12):
        summed = replace(_zc706_call("fwd", c, k, hw, kernel, stride, bits, batch=batch),
                         flags=1 << CONV_FLAG_BITS["SUMS"], sums=sums)
        skipped = []
        assert twin_cycles(ZC706_CONV, summed, skipped=skipped) == twin_cycles(ZC706_CONV, summed, fast_forward=False)
        if sums == 1 << 30:
            assert sum(skipped) > 0, "nothing was skipped: the test would not see a wrong skip"
