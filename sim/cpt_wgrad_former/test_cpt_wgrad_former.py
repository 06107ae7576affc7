"""cocotb unit tests of rtl/cpt_wgrad_former.v: every A word against cpt_hw.hw.conv_wgrad_former.

The testbench plays the reader and the tile walker: it streams one X chunk's row-planes (the bytes of
``conv_model.pack_tensor``, whole images) into the buffer with random valid gaps, then asks for random A rows
(tap, channel, plane) over random word ranges (and now and then the whole row), and takes the words with
random back-pressure.  Every word's data, index and last flag is compared with the reference.  D comes from
the geometry's config; the buffer's size is the module's default (W Cp <= 2048 bits, N H bits C <= 4096
channel rows, banks of 2048 words a set).  test_prefetch streams the next chunk behind the call's own into the
other bank set (own / pf) and reads it in the next call without streaming it again.
"""

from __future__ import annotations


import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cpt_hw.hw.conv_calls import twin_wgrad_bank_words
from cpt_hw.hw.conv_model import pack_tensor
from cpt_hw.hw.conv_wgrad_former import WgradGeometry, a_words, corner_turn
from sim import runner
from sim.streamtb import StreamTB
from sim.tbutil import seeded_rng

#: The module's defaults: the staging register (W Cp bits) and each bank (words).
MAX_ROW_BITS = 2048
BANK_WORDS = 2048

Request = tuple[int, int, int, int, int, int]   # (i, j, c, plane, first word, count)


class FormerTB(StreamTB):
    def __init__(self, dut, rng: np.random.Generator, gaps: float, stalls: float):
        super().__init__(dut, rng, gaps, stalls, fields=("m_word", "m_data"))

    async def configure(self, g: WgradGeometry, bits: int, cp: int | None = None, own: bool = True,
                        pf: bool = False) -> bool:
        """Pulse start with the geometry (``own``: the chunk is streamed, else the prefetched one is read; ``pf``:
        a prefetched chunk follows); returns geom_err."""
        dut = self.dut
        dut.own.value = int(own)
        dut.pf.value = int(pf)
        dut.flip.value = 0
        dut.batch.value = g.batch
        dut.channels.value = g.channels
        dut.cp.value = g.cp if cp is None else cp
        dut.width.value = g.width
        dut.height.value = g.height
        dut.kh.value = g.kh
        dut.kw.value = g.kw
        dut.stride.value = g.stride
        dut.pad.value = g.padding
        dut.bits.value = bits
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await ReadOnly()
        err = bool(int(dut.geom_err.value))
        await RisingEdge(dut.clk)
        return err

    async def request(self, reqs: list[Request]) -> None:
        dut = self.dut
        for i, j, c, p, w0, count in reqs:
            await self._idle()
            dut.rq_i.value = i
            dut.rq_j.value = j
            dut.rq_c.value = c
            dut.rq_plane.value = p
            dut.rq_word0.value = w0
            dut.rq_count.value = count
            await self._handshake(dut.rq_valid, dut.rq_ready)


def fits(g: WgradGeometry, bits: int) -> bool:
    return (g.width * g.cp <= MAX_ROW_BITS
            and twin_wgrad_bank_words(g.dot_width, g.batch, g.height, g.width, g.channels, bits) <= BANK_WORDS)


def whole_word_geometry(rng: np.random.Generator, d: int) -> WgradGeometry:
    """A chunk the former forms whole words of (stride 1, Wo = W = P a power of two >= 8, Ho = H, R = D / W
    dividing H): 3x3 padding 1 or 1x1 padding 0."""
    w = int(rng.choice([w for w in (8, 16, 32, 64) if w <= d]))
    r = d // w
    k, pad = (3, 1) if rng.random() < 0.7 else (1, 0)
    return WgradGeometry(int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 5, 8, 16])), r * int(rng.integers(1, 4)),
                         w, k, k, 1, pad, d)


def random_geometry(rng: np.random.Generator, d: int, bits: int) -> WgradGeometry:
    while True:
        if rng.random() < 0.3:
            g = whole_word_geometry(rng, d)
            if fits(g, bits):
                return g
            continue
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.3 else (int(rng.choice([1, 3])),) * 2
        w = int(rng.integers(3, d + 1)) if rng.random() < 0.5 else int(rng.choice([d // 4, d // 2, d]))
        try:
            g = WgradGeometry(int(rng.integers(1, 5)), int(rng.choice([1, 2, 3, 4, 5, 8, 16, 64])),
                              int(rng.integers(3, 9)), w, *k, int(rng.integers(1, 3)), int(rng.integers(0, 2)), d)
        except ValueError:
            continue               # the kernel does not fit, or Wo > D (1 x 1 padding 1 at W = D)
        if fits(g, bits):
            return g


def random_requests(rng: np.random.Generator, g: WgradGeometry, bits: int, n: int) -> list[Request]:
    out = []
    for _ in range(n):
        i, j, c, p = (int(rng.integers(0, v)) for v in (g.kh, g.kw, g.channels, bits))
        if rng.random() < 0.4:
            w0, count = 0, g.k_words
        else:
            w0 = int(rng.integers(0, g.k_words))
            count = int(rng.integers(1, g.k_words - w0 + 1))
        out.append((i, j, c, p, w0, count))
    return out


def chunk_words(tb: FormerTB, g: WgradGeometry, bits: int) -> tuple[list[int], np.ndarray]:
    """A random chunk: its row-plane words as streamed, and its packed bytes."""
    x = tb.rng.integers(0, 1 << bits, size=(g.batch, g.channels, g.height, g.width))
    packed = pack_tensor(x, bits, tb.d)
    wb = tb.d // 8
    return [int.from_bytes(packed[i:i + wb].tobytes(), "little") for i in range(0, packed.size, wb)], packed


def expect(tb: FormerTB, g: WgradGeometry, bits: int, packed: np.ndarray, reqs: list[Request]) -> int:
    """Queue the reference words of ``reqs`` on chunk ``packed``; returns the word count to take up to."""
    rows = corner_turn(packed, g, bits)
    for i, j, c, p, w0, count in reqs:
        for k, word in enumerate(a_words(rows, g, i, j, c, p, w0, count)):
            tb.expected.append((w0 + k, word, k == count - 1))
    return tb.seen + len(tb.expected)


async def read_flipped(tb: FormerTB, g: WgradGeometry, bits: int, held: np.ndarray) -> None:
    """Within the call: `flip` to the prefetched chunk ``held`` (stored), then requests on it."""
    tb.dut.flip.value = 1
    await RisingEdge(tb.dut.clk)
    tb.dut.flip.value = 0
    reqs = random_requests(tb.rng, g, bits, 4)
    total = expect(tb, g, bits, held, reqs)
    requesting = cocotb.start_soon(tb.request(reqs))
    await tb.take(total)
    assert not tb.expected
    await requesting


async def run_chunk(tb: FormerTB, g: WgradGeometry, bits: int, reqs: list[Request] | None = None,
                    held: np.ndarray | None = None, pf: bool = False) -> np.ndarray | None:
    """One call: a random chunk streamed (or ``held``, the packed chunk prefetched before, read without streaming)
    and the requests checked against it; with ``pf`` a random next chunk streams behind, and is returned packed
    once the former has stored it (wr_busy low)."""
    rng = tb.rng
    if held is None:
        words, packed = chunk_words(tb, g, bits)
    else:
        words, packed = [], held
    nxt = None
    if pf:
        more, nxt = chunk_words(tb, g, bits)
        words = words + more
    if reqs is None:
        reqs = random_requests(rng, g, bits, 10)
    total = expect(tb, g, bits, packed, reqs)
    tb.dut._log.info(f"{g}, {bits} bits: {len(reqs)} requests, words {tb.seen}..{total - 1}")
    assert not await tb.configure(g, bits, own=held is None, pf=pf), f"geometry {g} refused"
    streaming = cocotb.start_soon(tb.stream(words))
    requesting = cocotb.start_soon(tb.request(reqs))
    await tb.take(total)
    assert not tb.expected
    await streaming
    await requesting
    while int(tb.dut.wr_busy.value):
        await RisingEdge(tb.dut.clk)
    return nxt


@cocotb.test()
async def test_random_geometries(dut):
    """Random N, C, W, H, kernels (1x1, 3x3, now and then any kh x kw <= 3), strides, paddings, precisions and
    word ranges, with valid gaps and back-pressure."""
    rng = seeded_rng("random")
    tb = FormerTB(dut, rng, 0.3, 0.3)
    await tb.start()
    for _ in range(30):
        bits = int(rng.integers(1, 5))
        await run_chunk(tb, random_geometry(rng, tb.d, bits), bits)
        await ClockCycles(dut.clk, 2)


@cocotb.test()
async def test_full_rate_whole_words(dut):
    """No gaps, no stalls, 3x3 stride 1 padding 1 on W = D, D / 2, D / 4 (R = 1, 2, 4 rows a word): one A word a
    cycle within a request -- the whole-word path, at any Wo it takes."""
    rng = seeded_rng("rate")
    tb = FormerTB(dut, rng, 0.0, 0.0)
    await tb.start()
    for w in (tb.d, tb.d // 2, tb.d // 4):
        g = WgradGeometry(2, 3, 8, w, 3, 3, 1, 1, tb.d)
        reqs = [(i, j, 1, 1, 0, g.k_words) for i in range(3) for j in range(3)]
        await run_chunk(tb, g, 2, reqs)
        dut._log.info(f"W = {w}: {tb.seen} A words so far; "
                      f"{sum(g * n for g, n in tb.gaps_between.items()) / (len(reqs) - 1):.1f} empty cycles between "
                      "two requests")
        assert tb.bubbles == 0, f"W = {w}: {tb.bubbles} cycles without a word inside requests"


@cocotb.test()
async def test_edges(dut):
    """Stem-like C = 3 stride 2, 1x1 stride 2, Cp > D, W = D at stride 2, single-word rows, the last word."""
    rng = seeded_rng("edges")
    tb = FormerTB(dut, rng, 0.2, 0.2)
    await tb.start()
    d = tb.d
    for n, c, h, w, k, s, pad, bits in ((2, 3, 8, 8, 3, 2, 1, 4), (3, 16, 5, 7, 1, 2, 0, 3),
                                        (1, 2 * d, 3, 4, 3, 1, 1, 1), (1, 4, 6, d, 3, 2, 1, 2),
                                        (1, 1, 3, 3, 3, 1, 0, 1)):
        g = WgradGeometry(n, c, h, w, k, k, s, pad, d)
        reqs = [(i, j, 0, bits - 1, 0, g.k_words) for i in range(k) for j in range(k)]
        reqs.append((k - 1, k - 1, c - 1, 0, g.k_words - 1, 1))
        await run_chunk(tb, g, bits, reqs)


@cocotb.test()
async def test_prefetch(dut):
    """Chains of calls on one geometry: each streams the next call's chunk behind its own (or, hitting, only the
    next one's) into the other bank set while its requests read the first; the next call reads the prefetched
    chunk without a word streamed.  Random geometries, gaps and back-pressure; a chain ends with a call without
    prefetch, and the next chain starts cold (its own chunk into the set last read).  Now and then a call flips
    to the prefetched chunk once it is stored and reads it too (as the E former's user forms the next call's B
    block), and the next call, a hit, reads it again without flipping back."""
    rng = seeded_rng("prefetch")
    tb = FormerTB(dut, rng, 0.3, 0.3)
    await tb.start()
    for _ in range(6):
        bits = int(rng.integers(1, 5))
        g = random_geometry(rng, tb.d, bits)
        held = None
        for _ in range(int(rng.integers(1, 4))):
            held = await run_chunk(tb, g, bits, held=held, pf=True)
            if rng.random() < 0.5:
                await read_flipped(tb, g, bits, held)
            await ClockCycles(dut.clk, int(rng.integers(0, 3)))
        await run_chunk(tb, g, bits, held=held)
        assert int(dut.wr_busy.value) == 0


@cocotb.test()
async def test_bad_geometry(dut):
    """A channel pitch that is not a power of two, and W > D, are refused; nothing is then taken."""
    tb = FormerTB(dut, seeded_rng("bad"), 0.0, 0.0)
    await tb.start()
    assert await tb.configure(WgradGeometry(1, 3, 4, 8, 3, 3, 1, 1, tb.d), 2, cp=3)
    assert int(tb.dut.s_ready.value) == 0 and int(tb.dut.rq_ready.value) == 0
    tb.dut.width.value = tb.d + 1
    tb.dut.cp.value = 4
    tb.dut.start.value = 1
    await RisingEdge(tb.dut.clk)
    tb.dut.start.value = 0
    await ReadOnly()
    assert int(tb.dut.geom_err.value) == 1


# ----------------------------------------------------------------------------- pytest runner
# D comes from the test geometry's config: sim (D = 32) in `make test`, simwide (D = 64) in the slow set.
@pytest.mark.sim
@pytest.mark.parametrize("geometry", ["sim", pytest.param("simwide", marks=pytest.mark.slow)])
@pytest.mark.parametrize("simulator", runner.SIMULATORS)
def test_cpt_wgrad_former(simulator: str, geometry: str) -> None:
    runner.run(geometry, simulator, __file__)
