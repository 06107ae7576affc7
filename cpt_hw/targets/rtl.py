"""Verilog twin: the top level ``cpt_gemm`` (HLS port names) and its register-map header.

Only what Verilog parameters cannot express is rendered here: the top level binds the config's
numbers to the parameters of the hand-written core (``rtl/cpt_core.v``), and ``cpt_gemm_regmap.vh``
turns :func:`cpt_hw.regmap.register_map` into localparams that ``rtl/cpt_control.v`` includes, so
no register offset or bit position is ever written by hand in ``rtl/``.
"""

from __future__ import annotations

import jinja2

from ..config import RESULT_BITS, HardwareConfig
from ..errors import ConfigError
from ..regmap import CTRL_BITS, FLAG_BITS, IRQ_BITS, STATUS_BITS, arguments, register_map

#: Arguments the control block needs as two words (lo/hi) whatever the address width.
_WIDE_ARGS = ("a", "b", "c", "win_base", "win_limit", "cycles", "next_b")


def check(cfg: HardwareConfig) -> None:
    """Constraints of the Verilog twin beyond those of the config (also checked in rtl/ initial blocks)."""
    d = cfg.dot_width
    if d & (d - 1):
        raise ConfigError(f"dot_width = {d}: the Verilog twin needs a power of two "
                          "(K is split into words by shifting, addresses are aligned by masking)")
    if cfg.acc_width > RESULT_BITS:  # pragma: no cover - the config already refuses it
        raise ConfigError(f"acc_width = {cfg.acc_width}: must be <= {RESULT_BITS}")


def register_params(cfg: HardwareConfig) -> list[tuple[str, int, str]]:
    """(localparam name, value, comment) for every register word the control block decodes.

    Argument words are named ``REG_<ARG>_W<n>`` (n = 0 for bits 31:0, 1 for 63:32) and an output's
    ap_vld word ``REG_<ARG>_CTRL``; a word that does not exist (the high word of a pointer with 32-bit
    addresses) is -1, which no address matches.
    """
    rm = register_map(cfg)
    out: list[tuple[str, int, str]] = []
    for name in ("CTRL", "GIE", "IER", "ISR"):
        out.append((f"REG_{name}", rm.offset(name), name))
    for arg in arguments(cfg):
        words = [r for r in rm.registers if r.arg == arg.name]
        for w in range(2 if arg.name in _WIDE_ARGS else 1):
            hit = [r for r in words if r.word == w and not r.name.endswith("_ctrl")]
            out.append((f"REG_{arg.name.upper()}_W{w}", hit[0].offset if hit else -1,
                        hit[0].name if hit else "absent"))
        if arg.direction == "out":
            ctrl = [r for r in words if r.name.endswith("_ctrl")][0]
            out.append((f"REG_{arg.name.upper()}_CTRL", ctrl.offset, ctrl.name))
    return out


def bit_params() -> list[tuple[str, int]]:
    return ([(f"CTRL_{k}", v) for k, v in CTRL_BITS.items()] + [(f"IRQ_{k}", v) for k, v in IRQ_BITS.items()]
            + [(f"FLAG_{k}", v) for k, v in FLAG_BITS.items()] + [(f"STATUS_{k}", v) for k, v in STATUS_BITS.items()])


def render(cfg: HardwareConfig, env: jinja2.Environment) -> dict[str, str]:
    check(cfg)
    ctx = {"registers": register_params(cfg), "bits": bit_params(), "ctrl_addr_width": register_map(cfg).addr_width}
    return {
        "cpt_gemm_regmap.vh": env.get_template("rtl/cpt_gemm_regmap.vh.j2").render(**ctx),
        "cpt_gemm.v": env.get_template("rtl/cpt_gemm.v.j2").render(**ctx),
    }
