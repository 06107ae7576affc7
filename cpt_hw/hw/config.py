"""The one hardware configuration of an accelerator instance.

A :class:`HardwareConfig` is frozen and validated on construction; every other artefact (HLS C++,
Verilog parameters, Vivado TCL, register map, driver, cycle model, reports) reads it and nothing
repeats its numbers.  Derived figures are computed here, once.

Presets live in ``cpt_hw/hw/presets/<name>.toml`` (flat ``key = value`` tables); the CLI overrides single
fields with ``--set key=value``.

Example::

    >>> cfg = HardwareConfig.from_preset("zc706", {"rows": 8})
    >>> cfg.peak_binary_ops_per_cycle
    8192
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import tomllib

from ..errors import ConfigError
from .parts import PARTS, Part

PRESET_DIR = Path(__file__).with_name("presets")

#: Bumped whenever the register map or the DDR layout changes meaning; part of the ID word.
INTERFACE_VERSION = 3   # 2: B prefetch hint (flags bit PREFETCH_B, next_* arguments); 3: outputs take
#                         2 x (data words + 1) words, as Vitis HLS lays them out (status 0x7C, cycles 0x8C,
#                         id 0xA4, next_b 0xB4 ...)
#: The interface of a config with ``conv_engine = true``: interface 3 plus the convolution arguments appended
#: after ``next_b_bits`` (docs/architecture.md, "Arguments (interface 4)"; the emulator and the HLS kernel implement
#: it, the Verilog twin not yet).
CONV_INTERFACE_VERSION = 4
#: Fields that describe the convolution engine: hashed into the ID word only when ``conv_engine`` is true, so a
#: config without the engine keeps the ID word (and every generated file) of interface 3.
CONV_FIELDS = ("conv_engine", "max_kernel", "tensor_buffer_bram36")
#: Widest kernel side the ``conv`` argument can carry (its kh and kw fields are 4 bits).
CONV_KERNEL_FIELD_MAX = 15
#: Banks of the tensor buffer (docs/architecture.md: 8 banks deliver the former's 512-bit window).
TENSOR_BUFFER_BANKS = 8
#: Data bits of one RAMB36E1 used 64 bits wide (512 x 72, parity unused), as the plane banks are.
BRAM36_BITS = 512 * 64

#: Results are written to DDR as 32-bit two's-complement words, whatever the accumulator width.
RESULT_BITS = 32

_AXI_WIDTHS = (32, 64, 128, 256, 512)


def _meta(doc: str) -> dict[str, Any]:
    return {"doc": doc}


@dataclass(frozen=True, kw_only=True)
class HardwareConfig:
    """One accelerator instance: array geometry, precisions, buffers, bus and target device."""

    name: str = field(default="zc706", metadata=_meta("instance name; build output goes to build/<name>/"))
    part: str = field(default="xc7z045ffg900-2", metadata=_meta("FPGA part (see cpt_hw.hw.parts)"))
    board: str = field(default="xilinx.com:zc706:part0:1.4", metadata=_meta("Vivado board part"))
    clock_mhz: float = field(default=200.0, metadata=_meta("target fabric clock (PS7 FCLK_CLK0) in MHz"))
    rows: int = field(default=16, metadata=_meta("PE array rows: output rows (M) computed at once"))
    cols: int = field(default=16, metadata=_meta("PE array columns: output columns (N) computed at once"))
    dot_width: int = field(default=64, metadata=_meta("D: bits one PE ANDs and popcounts per cycle"))
    max_bits: int = field(default=8, metadata=_meta("largest weight/activation precision in bits"))
    max_grad_bits: int = field(default=8, metadata=_meta("largest gradient (error) precision in bits"))
    acc_width: int = field(default=32, metadata=_meta("PE accumulator width in bits (two's complement)"))
    k_words: int = field(default=72, metadata=_meta("on-chip depth of one bit-plane row in D-bit words"))
    b_block_cols: int = field(default=128, metadata=_meta("columns of B held on chip at once"))
    axi_data_width: int = field(default=64, metadata=_meta("m_axi gmem data width in bits (HP port)"))
    axi_addr_width: int = field(default=64, metadata=_meta("m_axi gmem address width in bits"))
    burst_beats: int = field(default=16, metadata=_meta("longest AXI4 burst the master issues"))
    max_dim: int = field(default=65536, metadata=_meta("largest M and N one accelerator call accepts"))
    conv_engine: bool = field(default=False, metadata=_meta(
        "convolution engine (interface 4: conv calls read row-plane tensors); emulator and HLS kernel, forward calls "
        "in the Verilog twin"))
    max_kernel: int = field(default=3, metadata=_meta("largest kernel side of a conv call (conv_engine)"))
    tensor_buffer_bram36: int = field(default=64, metadata=_meta(
        "BRAM36 of the conv engine's tensor buffer: line buffer / weight-gradient X chunk halves (conv_engine)"))

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{f.name} = {value!r}: must be an integer")
            if f.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{f.name} = {value!r}: must be a number")
                object.__setattr__(self, f.name, float(value))
            if f.type in ("str", str) and not isinstance(value, str):
                raise ConfigError(f"{f.name} = {value!r}: must be a string")
            if f.type in ("bool", bool) and not isinstance(value, bool):
                raise ConfigError(f"{f.name} = {value!r}: must be true or false")
        self._check_ranges()
        self._check_relations()

    def _rule(self, name: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ConfigError(f"{name} = {getattr(self, name)!r}: {rule}")

    def _check_ranges(self) -> None:
        r = self._rule
        r("name", re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", self.name) is not None,
          "must be 1..40 characters of a-z, 0-9, '_' or '-', starting with a letter or digit")
        r("part", self.part in PARTS, f"unknown part (known: {', '.join(sorted(PARTS))})")
        r("clock_mhz", 10.0 <= self.clock_mhz <= 400.0, "must be in 10..400 MHz")
        r("rows", 1 <= self.rows <= 64, "must be in 1..64")
        r("cols", 1 <= self.cols <= 64, "must be in 1..64")
        r("dot_width", 8 <= self.dot_width <= 1024 and self.dot_width % 8 == 0,
          "must be a multiple of 8 in 8..1024")
        r("max_bits", 1 <= self.max_bits <= 16, "must be in 1..16")
        r("max_grad_bits", 1 <= self.max_grad_bits <= 16, "must be in 1..16")
        r("acc_width", 8 <= self.acc_width <= RESULT_BITS,
          f"must be in 8..{RESULT_BITS} (results are stored as {RESULT_BITS}-bit words)")
        r("k_words", 1 <= self.k_words <= 4096, "must be in 1..4096")
        r("b_block_cols", 1 <= self.b_block_cols <= 4096, "must be in 1..4096")
        r("axi_data_width", self.axi_data_width in _AXI_WIDTHS, f"must be one of {_AXI_WIDTHS}")
        r("axi_addr_width", self.axi_addr_width in (32, 64), "must be 32 or 64")
        r("burst_beats", self.burst_beats in (1, 2, 4, 8, 16, 32, 64, 128, 256),
          "must be a power of two in 1..256 (AXI4 INCR burst)")
        r("max_dim", 1 <= self.max_dim <= 1 << 24, "must be in 1..16777216")
        r("max_kernel", 1 <= self.max_kernel <= CONV_KERNEL_FIELD_MAX,
          f"must be in 1..{CONV_KERNEL_FIELD_MAX} (the conv argument's kh and kw fields are 4 bits)")
        r("tensor_buffer_bram36", TENSOR_BUFFER_BANKS <= self.tensor_buffer_bram36 <= 4096
          and self.tensor_buffer_bram36 % TENSOR_BUFFER_BANKS == 0,
          f"must be a multiple of {TENSOR_BUFFER_BANKS} (the tensor buffer's banks) in {TENSOR_BUFFER_BANKS}..4096")

    def _check_relations(self) -> None:
        r = self._rule
        board = self.part_info.board
        r("board", self.board == board, f"part {self.part} is used with board {board!r}")
        r("dot_width", self.dot_width % self.axi_data_width == 0,
          f"must be a multiple of axi_data_width = {self.axi_data_width} (a D-bit word is whole bus beats)")
        r("cols", (self.cols * RESULT_BITS) % self.axi_data_width == 0,
          f"cols x {RESULT_BITS} must be a multiple of axi_data_width = {self.axi_data_width} "
          "(a result tile row is whole bus beats)")
        r("cols", not self.conv_engine or (self.cols * 16) % self.axi_data_width == 0,
          f"with conv_engine, cols x 16 must be a multiple of axi_data_width = {self.axi_data_width} (a row of int16 "
          "results, flags C16, is whole bus beats)")
        r("b_block_cols", self.b_block_cols % self.cols == 0, f"must be a multiple of cols = {self.cols}")
        r("burst_beats", self.burst_beats * self.axi_data_width // 8 <= 4096,
          "burst_beats x axi_data_width/8 must be <= 4096 bytes (AXI 4 KiB boundary)")
        r("acc_width", self.k_max <= self.k_max_accumulator,
          f"cannot hold K_max x (2^{self.operand_bits}-1)^2 = {self.k_max} x {(2**self.operand_bits - 1) ** 2} "
          f"without overflow; K_max = k_words x dot_width = {self.k_max}, the accumulator allows "
          f"{self.k_max_accumulator}: widen acc_width or lower k_words")

    # ------------------------------------------------------------------ derived figures
    @property
    def part_info(self) -> Part:
        return PARTS[self.part]

    @cached_property
    def operand_bits(self) -> int:
        """Largest operand precision the array accepts (forward and backward GEMMs share it)."""
        return max(self.max_bits, self.max_grad_bits)

    @cached_property
    def pes(self) -> int:
        return self.rows * self.cols

    @cached_property
    def peak_binary_ops_per_cycle(self) -> int:
        """Binary AND+popcount pairs per cycle: rows x cols x D."""
        return self.rows * self.cols * self.dot_width

    @cached_property
    def peak_binary_tops(self) -> float:
        return self.peak_binary_ops_per_cycle * self.clock_mhz * 1e6 / 1e12

    @cached_property
    def k_max(self) -> int:
        """Largest reduction length one call accepts: what the plane-row buffers hold."""
        return self.k_words * self.dot_width

    @cached_property
    def k_max_accumulator(self) -> int:
        """Largest K the accumulator holds for unsigned operand_bits x operand_bits (worst case)."""
        return (2 ** (self.acc_width - 1) - 1) // (2**self.operand_bits - 1) ** 2

    @cached_property
    def word_bytes(self) -> int:
        """Bytes of one D-bit word: the DDR granule of packed operands and their address alignment."""
        return self.dot_width // 8

    @cached_property
    def a_buffer_bits(self) -> int:
        """A tile buffer, ping-pong: 2 x rows x operand_bits planes x k_words words x D bits."""
        return 2 * self.rows * self.operand_bits * self.k_words * self.dot_width

    @cached_property
    def b_buffer_bits(self) -> int:
        """B block buffers: 2 (the running call's block, the next call's prefetched block) x b_block_cols x
        operand_bits planes x k_words words x D bits."""
        return 2 * self.b_block_cols * self.operand_bits * self.k_words * self.dot_width

    @cached_property
    def buffer_bytes(self) -> int:
        return (self.a_buffer_bits + self.b_buffer_bits) // 8

    @cached_property
    def interface_version(self) -> int:
        """INTERFACE_VERSION (3), or CONV_INTERFACE_VERSION (4) with the convolution engine."""
        return CONV_INTERFACE_VERSION if self.conv_engine else INTERFACE_VERSION

    @cached_property
    def tensor_buffer_bits(self) -> int:
        """Data bits of the conv engine's tensor buffer (tensor_buffer_bram36 x 512 x 64)."""
        return self.tensor_buffer_bram36 * BRAM36_BITS

    @cached_property
    def id_word(self) -> int:
        """32-bit ID/version register value: a hash of the interface version and every field (the
        convolution engine's fields only when it is present: without it the ID is interface 3's)."""
        fields_ = self.fields_dict()
        if not self.conv_engine:
            fields_ = {k: v for k, v in fields_.items() if k not in CONV_FIELDS}
        blob = json.dumps({"interface_version": self.interface_version, **fields_}, sort_keys=True)
        return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16)

    def derived(self) -> dict[str, Any]:
        return {
            "operand_bits": self.operand_bits,
            "pes": self.pes,
            "peak_binary_ops_per_cycle": self.peak_binary_ops_per_cycle,
            "peak_binary_tops": round(self.peak_binary_tops, 4),
            "k_max": self.k_max,
            "k_max_accumulator": self.k_max_accumulator,
            "word_bytes": self.word_bytes,
            "a_buffer_bits": self.a_buffer_bits,
            "b_buffer_bits": self.b_buffer_bits,
            "buffer_bytes": self.buffer_bytes,
            "id_word": f"0x{self.id_word:08x}",
            "interface_version": self.interface_version,
            **({"tensor_buffer_bits": self.tensor_buffer_bits} if self.conv_engine else {}),
        }

    # ------------------------------------------------------------------ (de)serialisation
    def fields_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> "HardwareConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("doc", "") for f in fields(cls)}

    @classmethod
    def _check_keys(cls, values: Mapping[str, Any], source: str) -> None:
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(cls.field_names())})")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "config") -> "HardwareConfig":
        cls._check_keys(values, source)
        return cls(**dict(values))

    @classmethod
    def from_toml(cls, path: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> "HardwareConfig":
        """Load a TOML config file; ``overrides`` (``--set``) change single fields.

        A file must set ``name`` (an empty or nameless file would silently build the zc706 defaults into
        build/zc706/).  Overrides that change a field give the instance a name of its own,
        ``<name>-<6 hex digits of their hash>``, so its build folder and ID word differ from the preset's;
        ``--set name=...`` chooses the name instead.
        """
        values = _read_toml(Path(path))
        cls._check_keys(values, f"config file {path}")
        if "name" not in values:
            raise ConfigError(f"config file {path}: no 'name' key (every config names its instance; build "
                              "output goes to build/<name>/)")
        extra = parse_overrides(overrides)
        cls._check_keys(extra, "--set")
        defaults = {f.name: f.default for f in fields(cls)}
        changed = {k: v for k, v in extra.items() if k != "name" and values.get(k, defaults[k]) != v}
        merged = {**values, **extra}
        if changed and "name" not in extra:
            merged["name"] = derived_name(str(values["name"]), changed)
        return cls(**merged)

    @classmethod
    def from_preset(cls, preset: str = "zc706", overrides: Mapping[str, Any] | Iterable[str] = ()) -> "HardwareConfig":
        """Load a preset by name (``cpt_hw/hw/presets/<name>.toml``) or by path to a TOML file."""
        if preset.endswith(".toml") or "/" in preset:
            return cls.from_toml(preset, overrides)
        path = PRESET_DIR / f"{preset}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r} (available: {', '.join(available_presets())})")
        return cls.from_toml(path, overrides)


def _read_toml(path: Path) -> dict[str, Any]:
    """The key/value table of a TOML file; every way it can fail is a :class:`ConfigError` naming the file."""
    if path.is_dir():
        raise ConfigError(f"config file {path}: is a directory, not a .toml file")
    if path.exists() and not path.is_file():  # a FIFO would block the read
        raise ConfigError(f"config file {path}: not a regular file")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                          f"{e.start}); TOML files are UTF-8") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot be read ({e.strerror or e})") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: malformed TOML: {e}") from None
    if not values:
        raise ConfigError(f"config file {path}: empty (no keys); a config sets at least name = \"...\"")
    return values


def derived_name(base: str, changed: Mapping[str, Any]) -> str:
    """``<base>-<hash>``: the name of ``base`` with the fields in ``changed`` overridden.

    The hash (6 hex digits of SHA-256 over the sorted changes) keeps the name within the 40 characters
    ``name`` allows whatever the overrides, and is the same on every run for the same changes.
    """
    digest = hashlib.sha256(json.dumps(dict(changed), sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{base[:33]}-{digest}"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """``["rows=8", "name=\"x\""]`` or a mapping -> dict.  Values are TOML literals; bare words are strings."""
    if isinstance(overrides, Mapping):
        return dict(overrides)
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw.strip()
    return out
