"""Verilog twin: the top level ``cpt_gemm`` (HLS port names) and its register-map header.

Only what Verilog parameters cannot express is rendered here: the top level binds the config's
numbers to the parameters of the hand-written core (``rtl/cpt_core.v``), and ``cpt_gemm_regmap.vh``
turns :func:`cpt_hw.regmap.register_map` into localparams that ``rtl/cpt_control.v`` includes, so
no register offset or bit position is ever written by hand in ``rtl/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from ..config import RESULT_BITS, HardwareConfig
from ..errors import ConfigError
from ..regmap import CTRL_BITS, FLAG_BITS, IRQ_BITS, STATUS_BITS, arguments, register_map

def check(cfg: HardwareConfig) -> None:
    """Constraints of the Verilog twin beyond those of the config (also checked in rtl/ initial blocks)."""
    d = cfg.dot_width
    if d & (d - 1):
        raise ConfigError(f"dot_width = {d}: the Verilog twin needs a power of two "
                          "(K is split into words by shifting, addresses are aligned by masking)")
    if cfg.acc_width > RESULT_BITS:  # pragma: no cover - the config already refuses it
        raise ConfigError(f"acc_width = {cfg.acc_width}: must be <= {RESULT_BITS}")


def register_params(cfg: HardwareConfig) -> list[tuple[str, int, str]]:
    """(localparam name, value, comment) of the control words: CTRL, GIE, IER, ISR."""
    rm = register_map(cfg)
    return [(f"REG_{name}", rm.offset(name), name) for name in ("CTRL", "GIE", "IER", "ISR")]


@dataclass(frozen=True)
class Bank:
    """The argument register bank as rtl/cpt_control.v implements it: tables of 32-bit words.

    Input words are packed into the ``args`` bus in signature order (word i at bits 32i +: 32), output
    data words into ``outs`` likewise; ``fields`` gives each argument's bit position on its bus.
    """

    in_offsets: list[int]          # offset of input word i
    out_offsets: list[int]         # offset of output data word i
    out_reset: list[int]           # value of output data word i after reset
    ctrl_offsets: list[int]        # offset of output j's control word (ap_vld)
    fields: list[tuple[str, int, str]]  # (ARG_<NAME> / OUT_<NAME>, bit position, comment)


def bank(cfg: HardwareConfig) -> Bank:
    """The register bank of ``cfg``'s argument list (cpt_hw.regmap.ARGUMENTS: nothing is named here)."""
    rm = register_map(cfg)
    b = Bank([], [], [], [], [])
    for a in arguments(cfg):
        words = [r for r in rm.registers if r.arg == a.name and not r.name.endswith("_ctrl")]
        width = "AXI_AW" if a.address else str(a.bits)
        if a.direction == "in":
            b.fields.append((f"ARG_{a.name.upper()}", 32 * len(b.in_offsets), f"{a.name}: args[ARG_{a.name.upper()} +: {width}]"))
            b.in_offsets.extend(r.offset for r in words)
        else:
            b.fields.append((f"OUT_{a.name.upper()}", 32 * len(b.out_offsets), f"{a.name}: outs[OUT_{a.name.upper()} +: {width}]"))
            # the twin's id reads the config's ID word at any time, also before the first call
            reset = cfg.id_word if a.name == "id" else 0
            b.out_offsets.extend(r.offset for r in words)
            b.out_reset.extend(reset >> (32 * w) & 0xFFFFFFFF for w in range(len(words)))
            b.ctrl_offsets.append(rm.offset(f"{a.name}_ctrl"))
    return b


def packed(words: list[int]) -> str:
    """A Verilog concatenation of 32-bit words, word 0 in bits 31:0."""
    return "{" + ", ".join(f"32'h{w:08x}" for w in reversed(words)) + "}"


def bit_params() -> list[tuple[str, int]]:
    return ([(f"CTRL_{k}", v) for k, v in CTRL_BITS.items()] + [(f"IRQ_{k}", v) for k, v in IRQ_BITS.items()]
            + [(f"FLAG_{k}", v) for k, v in FLAG_BITS.items()] + [(f"STATUS_{k}", v) for k, v in STATUS_BITS.items()])


def render(cfg: HardwareConfig, env: jinja2.Environment) -> dict[str, str]:
    check(cfg)
    ctx = {"registers": register_params(cfg), "bits": bit_params(), "ctrl_addr_width": register_map(cfg).addr_width,
           "bank": bank(cfg), "packed": packed}
    return {
        "cpt_gemm_regmap.vh": env.get_template("rtl/cpt_gemm_regmap.vh.j2").render(**ctx),
        "cpt_gemm.v": env.get_template("rtl/cpt_gemm.v.j2").render(**ctx),
    }
