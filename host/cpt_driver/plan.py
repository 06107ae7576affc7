"""How the driver splits one GEMM into device calls, and which B each call prefetches.

One source for :class:`cpt_driver.Accelerator` and for bench/bench_rtl.py (which times the same call
sequence with the cycle model).  A GEMM larger than one call is cut into B tiles (K ranges x N ranges,
K outer) and each B tile into row blocks of A.  With prefetching, every call but the last names the
next call's B as its hint, so the device loads it while computing (docs/rtl.md, "B prefetch").

K split.  Only the first call of a chain loads its B without overlap; every later one finds it
prefetched, provided the call before it ran long enough to read it in its idle port cycles.  So the
K chunks start short and grow geometrically (LEAD_WORDS D-bit words, then x 1.5, capped at the
tile's K): the unhidden first B load is short, and each call is long enough to hide the next one's
(a call's spare port time grows with its K like the next B does).  Without prefetching K is cut into
equal-as-possible chunks of at most the tile's K, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

#: First K chunk of a prefetching chain, in D-bit words; each next one is half as long again.
LEAD_WORDS = 8


def k_chunks(k: int, kt: int, dot_width: int, prefetch: bool) -> list[tuple[int, int]]:
    """(k0, k1) ranges covering 0..k, each at most kt long; whole D-bit words except the last."""
    if k <= kt:
        return [(0, k)]
    if not prefetch:
        return [(k0, min(k, k0 + kt)) for k0 in range(0, k, kt)]
    out, k0, words = [], 0, LEAD_WORDS
    while k0 < k:
        size = min(words * dot_width, kt, k - k0)
        out.append((k0, k0 + size))
        k0 += size
        words += -(-words // 2)
    return out


@dataclass(frozen=True)
class PlannedCall:
    """One device call: rows [m0, m1) of A and C, columns [n0, n1) of B and C, reduction [k0, k1).

    b_tile: index of its B tile (calls with equal index share one packed B); hint_tile: the B tile the
    call prefetches (the next call's), or None."""

    m0: int
    m1: int
    n0: int
    n1: int
    k0: int
    k1: int
    b_tile: int
    hint_tile: int | None


def plan_calls(m: int, n: int, k: int, mt: int, nt: int, kt: int, dot_width: int,
               prefetch: bool) -> list[PlannedCall]:
    """The calls of an (M x K) . (K x N) GEMM with tiles of at most mt x nt x kt, in the order they run."""
    tiles = [(k0, k1, n0, min(n, n0 + nt)) for k0, k1 in k_chunks(k, kt, dot_width, prefetch)
             for n0 in range(0, n, nt)]
    calls = []
    for i, (k0, k1, n0, n1) in enumerate(tiles):
        for m0 in range(0, m, mt):
            calls.append((m0, min(m, m0 + mt), n0, n1, k0, k1, i))
    out = []
    for j, c in enumerate(calls):
        hint = calls[j + 1][6] if prefetch and j + 1 < len(calls) else None
        out.append(PlannedCall(*c, hint))
    return out
