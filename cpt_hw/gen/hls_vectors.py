"""Test workloads for the HLS kernel: a simulated DDR image, the calls to run on it, what they must give.

A :class:`Workload` places packed operands (``cpt_driver.layout``) and result areas in one DDR image,
fills everything else with random canary bytes, and records for each call the status it must return
(:func:`cpt_hw.hw.calls.call_status`) and, for calls that run, the result ``cpt_hw.hw.golden`` defines.  The
expected final image is the initial one with exactly the result areas of the legal calls replaced:
a call that writes outside its C area, or a refused call that writes at all, shows up as a difference.

Binary formats (little-endian; read and written by ``hls/cpt_tb.h``)::

    vectors  "CPTV" u32 magic, u32 version, u64 ddr_bytes, u32 n_calls, image, n_calls x N_ARGS u64 registers
             (cpt_hw.hw.regmap.INPUTS order: Call.registers())
    results  "CPTR" u32 magic, u32 version, u32 n_calls, n_calls x (u32 status, u64 cycles, u32 id),
             u64 ddr_bytes, image
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import numpy as np

from cpt_driver import layout

from ..errors import CptHwError
from ..hw import golden
from ..hw.calls import Call, RefusedCall, call_status, call_type, prefetch_bytes, refused_calls
from ..hw import emu_conv
from ..hw.config import HardwareConfig
from ..hw.conv_calls import ConvArgs, operand_ranges
from ..hw.regmap import FLAG_BITS, INPUTS

MAGIC_IN = 0x56545043   # "CPTV"
MAGIC_OUT = 0x52545043  # "CPTR"
VERSION = 2
#: Register values per call in a vector file: one per input argument, in signature order.
N_ARGS = len(INPUTS)


@dataclass
class Expected:
    """What one call must produce: its status and, when it runs, C (M x N int64) at byte address c."""

    call: Call
    status: int
    note: str
    c_matrix: np.ndarray | None = None
    conv: bool = False   # a legal interface-4 conv call: its result area is what cpt_hw.hw.emu_conv writes


@dataclass
class Results:
    """What the testbench returned: one (status, cycles, id) per call and the final DDR image."""

    status: list[int]
    cycles: list[int]
    ids: list[int]
    image: np.ndarray  # uint8


def flags_word(a_signed: bool, b_signed: bool) -> int:
    return (int(a_signed) << FLAG_BITS["A_SIGNED"]) | (int(b_signed) << FLAG_BITS["B_SIGNED"])


@dataclass
class Workload:
    """Operands, result areas and calls in one simulated DDR image that starts at byte address 0.

    ``base`` keeps address 0 out of use (a window starting above 0 is then exercised); areas are
    separated by random canary gaps of 0..3 D-bit words.
    """

    cfg: HardwareConfig
    seed: int = 0
    base: int = 4096
    expected: list[Expected] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._chunks: list[tuple[int, np.ndarray]] = []  # (address, bytes) of placed operands
        self._top = self.base

    # ------------------------------------------------------------------ placement
    def _alloc(self, nbytes: int) -> int:
        gap = int(self.rng.integers(0, 4)) * self.cfg.word_bytes
        addr = self._top + gap
        self._top = addr + -(-nbytes // self.cfg.word_bytes) * self.cfg.word_bytes
        return addr

    def _place(self, data: np.ndarray) -> int:
        addr = self._alloc(data.size)
        self._chunks.append((addr, data.astype(np.uint8)))
        return addr

    def _random_operand(self, rows: int, k: int, bits: int, signed: bool) -> np.ndarray:
        lo, hi = golden.operand_range(bits, signed)
        return self.rng.integers(lo, hi + 1, size=(rows, k), dtype=np.int64)

    # ------------------------------------------------------------------ calls
    def add_gemm(self, m: int, n: int, k: int, a_bits: int, b_bits: int, a_signed: bool = False,
                 b_signed: bool = False, *, window: str = "loose", dirty_padding: bool = False,
                 note: str = "") -> Call:
        """A legal GEMM with random operands; ``window`` "loose" (random slack) or "tight" (exact)."""
        cfg = self.cfg
        a = self._random_operand(m, k, a_bits, a_signed)
        bt = self._random_operand(n, k, b_bits, b_signed)  # B transposed: N x K
        pa = layout.pack_a(a, a_bits, cfg.dot_width)
        pb = layout.pack_b(bt.T, b_bits, cfg.dot_width)
        if dirty_padding:
            pa, pb = self._dirty(pa, m, k, a_bits), self._dirty(pb, n, k, b_bits)
        a_addr, b_addr = self._place(pa), self._place(pb)
        c_addr = self._alloc(layout.result_bytes(m, n, cfg.cols))
        lo = min(a_addr, b_addr, c_addr)
        hi = max(a_addr + pa.size, b_addr + pb.size, c_addr + layout.result_bytes(m, n, cfg.cols))
        if window == "loose":
            lo -= int(self.rng.integers(0, lo - 0 + 1)) if lo else 0
            hi += int(self.rng.integers(0, 4096))
        call = call_type(cfg)(a_addr, b_addr, c_addr, m, n, k, a_bits, b_bits, flags_word(a_signed, b_signed), lo, hi)
        c = golden.gemm(a, bt.T, a_bits, b_bits, a_signed, b_signed, acc_width=cfg.acc_width)
        return self._expect(call, note or f"{m}x{n}x{k} {a_bits}x{b_bits}", c)

    def add_prefetch_chain(self, shapes: list[tuple[int, int, int, int, int]], *, spoil: int | None = None,
                           note: str = "chain") -> list[Call]:
        """Calls (M, N, K, a_bits, b_bits) back to back, each prefetching the next one's B (flags bit
        PREFETCH_B, window widened to cover it), as the driver runs a K-split GEMM.  spoil = i: call i's
        hint names a K one larger than call i + 1 has (a miss, results unchanged)."""
        first = len(self.expected)
        calls = [self.add_gemm(*shape, a_signed=bool(i & 1), window="tight", note=f"{note} call {i}")
                 for i, shape in enumerate(shapes)]
        for i, (call, nxt) in enumerate(zip(calls, calls[1:])):
            hint = nxt.b_key()
            if i == spoil:
                hint = (nxt.b, nxt.n, nxt.k + 1, nxt.b_bits)
            pf_end = hint[0] + prefetch_bytes(self.cfg, *hint[1:])
            calls[i] = replace(call, flags=call.flags | 1 << FLAG_BITS["PREFETCH_B"], win_base=min(call.win_base, nxt.b),
                               win_limit=max(call.win_limit, pf_end), next_b=hint[0], next_n=hint[1], next_k=hint[2],
                               next_b_bits=hint[3])
            self.expected[first + i].call = calls[i]
            assert call_status(self.cfg, calls[i]) == 0
        return calls

    def _dirty(self, packed: np.ndarray, rows: int, k: int, bits: int) -> np.ndarray:
        """Set random bits in the K padding of every plane row: the kernel must ignore them."""
        cfg = self.cfg
        row_bytes = layout.plane_row_bytes(k, cfg.dot_width)
        kpad = row_bytes * 8
        if kpad == k:
            return packed
        planes = np.unpackbits(packed.reshape(rows * bits, row_bytes), axis=1, bitorder="little")
        planes[:, k:] = self.rng.integers(0, 2, size=(rows * bits, kpad - k), dtype=np.uint8)
        return np.packbits(planes, axis=1, bitorder="little").reshape(-1)

    def _refusal_base(self) -> Call:
        """A fresh legal 2 x 3 x (D + 1) GEMM, tight window: operands placed, the call itself not run (its
        C area must stay untouched)."""
        base = self.add_gemm(2, 3, self.cfg.dot_width + 1, 2, 3, window="tight", note="(base of refused call)")
        self.expected.pop()
        return base

    def add_refused(self, note: str, **changes: int) -> Call:
        """A call derived from a fresh legal 2 x 3 x (D + 1) GEMM with register values changed."""
        return self._expect(call_type(self.cfg)(**{**self._refusal_base().__dict__, **changes}), note, None)

    def add_refused_case(self, case: RefusedCall, note: str | None = None) -> Call:
        """A case of cpt_hw.hw.calls.REFUSED_CALLS applied to a fresh legal GEMM (see :meth:`add_refused`);
        noted by the case's name unless ``note`` is given."""
        [(_, call)] = refused_calls(self.cfg, self._refusal_base(), (case,))
        return self._expect(call, note or case.name, None)

    def _expect(self, call: Call, note: str, c: np.ndarray | None) -> Call:
        status = call_status(self.cfg, call)
        if (status == 0) != (c is not None):
            raise CptHwError(f"workload call {note!r}: status 0x{status:x} contradicts its intent")
        self.expected.append(Expected(call, status, note, c))
        return call

    # ------------------------------------------------------------------ images and files
    @property
    def ddr_bytes(self) -> int:
        bus = self.cfg.axi_data_width // 8
        return -(-(self._top + 4096) // bus) * bus

    def initial_image(self) -> np.ndarray:
        img = np.random.default_rng(self.seed + 1).integers(0, 256, size=self.ddr_bytes, dtype=np.uint8)
        for addr, data in self._chunks:
            img[addr:addr + data.size] = data
        return img

    def expected_image(self) -> np.ndarray:
        img = self.initial_image()
        for e in self.expected:
            if e.conv:
                conv_result(self.cfg, e.call, img)
            if e.c_matrix is not None:
                stride = layout.result_stride(e.call.n, self.cfg.cols)
                out = np.zeros((e.call.m, stride), dtype="<i4")
                out[:, :e.call.n] = e.c_matrix
                raw = out.reshape(-1).view(np.uint8)
                img[e.call.c:e.call.c + raw.size] = raw
        return img

    def vectors(self) -> bytes:
        head = struct.pack("<IIQI", MAGIC_IN, VERSION, self.ddr_bytes, len(self.expected))
        regs = np.array([e.call.registers() for e in self.expected], dtype=np.uint64).reshape(-1)
        return head + self.initial_image().tobytes() + regs.astype("<u8").tobytes()

    def expected_results(self) -> bytes:
        """The expected-results file the testbench compares itself against (cycles are not compared)."""
        rows = [(e.status, 0, self.cfg.id_word) for e in self.expected]
        return encode_results(rows, self.expected_image())


def conv_result(cfg: HardwareConfig, call: Call, img: np.ndarray) -> None:
    """Write what the legal conv call ``call`` writes (cpt_hw.hw.emu_conv, bit-exact) into the DDR image."""
    g = ConvArgs.decode(call)
    views = [img[at:at + size] for at, size in operand_ranges(cfg, call, g)]
    emu_conv.execute(cfg, g, views[0], views[1], views[2], views[3] if g.flag("SUMS") else None)


def encode_results(rows: list[tuple[int, int, int]], image: np.ndarray) -> bytes:
    out = [struct.pack("<III", MAGIC_OUT, VERSION, len(rows))]
    out += [struct.pack("<IQI", s, c, i) for s, c, i in rows]
    out.append(struct.pack("<Q", image.size))
    return b"".join(out) + np.asarray(image, dtype=np.uint8).tobytes()


def decode_results(raw: bytes) -> Results:
    magic, version, n = struct.unpack_from("<III", raw, 0)
    if magic != MAGIC_OUT or version != VERSION:
        raise CptHwError(f"not a cpt-hw results file (magic 0x{magic:08x}, version {version})")
    off = 12
    status, cycles, ids = [], [], []
    for _ in range(n):
        s, c, i = struct.unpack_from("<IQI", raw, off)
        status.append(s)
        cycles.append(c)
        ids.append(i)
        off += 16
    (size,) = struct.unpack_from("<Q", raw, off)
    image = np.frombuffer(raw, dtype=np.uint8, count=size, offset=off + 8).copy()
    return Results(status, cycles, ids, image)
