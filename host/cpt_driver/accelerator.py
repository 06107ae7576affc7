"""The driver: one GEMM API over every backend.

>>> acc = Accelerator()                      # emu backend, zc706 config
>>> c = acc.gemm(a, b, a_bits=8, b_bits=8)  # (M, N) int64, any M, N, K

One accelerator call computes at most max_dim x max_dim outputs over K <= k_max; :meth:`Accelerator.gemm`
tiles larger problems and sums the K partials in int64 on the host.  Every call goes through the same
register sequence on every backend (docs/driver.md):

1. CTRL is read: the kernel must be idle (this also clears a stale ap_done);
2. A and B are packed (vectorised, straight into a DMA buffer of the pool) and flushed;
3. the argument registers are written, then ap_start;
4. ``backend.wait_done`` (polling CTRL or an interrupt) up to a deadline;
5. status and cycles are read; a non-zero status raises; C is invalidated and read.

The DMA window is programmed to the pool's arena whenever the arena changes, so the device can only
touch memory the driver allocated; every argument is checked before the first register write.

B prefetch (docs/driver.md): when a GEMM takes several calls, each call carries the next call's B as a
hint (flags bit PREFETCH_B), so the device loads it while computing and the next call skips that load.
The next call's B is therefore packed and flushed before the current call starts (two B buffers are
leased at a time); results never depend on the hint.  A hint the chain did not consume (the GEMM stopped
between calls: an exception, Ctrl-C) or one left by another process (attaching to a loaded overlay)
would let a later call with another B at the same address compute from the old copy, so the driver
clears the device's prefetch state with a refused call (M = 0, which touches no memory) on attach and
on every path that leaves a chain early.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checks, conv, conv_engine, layout, rowplanes, sources
from .backend import Backend, DmaBuffer
from .checks import check_gemm_args, check_out
from .errors import ArgumentError, DeviceBusyError, DeviceError, DeviceStatusError, DeviceTimeoutError, IdMismatchError
from .plan import PlannedCall, plan_calls
from .pool import BufferPool, Region, round_up
from .rowplanes import RowPlaneTensor
from .quant import qgemm_corrections
from .sources import RowSource
from .spec import DeviceSpec, resolve_spec

#: Default DMA memory budget.  PYNQ images reserve 128..512 MiB of CMA; the tiler keeps every call below this.
DEFAULT_POOL_BYTES = 64 << 20
#: Generous deadline floor: the slowest legal clock (50 MHz) and a 32-bit bus, times 4, plus 1 s.
_TIMEOUT_CLOCK_HZ = 50e6
_TIMEOUT_BASE_S = 1.0


@dataclass(frozen=True)
class CallRecord:
    """One accelerator call: its arguments and the cycles the device reported."""

    m: int
    n: int
    k: int
    a_bits: int
    b_bits: int
    flags: int
    cycles: int
    prefetch: bool = False   # the call carried the next call's B as a prefetch hint
    read_bytes: int = 0      # bytes the device read and wrote (layout.call_traffic; 0 for a non-zero status)
    write_bytes: int = 0
    op: str = "gemm"         # interface 4: "fwd", "dgrad", "wgrad" (m, n, k: result rows, columns, reduction)
    status: int = 0          # the status word (non-zero: refused, or a bus error; the call raised)


def _make_backend(name: str, spec: DeviceSpec, options: dict[str, Any]) -> Backend:
    if name == "emu":
        from .backends.emu import EmuBackend
        return EmuBackend(spec, **options)
    if name == "pynq":
        from .backends.pynq import PynqBackend
        return PynqBackend(spec, **options)
    if name == "rtl":
        from .backends.rtl import RtlBackend
        return RtlBackend(spec, **options)
    raise ArgumentError(f"backend = {name!r}: must be 'emu', 'pynq', 'rtl' or a Backend instance")


class Accelerator:
    """A cpt_gemm accelerator behind one of the backends.

    backend: ``"emu"`` (default; in-process emulation), ``"pynq"`` (ZC706 overlay; needs ``bitfile=``),
    ``"rtl"`` (generated Verilog under cocotb; needs ``dut=``), or a :class:`Backend` instance.
    config: a ``HardwareConfig``, a regmap.json path or dict, or a config name (see :func:`resolve_spec`);
    for ``pynq`` the default is the regmap.json next to the bitfile.
    timeout_s: deadline per call; default scales with the call's size.  pool_bytes: DMA memory budget.
    check_id: refuse a device whose ID register differs from the config's ID word (default True).
    prefetch: give each call of a multi-call GEMM the next call's B as a prefetch hint (default True;
    off, or a register map without the hint, runs every call on its own).
    Other keyword arguments go to the backend's constructor.
    """

    def __init__(self, backend: str | Backend = "emu", config: Any = None, *, timeout_s: float | None = None,
                 pool_bytes: int = DEFAULT_POOL_BYTES, check_id: bool = True, history: int = 256,
                 prefetch: bool = True, **backend_options: Any):
        if isinstance(backend, Backend):
            if config is not None or backend_options:
                raise ArgumentError("config and backend options belong to the backend instance already given")
            self.backend = backend
        else:
            if config is None and backend == "pynq" and backend_options.get("bitfile"):
                # On a board the register map travels with the overlay: <dir>/<name>.bit, .hwh, regmap.json
                candidate = Path(backend_options["bitfile"]).with_name("regmap.json")
                config = str(candidate) if candidate.is_file() else None
            self.backend = _make_backend(backend, resolve_spec(config), backend_options)
        self.spec: DeviceSpec = self.backend.spec
        self.prefetch = prefetch and "next_b" in self.spec.arg_words and "PREFETCH_B" in self.spec.flag_bits
        self.timeout_s = timeout_s
        self.history: deque[CallRecord] = deque(maxlen=history)
        self.calls = 0
        self.total_cycles = 0
        self.read_bytes = 0
        self.write_bytes = 0
        # (b, n, k, b_bits) of the hint the last call left on the device: the next call with the same B
        # skips loading its block 0 (for the byte counts; the driver's plan makes every hinted call a hit)
        self._hint_key: tuple[int, int, int, int] | None = None
        self._lock = threading.RLock()
        s = self.spec
        self._reg = s.registers
        self._ctrl_start = 1 << s.ctrl_bits["AP_START"]
        self._ctrl_idle = 1 << s.ctrl_bits["AP_IDLE"]
        self._prefetch_flag = s.flag("PREFETCH_B") if self.prefetch else 0
        # True from the start of a call that carries a prefetch hint until a later call consumes it: the
        # device may then hold a B block that only the chain's next call may use.
        self._hint_pending = False
        # interface 4: the conv calls, and whether the conv register may hold a non-zero op (a GEMM call
        # then writes 0 first: op 0 is the interface-3 call)
        self.engine = conv_engine.Engine(self) if s.conv is not None else None
        self._conv_set = s.conv is not None
        self.pool = BufferPool(self.backend, budget=pool_bytes, align=s.word_bytes, on_new_arena=self._program_window)
        self._ensure_idle(timeout_s if timeout_s is not None else _TIMEOUT_BASE_S)
        self._write_arg("win_base", 0)   # an empty window until the pool exists: every access is refused
        self._write_arg("win_limit", 0)
        # Attach: a refused probe call clears any prefetch another process left, and makes the HLS
        # kernel write `id` (it reads 0 before the first call).
        self.device_id = self._probe_call("the ID probe")
        if check_id and self.device_id != s.id_word:
            raise IdMismatchError(f"{self.backend.name}: device ID 0x{self.device_id:08x} does not match config "
                                  f"{s.name!r} (ID 0x{s.id_word:08x}, from {s.source}): wrong bitstream or regmap.json")

    # ------------------------------------------------------------------ public API
    def gemm(self, a: np.ndarray | RowSource, b: np.ndarray, a_bits: int, b_bits: int, a_signed: bool = False,
             b_signed: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """C = A . B exactly, as int64 (M, N).

        a: (M, K) and b: (K, N) integer arrays whose values fit ``a_bits``/``b_bits`` (1..operand_bits),
        two's complement when ``*_signed``.  Any M, N, K >= 0; the driver tiles to the device's limits.
        ``a`` may instead be a :class:`cpt_driver.sources.RowSource` (``a_signed`` must equal its ``signed``):
        a convolution's lowered input that packs each tile from the unlowered codes.
        out: an (M, N) array (integer or float, views welcome) that receives C instead of a new int64
        array, each element converted once from its exact value (a float32 out rounds values past 2^24),
        and is returned: the caller's result buffer, without an (M, N) int64 copy on the way.
        """
        a, b, a_bits, b_bits, a_signed, b_signed = check_gemm_args(
            a, b, a_bits, b_bits, a_signed, b_signed, self.spec.operand_bits)
        if out is not None:
            check_out(out, a.shape[0], b.shape[1])
        return self._gemm_checked(a, b, a_bits, b_bits, a_signed, b_signed, out)

    def _gemm_checked(self, a: np.ndarray | RowSource, b: np.ndarray, a_bits: int, b_bits: int, a_signed: bool,
                      b_signed: bool, out: np.ndarray | None) -> np.ndarray:
        """:meth:`gemm` on arguments already checked as it checks them (the convolutions check their own,
        naming the convolution's operands, and then need not pass over the codes twice)."""
        m, k = a.shape
        n = b.shape[1]
        if m == 0 or n == 0 or k == 0:
            if out is None:
                return np.zeros((m, n), dtype=np.int64)
            out[...] = 0
            return out
        flags = (self.spec.flag("A_SIGNED") if a_signed else 0) | (self.spec.flag("B_SIGNED") if b_signed else 0)
        with self._lock:
            return self._gemm_tiled(a, b, a_bits, b_bits, flags, out)

    def qgemm(self, qa: np.ndarray, qb: np.ndarray, a_bits: int, b_bits: int, a_scale: Any, a_zero: Any,
              b_scale: Any, b_zero: Any, *, a_signed: bool = False, b_signed: bool = False,
              dtype: Any = np.float32) -> np.ndarray:
        """Y = (s_a qa + z_a) . (s_b qb + z_b) from integer codes (docs/numerics.md, "The three GEMMs and the
        hardware numerics").

        qa: (M, K) codes at a_bits with a_scale/a_zero per tensor (scalars) or per row of A (M,);
        qb: (K, N) codes at b_bits with b_scale/b_zero per tensor or per column of B (N,).  Forward of a
        layer Y = X W^T: qa = q_x, qb = q_w^T with per-output-channel (s_w, z_w).  The integer GEMM runs on
        the device; row/column code sums and the scale/zero-point corrections are computed on the host.
        """
        return qgemm_corrections(self.gemm, qa, qb, a_bits, b_bits, a_scale, a_zero, b_scale, b_zero,
                                 a_signed=a_signed, b_signed=b_signed, dtype=dtype)

    # ------------------------------------------------------------------ convolutions (cpt_driver.conv)
    def pack_tensor(self, x: Any, bits: int, *, signed: bool = False) -> RowPlaneTensor:
        """x (N, C, H, W) codes fitting ``bits``/``signed``, packed once as the device's row-planes: a
        :class:`~cpt_driver.rowplanes.RowPlaneTensor` that ``conv2d`` and ``conv2d_weight`` take as x with the
        same bits and signedness, copying its bytes instead of packing x again (docs/driver.md)."""
        what = "pack_tensor"
        x = checks.operand_array(f"{what}: x", x, ndim=4)
        bits = checks.check_bits(f"{what}: bits", bits, self.spec.operand_bits)
        signed = checks.check_flag(f"{what}: signed", signed)
        checks.check_values(f"{what}: x", x, bits, signed)
        return rowplanes.pack_tensor(x, bits, signed, self.spec.dot_width)

    def conv2d(self, x: Any, w: Any, *, x_bits: int, w_bits: int, stride: int = 1, padding: int = 0,
               x_signed: bool = False, w_signed: bool = False, out: np.ndarray | None = None,
               x_sums: np.ndarray | None = None) -> np.ndarray:
        """``torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)`` exactly, on integer codes.

        x: (N, C, H, W) codes fitting ``x_bits``/``x_signed`` (or :meth:`pack_tensor` of them); w: (K, C, kh, kw)
        fitting ``w_bits``/``w_signed``.  Returns int64 (N, K, Ho, Wo) (a view of channels-last memory), or
        writes into ``out`` (that shape, any real dtype; straight when channels-last) and returns it.
        ``x_sums`` (N, Ho, Wo), any real dtype: filled with each output's sum of x's codes over its window, the
        device's (SUMS) where it computes them (docs/driver.md).
        """
        return conv.conv2d(self._gemm_checked, self.spec.operand_bits, x, w, x_bits=x_bits, w_bits=w_bits, stride=stride,
                           padding=padding, x_signed=x_signed, w_signed=w_signed, out=out, x_sums=x_sums,
                           engine=self.engine)

    def conv2d_input(self, input_size: Any, w: Any, e: Any, *, w_bits: int, e_bits: int, stride: int = 1,
                     padding: int = 0, w_signed: bool = False, e_signed: bool = False,
                     out: np.ndarray | None = None) -> np.ndarray:
        """``torch.nn.grad.conv2d_input(input_size, w, e, stride=stride, padding=padding)`` exactly, on codes.

        input_size: (N, C, H, W); w: (K, C, kh, kw); e: (N, K, Ho, Wo).  Returns int64 (N, C, H, W) (a view
        of channels-last memory), or writes into ``out`` (straight when channels-last) and returns it.
        """
        return conv.conv2d_input(self._gemm_checked, self.spec.operand_bits, input_size, w, e, w_bits=w_bits, e_bits=e_bits,
                                 stride=stride, padding=padding, w_signed=w_signed, e_signed=e_signed, out=out,
                                 engine=self.engine)

    def conv2d_weight(self, x: Any, weight_size: Any, e: Any, *, x_bits: int, e_bits: int, stride: int = 1,
                      padding: int = 0, x_signed: bool = False, e_signed: bool = False,
                      out: np.ndarray | None = None, x_sums: np.ndarray | None = None,
                      e_sums: np.ndarray | None = None) -> np.ndarray:
        """``torch.nn.grad.conv2d_weight(x, weight_size, e, stride=stride, padding=padding)`` exactly, on codes.

        x: (N, C, H, W) (or :meth:`pack_tensor` of it); weight_size: (K, C, kh, kw); e: (N, K, Ho, Wo).  Returns
        int64 (K, C, kh, kw) (a view of (kh, kw, C, K) memory), or writes into ``out`` and returns it.
        ``x_sums`` (C, kh, kw) and ``e_sums`` (K, kh, kw), any real dtype: filled with each tap's sum of x's codes
        over the input positions it reads and of e over the outputs where it reads a real input, the device's
        (SUMS) where it computes them (docs/driver.md).
        """
        return conv.conv2d_weight(self._gemm_checked, self.spec.operand_bits, x, weight_size, e, x_bits=x_bits,
                                  e_bits=e_bits, stride=stride, padding=padding, x_signed=x_signed,
                                  e_signed=e_signed, out=out, x_sums=x_sums, e_sums=e_sums, engine=self.engine)

    def stats(self) -> dict[str, int]:
        """Cumulative device calls (after tiling; the driver's M = 0 probe calls not included), the cycles
        the device reported for them, and the bytes it read and wrote (:func:`layout.call_traffic`)."""
        return {"calls": self.calls, "cycles": self.total_cycles, "read_bytes": self.read_bytes,
                "write_bytes": self.write_bytes}

    @property
    def last_cycles(self) -> int:
        return self.history[-1].cycles if self.history else 0

    def close(self) -> None:
        with self._lock:
            self.pool.close()
            self.backend.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ tiling
    def tile_shape(self, m: int, n: int, k: int, a_bits: int, b_bits: int) -> tuple[int, int, int]:
        """(mt, nt, kt): the largest tile within the device limits whose buffers fit the pool budget.

        Halving follows the bigger operand (M x a_bits against N x b_bits), then K, keeping whole PE tiles.
        """
        s = self.spec
        kt = min(k, s.k_max)
        mt, nt = min(m, s.max_dim), min(n, s.max_dim)
        while self._tile_bytes(mt, nt, kt, a_bits, b_bits, self._two_b(n, k, nt, kt)) > self.pool.budget:
            if mt > s.rows and (mt * a_bits >= nt * b_bits or nt <= s.cols):
                mt = round_up(-(-mt // 2), s.rows)
            elif nt > s.cols:
                nt = round_up(-(-nt // 2), s.cols)
            elif kt > s.dot_width:
                kt = round_up(-(-kt // 2), s.dot_width)
            else:
                break  # one rows x cols x D tile does not fit: the pool raises PoolExhaustedError with the numbers
        return mt, nt, kt

    def _two_b(self, n: int, k: int, nt: int, kt: int) -> bool:
        """Whether two B tiles are leased at once: the next one is packed while the current one runs."""
        return self.prefetch and (nt < n or kt < k)

    def _tile_bytes(self, mt: int, nt: int, kt: int, a_bits: int, b_bits: int, two_b: bool = False) -> int:
        d = self.spec.dot_width
        b = layout.operand_bytes(nt, kt, b_bits, d)
        return self.pool.need((layout.operand_bytes(mt, kt, a_bits, d), *(b,) * (1 + two_b),
                               layout.result_bytes(mt, nt, self.spec.cols)))

    def _gemm_tiled(self, a: np.ndarray | RowSource, b: np.ndarray, a_bits: int, b_bits: int, flags: int,
                    result: np.ndarray | None = None) -> np.ndarray:
        m, k = a.shape
        n = b.shape[1]
        d = self.spec.dot_width
        mt, nt, kt = self.tile_shape(m, n, k, a_bits, b_bits)
        self._ensure_arena(self._tile_bytes(mt, nt, kt, a_bits, b_bits, self._two_b(n, k, nt, kt)))
        # K partials are summed in int64 (exact); a result of another dtype then takes the sum in one copy
        direct = result is not None and (kt == k or result.dtype == np.int64)
        out = result if direct else np.empty((m, n), dtype=np.int64)
        calls = plan_calls(m, n, k, mt, nt, kt, d, self.prefetch)
        if self._hint_pending:  # an earlier chain stopped early and its clean-up could not run then
            self._clear_prefetch()
        try:
            self._run_calls(calls, a, b, a_bits, b_bits, flags, out)
        except BaseException:  # KeyboardInterrupt too: Ctrl-C between two calls leaves a hint behind
            if self._hint_pending:
                self._clear_prefetch_after_error()
            raise
        if result is not None and not direct:
            np.copyto(result, out, casting="unsafe")
            return result
        return out

    def _run_calls(self, calls: list[PlannedCall], a: np.ndarray | RowSource, b: np.ndarray, a_bits: int,
                   b_bits: int, flags: int, out: np.ndarray) -> None:
        """Run the planned calls of one GEMM, leasing and packing each B tile once."""
        d = self.spec.dot_width
        tiles = {c.b_tile: (c.k0, c.k1, c.n0, c.n1) for c in calls}

        # B tile i is packed into a buffer of its own before the first call that names it (as the
        # tile it computes with or as its prefetch hint) and released after its last call.
        with contextlib.ExitStack() as all_leases:
            held: dict[int, tuple[contextlib.ExitStack, Region]] = {}

            def region(i: int) -> Region:
                if i not in held:
                    k0, k1, n0, n1 = tiles[i]
                    stack = contextlib.ExitStack()
                    all_leases.callback(stack.close)
                    (rb,) = stack.enter_context(self.pool.lease((layout.operand_bytes(n1 - n0, k1 - k0, b_bits, d),)))
                    # B is stored transposed: column n is a plane row
                    layout.pack_rows_into(b[k0:k1, n0:n1].T, b_bits, d, out=rb.array.reshape(n1 - n0, b_bits, -1))
                    rb.flush()
                    held[i] = (stack, rb)
                return held[i][1]

            for j, c in enumerate(calls):
                rb = region(c.b_tile)
                hint = None
                if c.hint_tile is not None:
                    hk0, hk1, hn0, hn1 = tiles[c.hint_tile]
                    hint = (region(c.hint_tile).phys, hn1 - hn0, hk1 - hk0)
                self._call(a, (c.m0, c.m1, c.k0, c.k1), rb, c.n1 - c.n0, a_bits, b_bits, flags,
                           out[c.m0:c.m1, c.n0:c.n1], accumulate=c.k0 > 0, hint=hint)
                if j + 1 == len(calls) or calls[j + 1].b_tile != c.b_tile:
                    held.pop(c.b_tile)[0].close()

    def _ensure_arena(self, need: int) -> None:
        if self.pool.arena_bytes < need:
            with self.pool.lease((need,)):
                pass  # grows the idle arena once; the tiles below then never allocate

    # ------------------------------------------------------------------ one device call
    def _call(self, a: np.ndarray | RowSource, tile: tuple[int, int, int, int], rb: Region, n: int, a_bits: int,
              b_bits: int, flags: int, out: np.ndarray, accumulate: bool,
              hint: tuple[int, int, int] | None = None) -> None:
        m0, m1, k0, k1 = tile
        m, k = m1 - m0, k1 - k0
        d, cols = self.spec.dot_width, self.spec.cols
        c_bytes = layout.result_bytes(m, n, cols)
        with self.pool.lease((layout.operand_bytes(m, k, a_bits, d), c_bytes)) as (ra, rc):
            planes = ra.array.reshape(m, a_bits, -1)
            if isinstance(a, RowSource):  # a lowered operand that packs its own tiles (cpt_driver.sources)
                sources.pack_tile(a, m0, m1, k0, k1, a_bits, d, planes)
            else:
                layout.pack_rows_into(a[m0:m1, k0:k1], a_bits, d, out=planes)
            ra.flush()
            self._run(ra.phys, rb.phys, rc.phys, m, n, k, a_bits, b_bits, flags, hint)
            rc.invalidate()
            c = rc.array.view("<i4").reshape(m, layout.result_stride(n, cols))[:, :n]
            if accumulate:
                np.add(out, c, out=out)
            else:
                np.copyto(out, c, casting="unsafe")  # into the caller's dtype (exact to int64; rounded once to float)

    def _run(self, a: int, b: int, c: int, m: int, n: int, k: int, a_bits: int, b_bits: int, flags: int,
             hint: tuple[int, int, int] | None = None) -> int:
        """Program one call, start it, wait, check status.  Returns the device's cycle count.

        hint: (B address, N, K) of the next call (same b_bits), which the device prefetches."""
        self._ensure_idle(0.0)
        self._gemm_mode()
        args = [("a", a), ("b", b), ("c", c), ("m", m), ("n", n), ("k", k), ("a_bits", a_bits),
                ("b_bits", b_bits)]
        if hint is not None:
            flags |= self.spec.flag("PREFETCH_B")
            args += [("next_b", hint[0]), ("next_n", hint[1]), ("next_k", hint[2]), ("next_b_bits", b_bits)]
        for name, value in (*args, ("flags", flags)):
            self._write_arg(name, value)
        # Every call consumes the device's previous hint; this one leaves its own iff it carries one.
        self._hint_pending = hint is not None
        b_prefetched = self._hint_key == (b, n, k, b_bits)
        self._hint_key = (hint[0], hint[1], hint[2], b_bits) if hint is not None else None
        self.backend.write_reg(self._reg["CTRL"], self._ctrl_start)
        timeout = self.timeout_s if self.timeout_s is not None else self._default_timeout(m, n, k, a_bits, b_bits)
        if not self.backend.wait_done(timeout):
            raise DeviceTimeoutError(f"{self.backend.name}: cpt_gemm did not set ap_done within {timeout:.3g} s "
                                     f"(M={m} N={n} K={k} a_bits={a_bits} b_bits={b_bits}); {self._register_state()}")
        status = self._read_arg("status")
        cycles = self._read_arg("cycles")
        s = self.spec
        # a refused call moves no data; after a bus error (ERR_AXI_RESP) what moved is unknown: counted as none
        read, written = (0, 0) if status else layout.call_traffic(
            m, n, k, a_bits, b_bits, s.dot_width, s.cols, s.b_block_cols, b_prefetched=b_prefetched,
            hint=None if hint is None else (hint[1], hint[2], b_bits))
        self.calls += 1
        self.total_cycles += cycles
        self.read_bytes += read
        self.write_bytes += written
        self.history.append(CallRecord(m, n, k, a_bits, b_bits, flags & ~self._prefetch_flag, cycles,
                                       prefetch=hint is not None, read_bytes=read, write_bytes=written,
                                       status=status))
        if status:
            raise DeviceStatusError(f"{self.backend.name}: cpt_gemm refused the call: status 0x{status:x} = "
                                    f"{self.spec.decode_status(status)}", status)
        return cycles

    def _gemm_mode(self) -> None:
        """Interface 4: op 0 in ``conv`` makes the next call an interface-3 GEMM call."""
        if self._conv_set:
            self._write_arg("conv", 0)
            self._conv_set = False

    def _conv_call(self, op: str, args: dict[str, int], m: int, n: int, k: int, traffic: tuple[int, int],
                   hint: bool = False) -> int:
        """One interface-4 convolution call (cpt_driver.conv_engine): write ``args``, start, wait, check.
        m, n, k: its result rows, columns and reduction (for the record and the deadline); traffic: the bytes
        it reads and writes.  Returns the device's cycle count."""
        self._ensure_idle(0.0)
        for name, value in args.items():
            self._write_arg(name, value)
        self._conv_set = True
        self._hint_pending = hint      # a conv call consumes any B hint; a chain call leaves its own
        self._hint_key = None
        self.backend.write_reg(self._reg["CTRL"], self._ctrl_start)
        a_bits, b_bits = args["a_bits"], args["b_bits"]
        timeout = self.timeout_s if self.timeout_s is not None else self._default_timeout(m, n, k, a_bits, b_bits)
        if not self.backend.wait_done(timeout):
            raise DeviceTimeoutError(f"{self.backend.name}: cpt_gemm did not set ap_done within {timeout:.3g} s "
                                     f"({op} conv call, M={m} N={n} K={k}); {self._register_state()}")
        status = self._read_arg("status")
        cycles = self._read_arg("cycles")
        read, written = (0, 0) if status else traffic
        self.calls += 1
        self.total_cycles += cycles
        self.read_bytes += read
        self.write_bytes += written
        self.history.append(CallRecord(m, n, k, a_bits, b_bits, args["flags"] & ~self._prefetch_flag, cycles,
                                       prefetch=hint, read_bytes=read, write_bytes=written, op=op, status=status))
        if status:
            self._hint_pending = False     # a refused call leaves no hint of either kind (docs/registers.md)
            raise DeviceStatusError(f"{self.backend.name}: cpt_gemm refused the {op} conv call: status 0x{status:x} = "
                                    f"{self.spec.decode_status(status)}", status)
        return cycles

    def _default_timeout(self, m: int, n: int, k: int, a_bits: int, b_bits: int) -> float:
        s = self.spec
        kw = -(-k // s.dot_width)
        compute = -(-m // s.rows) * -(-n // s.cols) * (a_bits * b_bits * kw + s.rows + s.cols)
        traffic = (layout.operand_bytes(m, k, a_bits, s.dot_width) * -(-n // s.cols)
                   + layout.operand_bytes(n, k, b_bits, s.dot_width) + layout.result_bytes(m, n, s.cols)) // 4
        return _TIMEOUT_BASE_S + 4 * (compute + traffic) / _TIMEOUT_CLOCK_HZ

    # ------------------------------------------------------------------ registers
    def _write_arg(self, name: str, value: int) -> None:
        words = self.spec.arg_words[name]
        if value >> (32 * len(words)):
            raise DeviceError(f"{name} = 0x{value:x} does not fit the {32 * len(words)}-bit register")
        for i, off in enumerate(words):
            self.backend.write_reg(off, (value >> (32 * i)) & 0xFFFFFFFF)

    def _read_arg(self, name: str) -> int:
        return sum(self.backend.read_reg(off) << (32 * i) for i, off in enumerate(self.spec.arg_words[name]))

    def _program_window(self, arena: DmaBuffer) -> None:
        self._write_arg("win_base", arena.phys)
        self._write_arg("win_limit", arena.phys + arena.nbytes)

    def _register_state(self) -> str:
        r = self.backend.read_reg
        return (f"{self.spec.decode_ctrl(r(self._reg['CTRL']))}, GIE=0x{r(self._reg['GIE']):x}, "
                f"IER=0x{r(self._reg['IER']):x}, ISR=0x{r(self._reg['ISR']):x}, status=0x{self._read_arg('status'):x}")

    def _ensure_idle(self, timeout_s: float) -> None:
        """Raise DeviceBusyError unless CTRL shows ap_idle (waiting up to timeout_s).  Clears a stale ap_done."""
        deadline = time.monotonic() + timeout_s
        while True:
            ctrl = self.backend.read_reg(self._reg["CTRL"])
            if ctrl & self._ctrl_idle and not ctrl & self._ctrl_start:
                return
            if time.monotonic() >= deadline:
                raise DeviceBusyError(f"{self.backend.name}: cpt_gemm is not idle: {self.spec.decode_ctrl(ctrl)} "
                                      "(a previous call timed out or another process uses the device)")
            time.sleep(1e-3)

    def _probe_call(self, what: str) -> int:
        """Run one call with M = 0, which every implementation refuses (ERR_DIM) without touching memory
        and which consumes any B prefetch the device holds.  Returns the ID register (the HLS kernel
        writes it on every call, refused ones too)."""
        self._gemm_mode()
        self._write_arg("m", 0)
        self._write_arg("flags", 0)
        self.backend.write_reg(self._reg["CTRL"], self._ctrl_start)
        if not self.backend.wait_done(self.timeout_s if self.timeout_s is not None else _TIMEOUT_BASE_S):
            raise DeviceTimeoutError(f"{self.backend.name}: {what} call did not complete; {self._register_state()}")
        status = self._read_arg("status")
        if not status >> self.spec.status_bits["ERR_DIM"] & 1:
            raise DeviceError(f"{self.backend.name}: {what} (M = 0) was not refused: status 0x{status:x}")
        self._hint_pending = False
        self._hint_key = None
        return self._read_arg("id")

    def _clear_prefetch(self) -> None:
        """Drop a prefetch hint that no planned call will consume (a refused call is a miss for it)."""
        self._ensure_idle(self.timeout_s if self.timeout_s is not None else _TIMEOUT_BASE_S)
        self._probe_call("the prefetch-clearing")

    def _clear_prefetch_after_error(self) -> None:
        """Best effort while another exception propagates: if the device cannot take the refused call
        now (still busy after a timeout), ``_hint_pending`` stays set and the next GEMM clears it first."""
        with contextlib.suppress(DeviceError):
            self._clear_prefetch()
