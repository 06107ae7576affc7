"""cpt_driver.plan: how a GEMM is split into calls and which B each call prefetches."""

import pytest

from cpt_driver.plan import LEAD_WORDS, k_chunks, plan_calls


@pytest.mark.parametrize("k, kt, d", [(8192, 4608, 64), (131072, 4608, 64), (4609, 4608, 64), (1000, 256, 32),
                                      (4608, 4608, 64), (70, 64, 32)])
@pytest.mark.parametrize("prefetch", [True, False])
def test_k_chunks_cover_k_in_whole_words(k, kt, d, prefetch):
    chunks = k_chunks(k, kt, d, prefetch)
    assert chunks[0][0] == 0 and chunks[-1][1] == k
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(chunks, chunks[1:]))
    assert all(0 < k1 - k0 <= kt for k0, k1 in chunks)
    assert all((k1 - k0) % d == 0 for k0, k1 in chunks[:-1])
    if k <= kt:
        assert chunks == [(0, k)]


def test_prefetching_chunks_start_short_and_grow():
    sizes = [k1 - k0 for k0, k1 in k_chunks(8192, 4608, 64, True)]
    assert sizes[0] == LEAD_WORDS * 64
    words = [s // 64 for s in sizes]
    assert all(b <= -(-a * 3 // 2) for a, b in zip(words, words[1:]))   # each call can hide the next B
    assert sizes == [512, 768, 1152, 1728, 2624, 1408]
    assert [k1 - k0 for k0, k1 in k_chunks(8192, 4608, 64, False)] == [4608, 3584]


def test_each_call_hints_the_next_calls_b():
    calls = plan_calls(m=40, n=30, k=700, mt=16, nt=16, kt=256, dot_width=32, prefetch=True)
    assert len(calls) == 3 * 2 * 3   # row blocks x column tiles x K chunks
    for c, nxt in zip(calls, calls[1:]):
        assert c.hint_tile == nxt.b_tile
    assert calls[-1].hint_tile is None
    assert all(c.hint_tile is None for c in plan_calls(40, 30, 700, 16, 16, 256, 32, prefetch=False))
    # every (row, column, K) element is covered once
    cover = {(m, n, k) for c in calls for m in (c.m0, c.m1 - 1) for n in (c.n0, c.n1 - 1) for k in (c.k0, c.k1 - 1)}
    assert (0, 0, 0) in cover and (39, 29, 699) in cover
