"""The plane order: the sequence in which the controller feeds plane pairs to the array (Horner order).

One output tile takes a_bits x b_bits x Kw steps.  Plane pairs (i, j) are visited by falling weight
s = i + j (diagonals), and within a pair the Kw words of the reduction.  Each PE doubles its accumulator
on the first step of every diagonal but the first ("shift") and subtracts the count when exactly one
plane is the top plane of a signed operand ("neg"); the last step of the tile ("last") copies the sum to
the PE's shadow register.  rtl/cpt_feeder.v generates exactly this sequence; the unit testbenches use
this module to drive the PE and the array.  (Not to be confused with the precision schedules of
cpt_hw.train or the HLS busy counts of cpt_hw.hw.hls_cycles.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

#: Bit positions of the PE control word (rtl/pe.v).
CTL_VALID, CTL_SHIFT, CTL_NEG, CTL_LAST = 0, 1, 2, 3


@dataclass(frozen=True)
class Step:
    i: int          # A plane
    j: int          # B plane
    w: int          # D-bit word of the reduction, 0..Kw-1
    shift: bool
    neg: bool
    last: bool

    @property
    def ctl(self) -> int:
        """The 4-bit PE control word of this (valid) step."""
        return (1 << CTL_VALID) | (self.shift << CTL_SHIFT) | (self.neg << CTL_NEG) | (self.last << CTL_LAST)


def plane_steps(a_bits: int, b_bits: int, kw: int, a_signed: bool, b_signed: bool) -> Iterator[Step]:
    """The steps of one output tile, in feeding order."""
    top = a_bits + b_bits - 2
    for s in range(top, -1, -1):
        i_lo, i_hi = max(0, s - (b_bits - 1)), min(a_bits - 1, s)
        for i in range(i_lo, i_hi + 1):
            j = s - i
            neg = (a_signed and i == a_bits - 1) != (b_signed and j == b_bits - 1)
            for w in range(kw):
                yield Step(i, j, w, shift=(s != top and i == i_lo and w == 0), neg=neg,
                           last=(s == 0 and w == kw - 1))
