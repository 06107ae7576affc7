"""What the driver knows about one accelerator: its register map and sizes, read from ``regmap.json``.

``cpt-hw generate`` writes ``build/<cfg>/driver/regmap.json`` from the config; that file (copied next to
the bitstream on a board) is all the driver needs, so it runs without ``cpt_hw`` or torch.  When a
``cpt_hw.hw.config.HardwareConfig`` is handed in instead, the same dictionary is computed from it (the
caller has cpt_hw, so importing its register map then is free).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import SpecError

#: Arguments of cpt_gemm the driver programs or reads (docs/registers.md).
_NEEDED_ARGS = ("a", "b", "c", "m", "n", "k", "a_bits", "b_bits", "flags", "win_base", "win_limit",
                "status", "cycles", "id")
_NEEDED_LAYOUT = ("word_bytes", "dot_width", "rows", "cols", "operand_bits", "k_max", "max_dim", "b_block_cols",
                  "result_bytes")
_CONTROL = ("CTRL", "GIE", "IER", "ISR")

DEFAULT_CONFIG = "zc706"


@dataclass(frozen=True)
class DeviceSpec:
    """Register offsets, bit positions and sizes of one accelerator instance (from regmap.json)."""

    name: str
    id_word: int
    registers: Mapping[str, int]            # register name -> byte offset
    arg_words: Mapping[str, tuple[int, ...]]  # argument -> offsets of its 32-bit data words, LSW first
    inputs: tuple[str, ...]   # input arguments in signature order (regmap.json "arguments")
    outputs: tuple[str, ...]  # output arguments, each with an <name>_ctrl ap_vld word
    ctrl_bits: Mapping[str, int]
    irq_bits: Mapping[str, int]
    flag_bits: Mapping[str, int]
    status_bits: Mapping[str, int]
    status_doc: Mapping[str, str]
    word_bytes: int      # D/8: DDR granule and address alignment of packed operands
    dot_width: int       # D: bits per PE word
    rows: int            # PE rows
    cols: int            # PE columns: C's row stride is N rounded up to this
    operand_bits: int    # largest a_bits / b_bits
    k_max: int           # largest K of one call
    max_dim: int         # largest M and N of one call
    b_block_cols: int    # B columns the device loads at once; A is read once per such block
    result_bytes: int    # bytes per C element (4: int32)
    kernel: str = "cpt_gemm"  # HLS top function name: the IP's VLNV is xilinx.com:hls:<kernel>:<version>
    source: str = field(default="?", compare=False)  # where the spec came from, for messages
    hw_config: Any = field(default=None, compare=False)  # the HardwareConfig, when one was given
    #: the convolution engine (interface 4; regmap.json's "conv": max_kernel, tensor_buffer_bits, ops), or None
    conv: Mapping[str, Any] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "regmap", hw_config: Any = None) -> "DeviceSpec":
        """Build from the dictionary of ``regmap.json`` (``cpt_hw.hw.regmap.RegisterMap.to_dict()``)."""
        try:
            regs = {r["name"]: int(r["offset"]) for r in d["registers"]}
            words: dict[str, list[tuple[int, int]]] = {}
            for r in d["registers"]:
                if r.get("arg") and not r["name"].endswith("_ctrl"):
                    words.setdefault(r["arg"], []).append((int(r["word"]), int(r["offset"])))
            layout = d["layout"]
            args = [(str(a["name"]), str(a["direction"])) for a in d["arguments"]]
            missing = [k for k in _NEEDED_LAYOUT if k not in layout]
            missing += [a for a in _NEEDED_ARGS if a not in words]
            missing += [c for c in _CONTROL if c not in regs]
            if missing:
                raise SpecError(f"{source}: register map lacks {', '.join(missing)}")
            return cls(
                name=str(d["config"]), id_word=int(d["id_word"]), registers=regs,
                arg_words={a: tuple(off for _, off in sorted(w)) for a, w in words.items()},
                inputs=tuple(a for a, way in args if way == "in"), outputs=tuple(a for a, way in args if way == "out"),
                ctrl_bits=dict(d["ctrl_bits"]), irq_bits=dict(d["irq_bits"]), flag_bits=dict(d["flag_bits"]),
                status_bits=dict(d["status_bits"]), status_doc=dict(d.get("status_doc", {})),
                **{k: int(layout[k]) for k in _NEEDED_LAYOUT}, kernel=str(d.get("kernel", "cpt_gemm")),
                source=source, hw_config=hw_config, conv=dict(d["conv"]) if d.get("conv") else None)
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"{source}: malformed register map ({type(e).__name__}: {e})") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "DeviceSpec":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SpecError(f"register map {path}: not found (run `cpt-hw generate`)") from None
        except json.JSONDecodeError as e:
            raise SpecError(f"register map {path}: malformed JSON: {e}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_hardware_config(cls, cfg: Any) -> "DeviceSpec":
        """From a ``cpt_hw.hw.config.HardwareConfig`` (imports cpt_hw's register map lazily)."""
        from cpt_hw.hw.regmap import register_map  # only reached when the caller already holds a cpt_hw object

        return cls.from_dict(register_map(cfg).to_dict(), source=f"HardwareConfig {cfg.name!r}", hw_config=cfg)

    # ------------------------------------------------------------------ helpers
    def flag(self, name: str) -> int:
        return 1 << self.flag_bits[name]

    def decode_status(self, status: int) -> str:
        """'ERR_WINDOW (an operand or result byte range lies outside ...)' for each set bit."""
        names = [f"{n} ({self.status_doc.get(n, '')})".replace(" ()", "")
                 for n, bit in sorted(self.status_bits.items(), key=lambda kv: kv[1]) if status >> bit & 1]
        unknown = status & ~sum(1 << b for b in self.status_bits.values())
        if unknown:
            names.append(f"unknown bits 0x{unknown:x}")
        return ", ".join(names) or "none"

    def decode_ctrl(self, ctrl: int) -> str:
        """'CTRL=0x00000001 (ap_start=1 ap_done=0 ap_idle=0 ap_ready=0 auto_restart=0 interrupt=0)'."""
        bits = " ".join(f"{n.lower()}={ctrl >> b & 1}" for n, b in sorted(self.ctrl_bits.items(), key=lambda kv: kv[1]))
        return f"CTRL=0x{ctrl:08x} ({bits})"


def _search_roots() -> list[Path]:
    roots = [Path(os.environ["CPT_HW_ROOT"])] if os.environ.get("CPT_HW_ROOT") else []
    return roots + [Path.cwd()]


def resolve_spec(config: Any = None) -> DeviceSpec:
    """The :class:`DeviceSpec` for ``config``, which may be

    * a ``cpt_hw.hw.config.HardwareConfig`` (its register map is computed),
    * a mapping (the content of regmap.json), a path to a regmap.json file, or
    * a config name: ``build/<name>/driver/regmap.json`` under ``$CPT_HW_ROOT`` or the working directory,
      else the cpt_hw preset of that name when cpt_hw is installed.  ``None`` means ``"zc706"``.
    """
    if config is None:
        config = DEFAULT_CONFIG
    if isinstance(config, DeviceSpec):
        return config
    if hasattr(config, "fields_dict") and hasattr(config, "id_word"):
        return DeviceSpec.from_hardware_config(config)
    if isinstance(config, Mapping):
        return DeviceSpec.from_dict(config, source="register map dict")
    if isinstance(config, (str, os.PathLike)):
        text = os.fspath(config)
        if text.endswith(".json") or os.sep in text or Path(text).is_file():
            return DeviceSpec.from_json(text)
        for root in _search_roots():
            candidate = root / "build" / text / "driver" / "regmap.json"
            if candidate.is_file():
                return DeviceSpec.from_json(candidate)
        try:
            from cpt_hw.errors import CptHwError
            from cpt_hw.hw.config import HardwareConfig
        except ImportError:
            raise SpecError(f"config {text!r}: no build/{text}/driver/regmap.json found (run "
                            f"`cpt-hw generate --preset {text}` and copy regmap.json here)") from None
        try:
            cfg = HardwareConfig.from_preset(text)
        except CptHwError as e:  # the driver's own error type, whatever cpt_hw raised
            where = ", ".join(dict.fromkeys(str(r) for r in _search_roots()))
            raise SpecError(f"config {text!r}: no build/{text}/driver/regmap.json under {where}, and {e}") from None
        return DeviceSpec.from_hardware_config(cfg)
    raise SpecError(f"config {config!r}: expected a HardwareConfig, a regmap.json path or dict, or a config name")
