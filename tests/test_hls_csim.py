"""C simulation of the HLS kernel (g++ + hls4ml's ap_types), bit-exact against cpt_hw.hw.golden.

Every call checks status, id, the predicted busy count (cycles) and the whole simulated DDR: results
where they belong, every other byte unchanged.  The `sim` preset runs the full precision sweep; the
`zc706` preset a few GEMMs that cross its B blocks and tile edges.
"""

import numpy as np
import pytest

from cpt_hw.flows import csim
from cpt_hw.gen.generator import render
from cpt_hw.gen.hls_conv_vectors import add_conv, random_conv_workload, refused_conv_workload
from cpt_hw.gen.hls_vectors import Workload, flags_word
from cpt_hw.hw.calls import REFUSED_CALLS, PrefetchState, refused_call
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.conv_calls import ConvArgs
from cpt_hw.hw.cycle_model import gemm_cycles
from cpt_hw.hw.hls_cycles import busy_counts, conv_cycles, conv_pass_counts, conv_passes
from cpt_hw.hw.regmap import CONV_STATUS_BITS, STATUS_BITS

SIM = HardwareConfig.from_preset("sim")
ZC706 = HardwareConfig.from_preset("zc706")
ERR = {name: 1 << bit for name, bit in STATUS_BITS.items()}
ERR_CONV = 1 << CONV_STATUS_BITS["ERR_CONV"]


@pytest.fixture(scope="module")
def sim_binary():
    return csim.build(SIM)


def run_checked(cfg, workload, binary=None):
    res = csim.run(cfg, workload, binary)
    assert csim.compare(workload, res) == []
    return res


def test_every_precision_pair_signed_and_unsigned(sim_binary):
    wl = csim.precision_workload(SIM, seed=11)
    combos = {(e.call.a_bits, e.call.b_bits, e.call.flags) for e in wl.expected}
    assert combos == {(a, b, flags_word(sa, sb)) for a in range(1, 9) for b in range(1, 9)
                      for sa in (False, True) for sb in (False, True)}
    res = run_checked(SIM, wl, sim_binary)
    assert all(s == 0 for s in res.status)
    # the sweep is not trivially small: edge tiles, several B blocks, negative results all occur
    calls = [e.call for e in wl.expected]
    assert any(c.m % SIM.rows for c in calls) and any(c.n % SIM.cols for c in calls)
    assert any(c.k % SIM.dot_width for c in calls) and any(c.n > 2 * SIM.b_block_cols for c in calls)
    assert any((e.c_matrix < 0).any() for e in wl.expected)


def test_tile_and_block_edges_full_k_and_dirty_padding(sim_binary):
    wl = csim.edge_workload(SIM, seed=5)
    assert any(e.call.k == SIM.k_max for e in wl.expected)
    run_checked(SIM, wl, sim_binary)


def test_refused_calls_set_their_bits_and_touch_no_memory(sim_binary):
    wl = csim.refused_workload(SIM, seed=3)
    res = run_checked(SIM, wl, sim_binary)
    got = {e.note: s for e, s in zip(wl.expected, res.status)}
    # the bits the table states for each case (refused_workload checked that call_status agrees)
    assert len(got) == len(REFUSED_CALLS) + 1
    for case in REFUSED_CALLS:
        assert got[case.name] == case.status, f"{case.name}: status 0x{got[case.name]:x}, want 0x{case.status:x}"
    assert got["legal call after refusals"] == 0
    assert all(c == 0 for c, s in zip(res.cycles, res.status) if s)
    # memory: only the one legal call's result area changed
    changed = np.flatnonzero(res.image != wl.initial_image())
    legal = wl.expected[-1].call
    assert changed.size and changed.min() >= legal.c and changed.max() < legal.c + legal.m * 2 * 4 * 3


def test_prefetch_hits_and_misses_are_bit_exact(sim_binary):
    """K-split chains with the B prefetch hint: hits skip block 0's B load (the kernel's busy count says
    so), a mismatched hint, a refused call in between and a final call without hint are misses; every
    result bit-exact and no stray write (compare())."""
    wl = csim.prefetch_workload(SIM, seed=4)
    res = run_checked(SIM, wl, sim_binary)
    state = PrefetchState()
    hits = [state.step(e.call, e.status) for e in wl.expected]
    notes = [e.note for e, hit in zip(wl.expected, hits) if hit]
    assert notes == ["hits call 1", "hits call 2", "blocks call 1", "blocks call 2"], notes
    assert not hits[wl.expected.index(next(e for e in wl.expected if e.note == "miss call 1"))]
    for e, hit, cycles in zip(wl.expected, hits, res.cycles):
        c = e.call
        if hit:  # the same call without the prefetch reads block 0's B itself
            plain = busy_counts(SIM, c.m, c.n, c.k, c.a_bits, c.b_bits)
            assert busy_counts(SIM, c.m, c.n, c.k, c.a_bits, c.b_bits, b_prefetched=True).load_beats < plain.load_beats


def test_compare_reports_wrong_results_and_stray_writes(sim_binary):
    wl = Workload(SIM, seed=9)
    wl.add_gemm(4, 3, 40, 3, 3, True, False, note="victim")
    res = csim.run(SIM, wl, sim_binary)
    c = wl.expected[0].call
    res.image[c.c + 4] ^= 1                  # C[0, 1]
    res.image[c.a - 1] ^= 0x80               # a canary byte before A
    res.status[0] = ERR["ERR_WINDOW"]
    problems = csim.compare(wl, res)
    assert any("status/id/cycles = 0x8/" in p for p in problems)
    assert any("call 0 (victim) C[0, 1]" in p for p in problems)
    assert any("outside every result area" in p for p in problems)


def test_zc706_blocks_edges_and_refusals():
    cfg = ZC706
    wl = Workload(cfg, seed=706)
    r, c, d, bb = cfg.rows, cfg.cols, cfg.dot_width, cfg.b_block_cols
    wl.add_gemm(r + 1, bb + c + 3, d + 3, 8, 8, True, True, note="2 blocks, 8x8 signed")
    wl.add_gemm(2 * r + 5, c + 1, 2 * d - 1, 1, 1, window="tight", note="1x1 unsigned")
    wl.add_gemm(r - 3, bb + 1, 3 * d + 7, 3, 5, True, False, dirty_padding=True, note="3x5 mixed")
    wl.add_refused_case(refused_call("M = 0"))
    wl.add_refused_case(refused_call("C misaligned"))
    wl.add_refused_case(refused_call("hint wraps the address space"))
    run_checked(cfg, wl)


def test_cycles_are_the_busy_count_of_the_stages(sim_binary):
    wl = Workload(SIM, seed=1)
    shapes = [(7, 9, 200, 8, 8), (7, 9, 20, 1, 1), (1, 1, 1, 1, 1)]
    for m, n, k, ab, bb in shapes:
        wl.add_gemm(m, n, k, ab, bb)
    res = run_checked(SIM, wl, sim_binary)  # compare() asserts cycles == busy_counts(...).cycles
    compute_bound = busy_counts(SIM, *shapes[0])
    tiles = -(-7 // SIM.rows) * (-(-9 // SIM.cols))
    assert compute_bound.cycles == compute_bound.compute_iters >= tiles * 8 * 8 * (-(-200 // SIM.dot_width))
    assert res.cycles[0] > res.cycles[1] > res.cycles[2] > 0


@pytest.mark.parametrize("shape", [(4096, 16, 144), (4096, 64, 576), (64, 576, 4096), (300, 300, 1000)], ids=str)
@pytest.mark.parametrize("bits", [(3, 3), (8, 8)], ids=str)
def test_busy_count_is_under_the_twins_cycles(shape, bits):
    """Both follow one dataflow; the busy count leaves out only latencies and fill, so it stays within
    1 % under the twin's cycles -- also where several B blocks follow each other (a later block's first A
    tile loads while the previous block computes, in both)."""
    hls = busy_counts(ZC706, *shape, *bits).cycles
    twin = gemm_cycles(ZC706, *shape, *bits).total
    assert 0.99 * twin <= hls <= twin


def test_binary_is_cached(sim_binary):
    mtime = sim_binary.stat().st_mtime_ns
    assert csim.build(SIM) == sim_binary and sim_binary.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_address_sanitizer_finds_no_stray_access():
    """Every sim suite on an AddressSanitizer build: no access outside the simulated DDR or any buffer."""
    binary = csim.build(SIM, sanitize=True)
    for wl in (csim.precision_workload(SIM, 21), csim.edge_workload(SIM, 22), csim.refused_workload(SIM, 23)):
        run_checked(SIM, wl, binary)


@pytest.mark.slow
def test_zc706_full_sweep():
    results = csim.sweep(ZC706, seed=706)
    assert [r.name for r in results] == ["precisions", "edges", "refused", "prefetch"]
    assert all(r.problems == [] for r in results), [p for r in results for p in r.problems]


# ----------------------------------------------------------------------------- interface 4: conv calls
SIM_CONV = HardwareConfig.from_preset("sim", {"conv_engine": True, "name": "sim_conv"})


@pytest.fixture(scope="module")
def conv_binary():
    return csim.build(SIM_CONV)


def test_conv_headers_only_in_a_conv_engine_kernel():
    """Without the engine the generated kernel is interface 3's: no conv header, no conv constant."""
    plain = {str(p): v for p, v in render(SIM, ["hls"]).items()}
    conv = {str(p): v for p, v in render(SIM_CONV, ["hls"]).items()}
    assert not any("cpt_conv" in p for p in plain) and "hls/kernel/cpt_conv.h" in conv
    assert "err_conv_bit" not in plain["hls/cpt_config.h"] and "err_conv_bit = 6" in conv["hls/cpt_config.h"]
    assert "cpt::conv_top<cpt_config>" in conv["hls/cpt_gemm.cpp"] and "gemm_top" in plain["hls/cpt_gemm.cpp"]


@pytest.mark.parametrize("op", ["fwd", "dgrad", "wgrad"])
def test_conv_calls_are_bit_exact(conv_binary, op):
    """Random geometries (C in 3/8/16/64, 4..16 pixels, 1x1/3x3, stride 1/2, padding 0/1, bits 1..8 signed and
    unsigned, bands, C16, SUMS): every result element and code sum against emu_conv, every other byte
    unchanged, and the busy count (cycles) exactly as cpt_hw.hw.hls_cycles predicts it."""
    wl = random_conv_workload(SIM_CONV, seed={"fwd": 5, "dgrad": 6, "wgrad": 7}[op], calls=10, ops=(op,))
    geometry = {(e.call.conv >> 12 & 3, e.call.conv >> 4 & 0xF) for e in wl.expected}
    assert len(geometry) >= 2
    res = run_checked(SIM_CONV, wl, conv_binary)
    assert all(s == 0 for s in res.status)
    # cycles: exactly hls_cycles' replay of the passes, and both the load stage and Compute bound some pass
    calls = [ConvArgs.decode(e.call) for e in wl.expected]
    assert res.cycles == [conv_cycles(SIM_CONV, g) for g in calls]
    counts = [conv_pass_counts(SIM_CONV, g, ps) for g in calls for ps in conv_passes(SIM_CONV, g) if ps.m and ps.k]
    assert {c.cycles == c.load_beats for c in counts} == {True, False}


def test_refused_conv_calls_touch_no_memory(conv_binary):
    wl = refused_conv_workload(SIM_CONV, seed=8)
    res = run_checked(SIM_CONV, wl, conv_binary)
    assert res.status[-1] == 0 and all(s != 0 for s in res.status[:-1])
    got = {s & ERR_CONV for s in res.status[:-1]}
    assert got == {0, ERR_CONV}  # ERR_CONV alone and the other bits alone are both exercised
    assert res.cycles[:-1] == [0] * (len(res.status) - 1)


def test_gemm_calls_run_unchanged_beside_conv_calls(conv_binary):
    wl = random_conv_workload(SIM_CONV, seed=9, calls=3)
    wl.add_gemm(SIM.rows + 1, SIM.b_block_cols + 1, SIM.dot_width + 3, 5, 3, True, True, note="gemm op 0")
    run_checked(SIM_CONV, wl, conv_binary)


def test_conv_code_sums_are_exact(conv_binary):
    """SUMS: forward and weight-gradient calls across several B blocks (K > b_block_cols), signed and
    unsigned, bands, padding, 1x1 stride 2 (the sparse chunk): the sums area byte for byte against emu_conv,
    canaries around it unchanged (the image comparison), and every sum really written."""
    wl = Workload(SIM_CONV, seed=10)
    k = 2 * SIM_CONV.b_block_cols + 1
    shapes = [("fwd", 2, 3, k, 6, 5, 3, 3, 1, 1, 3, 4, True, True, (0, 0)),
              ("fwd", 1, 8, 5, 8, 8, 3, 3, 2, 1, 5, 2, False, True, (1, 2)),
              ("fwd", 1, 16, 3, 4, 4, 1, 1, 1, 0, 8, 8, True, False, (0, 0)),
              ("wgrad", 2, 3, k, 6, 6, 3, 3, 2, 1, 4, 3, True, True, (1, 2)),
              ("wgrad", 1, 8, 5, 8, 8, 3, 3, 1, 1, 2, 6, False, True, (0, 0)),
              ("wgrad", 2, 3, 4, 8, 8, 1, 1, 2, 0, 7, 5, True, False, (0, 0))]
    for op, *geometry, band in shapes:
        add_conv(wl, op, *geometry, band=band, sums=True, note=f"{op} SUMS {geometry}")
    res = run_checked(SIM_CONV, wl, conv_binary)
    assert all(s == 0 for s in res.status)
    before = wl.initial_image()
    for e in wl.expected:
        g = ConvArgs.decode(e.call)
        area = slice(e.call.sums, e.call.sums + 4 * g.sums_count())
        assert g.flag("SUMS") and (res.image[area] != before[area]).any()
