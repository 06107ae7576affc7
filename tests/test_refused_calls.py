"""The table of refused calls (cpt_hw.hw.calls.REFUSED_CALLS) against the rule (call_status) itself.

The consumers -- sim/cpt_gemm's test_refused_calls (RTL), cpt_hw.flows.csim's refused workload (HLS),
tests/test_driver_emu.py and tests/test_driver_errors.py (emulated device, driver) -- each run every
case on a base of their own; this checks the table on bases they do not cover.
"""

import pytest

from cpt_driver import layout
from cpt_hw.errors import CptHwError
from cpt_hw.flows.rtl_sim import GEOMETRIES, geometry
from cpt_hw.hw.calls import REFUSED_CALLS, Call, RefusedCall, refused_call, refused_calls
from cpt_hw.hw.regmap import STATUS_BITS


def bases(cfg):
    """A tight window with A < B < C, and a loose one with C lowest, signed flags and 1-bit operands."""
    wb, d = cfg.word_bytes, cfg.dot_width
    m, n, k = cfg.rows + 1, cfg.cols + 1, d + 1
    a = 0x1000
    b = a + -(-layout.operand_bytes(m, k, 2, d) // wb) * wb
    c = b + -(-layout.operand_bytes(n, k, 2, d) // wb) * wb
    tight = Call(a=a, b=b, c=c, m=m, n=n, k=k, a_bits=2, b_bits=2, flags=0, win_base=a,
                 win_limit=c + layout.result_bytes(m, n, cfg.cols))
    loose = Call(a=0x3000, b=0x2000, c=0x1000, m=1, n=1, k=1, a_bits=1, b_bits=1, flags=3, win_base=wb,
                 win_limit=1 << 20)
    return tight, loose


@pytest.mark.parametrize("name", GEOMETRIES)
def test_every_case_gives_its_bits_on_any_base(name):
    cfg = geometry(name)
    for base in bases(cfg):
        assert len(refused_calls(cfg, base)) == len(REFUSED_CALLS)  # raises on the first disagreement


def test_the_table_covers_each_bit_alone_and_names_each_case_once():
    alone = {case.bits[0] for case in REFUSED_CALLS if len(case.bits) == 1}
    assert alone == set(STATUS_BITS) - {"ERR_AXI_RESP"}  # a bus error is raised during a run, not refused
    assert len({case.name for case in REFUSED_CALLS}) == len(REFUSED_CALLS)
    assert refused_call("M = 0").status == 1 << STATUS_BITS["ERR_DIM"]


def test_a_base_outside_the_contract_or_a_wrong_case_is_one_clear_error():
    cfg = geometry("sim")
    tight, _ = bases(cfg)
    with pytest.raises(CptHwError, match=r"^base of the refused calls must be legal with win_base > 0"):
        refused_calls(cfg, Call(**{**tight.__dict__, "m": 0}))
    wrong = RefusedCall("M = 0, said to be ERR_BITS", lambda cfg, c: {"m": 0}, ("ERR_BITS",))
    with pytest.raises(CptHwError, match=r"^refused call 'M = 0, said to be ERR_BITS' on config 'sim': call_status "
                                         r"gives 0x1, the table 0x2"):
        refused_calls(cfg, tight, (wrong,))
