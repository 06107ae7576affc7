"""cocotb unit tests of rtl/cpt_im2col_former.v: every A word against cpt_hw.hw.conv_former.

The testbench plays the reader and the tile walker: it streams one image's row-planes (the bytes of
``conv_model.pack_tensor``) into the ring with random valid gaps, asks for every output row's pixels in
pieces of at most 16, all planes of a piece one after the other (as an A tile needs them), and takes the
words with random back-pressure.  Every word's data, pixel, word index and last flag is compared with the
reference.  D comes from the geometry's config; the ring's size is the module's default (W Cp <= 2048 bits,
4 rows).
"""

from __future__ import annotations


import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cpt_hw.hw.conv_former import FormerGeometry, a_words, row_planes
from cpt_hw.hw.conv_model import pack_tensor
from sim import runner
from sim.streamtb import StreamTB
from sim.tbutil import seeded_rng

#: The module's default ring slot: W Cp bits at most.
MAX_ROW_BITS = 2048
#: Pixels a request may ask for.
TILE = 16


class FormerTB(StreamTB):
    def __init__(self, dut, rng: np.random.Generator, gaps: float, stalls: float):
        super().__init__(dut, rng, gaps, stalls, fields=("m_pixel", "m_word", "m_data"))
        self.cycle = 0

    async def start(self) -> None:
        await super().start()
        cocotb.start_soon(self._count())

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def configure(self, g: FormerGeometry, bits: int) -> None:
        dut = self.dut
        dut.cp.value = g.cp
        dut.width.value = g.width
        dut.height.value = g.height
        dut.row0.value = 0          # the whole image (cpt_core streams a band's rows only)
        dut.row1.value = g.height
        dut.kh.value = g.kh
        dut.kw.value = g.kw
        dut.stride.value = g.stride
        dut.pad_h.value = g.padding
        dut.pad_w.value = g.padding
        dut.bits.value = bits
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await ReadOnly()
        assert not int(dut.geom_err.value), f"geometry {g} refused"
        await RisingEdge(dut.clk)

    async def request(self, reqs: list[tuple[int, int, int, int]]) -> None:
        dut = self.dut
        for ho, wo0, plane, count in reqs:
            await self._idle()
            dut.rq_ho.value = ho
            dut.rq_wo0.value = wo0
            dut.rq_plane.value = plane
            dut.rq_count.value = count
            await self._handshake(dut.rq_valid, dut.rq_ready)


def random_geometry(rng: np.random.Generator, d: int) -> FormerGeometry:
    while True:
        c = int(rng.choice([3, 8, 16, 32, 64]))
        w = int(rng.choice([8, 16, 32]))
        kh, kw = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.2 else (int(rng.choice([1, 3])),) * 2
        s, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
        g = FormerGeometry(c, int(rng.integers(3, 7)), w, kh, kw, s, pad, d)
        if w * g.cp <= MAX_ROW_BITS:
            return g


def requests(rng: np.random.Generator, g: FormerGeometry, bits: int) -> list[tuple[int, int, int, int]]:
    """Every output pixel and plane: each output row in random pieces of 1..16 pixels, all planes of a piece."""
    out = []
    for ho in range(g.out_h):
        wo = 0
        while wo < g.out_w:
            count = min(g.out_w - wo, TILE if rng.random() < 0.5 else int(rng.integers(1, TILE + 1)))
            for p in rng.permutation(bits):
                out.append((ho, wo, int(p), count))
            wo += count
    return out


async def run_image(tb: FormerTB, g: FormerGeometry, bits: int) -> None:
    rng = tb.rng
    x = rng.integers(0, 1 << bits, size=(1, g.channels, g.height, g.width))
    packed = pack_tensor(x, bits, tb.d)
    wb = tb.d // 8
    words = [int.from_bytes(packed[i:i + wb].tobytes(), "little") for i in range(0, packed.size, wb)]
    rows = row_planes(packed, g, bits)
    reqs = requests(rng, g, bits)
    for ho, wo0, p, count in reqs:
        for t in range(count):
            aw = a_words(rows, g, ho, wo0 + t, p)
            for k, word in enumerate(aw):
                tb.expected.append((t, k, word, t == count - 1 and k == len(aw) - 1))
    total = tb.seen + len(tb.expected)
    tb.dut._log.info(f"{g}, {bits} bits: {len(reqs)} requests, words {tb.seen}..{total - 1}")
    await tb.configure(g, bits)
    streaming = cocotb.start_soon(tb.stream(words))
    requesting = cocotb.start_soon(tb.request(reqs))
    await tb.take(total)
    assert not tb.expected
    # rows no tap reaches (the last row of a 1x1 stride-2 conv) may still be on their way: the next image's
    # start must not meet them
    await streaming
    await requesting


async def run_images(dut, name: str, n: int, gaps: float, stalls: float) -> FormerTB:
    rng = seeded_rng(name)
    tb = FormerTB(dut, rng, gaps, stalls)
    await tb.start()
    for _ in range(n):
        g = random_geometry(rng, tb.d)
        await run_image(tb, g, int(rng.integers(1, 9)))
        await ClockCycles(dut.clk, 2)
    return tb


@cocotb.test()
async def test_random_geometries(dut):
    """Random C, W, kernels (1x1, 3x3, now and then any kh x kw <= 3), strides, paddings and precisions, with
    valid gaps and back-pressure."""
    await run_images(dut, "random", 24, gaps=0.3, stalls=0.3)


@cocotb.test()
async def test_full_rate(dut):
    """No gaps, no stalls: after the ring is primed, the former gives one A word a cycle within a request."""
    tb = await run_images(dut, "rate", 4, gaps=0.0, stalls=0.0)
    dut._log.info(f"{tb.seen} A words in {tb.cycle} cycles, ring fill and request overheads included; "
                  f"empty cycles between requests: {dict(sorted(tb.gaps_between.items()))} (gap: requests)")
    assert tb.bubbles == 0, f"{tb.bubbles} cycles without a word inside requests"


@cocotb.test()
async def test_edges(dut):
    """Stem-like Cp = 4 3x3 pad 1, 1x1 stride 2, the widest row (W Cp = 2048), 1-pixel requests."""
    rng = seeded_rng("edges")
    tb = FormerTB(dut, rng, 0.2, 0.2)
    await tb.start()
    for c, h, w, k, s, pad, bits in ((3, 4, 8, 3, 1, 1, 2), (16, 5, 8, 1, 2, 0, 3), (64, 3, 32, 3, 2, 1, 1),
                                     (8, 3, 8, 3, 1, 0, 8)):
        await run_image(tb, FormerGeometry(c, h, w, k, k, s, pad, tb.d), bits)


@cocotb.test()
async def test_bad_geometry(dut):
    """A channel pitch that is neither a power of two below D nor a multiple of D is refused."""
    tb = FormerTB(dut, seeded_rng("bad"), 0.0, 0.0)
    await tb.start()
    dut.cp.value = 3
    dut.width.value = 8
    dut.height.value = 4
    dut.row0.value = 0
    dut.row1.value = 4
    dut.kh.value = 3
    dut.kw.value = 3
    dut.stride.value = 1
    dut.pad_h.value = 1
    dut.pad_w.value = 1
    dut.bits.value = 2
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    await ReadOnly()
    assert int(dut.geom_err.value) == 1
    assert int(dut.s_ready.value) == 0 and int(dut.rq_ready.value) == 0


# ----------------------------------------------------------------------------- pytest runner
# D comes from the test geometry's config: sim (D = 32) in `make test`, simwide (D = 64) in the slow set.
@pytest.mark.sim
@pytest.mark.parametrize("geometry", ["sim", pytest.param("simwide", marks=pytest.mark.slow)])
@pytest.mark.parametrize("simulator", runner.SIMULATORS)
def test_cpt_im2col_former(simulator: str, geometry: str) -> None:
    runner.run(geometry, simulator, __file__)
