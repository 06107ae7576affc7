"""Error paths: argument errors before any register write, timeouts naming the register state, refused calls,
ID checks, and the pool getting every buffer back."""

import dataclasses
import time

import numpy as np
import pytest

from cpt_driver import (Accelerator, ArgumentError, DeviceBusyError, DeviceStatusError, DeviceTimeoutError, DriverError,
                        IdMismatchError, OperandTypeError, ResultSizeError, SpecError, resolve_spec)
from cpt_driver import layout as L
from cpt_driver.backends.emu import EmuBackend
from cpt_driver.checks import check_result_size, host_memory_bytes
from cpt_hw.hw.calls import REFUSED_CALLS, Call, refused_calls
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.regmap import INPUTS, STATUS_BITS

SIM = HardwareConfig.from_preset("sim")


class SpyEmu(EmuBackend):
    """The emu backend, logging every register write."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes: list[tuple[int, int]] = []

    def write_reg(self, offset, value):
        self.writes.append((offset, value))
        super().write_reg(offset, value)


@pytest.fixture
def spy():
    backend = SpyEmu(resolve_spec(SIM))
    acc = Accelerator(backend, timeout_s=0.05)
    backend.writes.clear()
    return acc, backend


A = np.ones((4, 10), dtype=np.int64)
B = np.ones((10, 3), dtype=np.int64)

BAD_CALLS = [
    ((A.astype(float), B, 8, 8), OperandTypeError, "dtype float64 is not an integer type"),
    ((A[0], B, 8, 8), ArgumentError, r"a: expected a 2-D array, got shape \(10,\)"),
    ((A, B[:9], 8, 8), ArgumentError, "inner dimensions differ: a is 4x10, b is 9x3"),
    ((A * 256, B, 8, 8), ArgumentError, r"a: values 256..256 do not fit 8-bit unsigned \(0..255\)"),
    ((A, -B, 8, 8), ArgumentError, r"b: values -1..-1 do not fit 8-bit unsigned"),
    ((A * 4, B, 3, 8, True, False), ArgumentError, r"a: values 4..4 do not fit 3-bit signed \(-4..3\)"),
    ((A, B, 0, 8), ArgumentError, r"a_bits = 0: must be in 1..8"),
    ((A, B, 8, 9), ArgumentError, r"b_bits = 9: must be in 1..8"),
    ((A, B, True, 8), ArgumentError, "a_bits = True: must be an integer"),
    ((A, B, 8.0, 8), ArgumentError, "a_bits = 8.0: must be an integer"),
    ((A, B, 8, 8, "yes"), ArgumentError, "a_signed = 'yes': must be True or False"),
]


@pytest.mark.parametrize("args, exc, message", BAD_CALLS)
def test_bad_arguments_are_refused_before_any_register_write(spy, args, exc, message):
    acc, backend = spy
    with pytest.raises(exc, match=message):
        acc.gemm(*args)
    assert backend.writes == []
    assert acc.pool.outstanding == 0


def test_a_bad_value_in_a_later_tile_is_caught_before_the_first_tile(spy):
    acc, backend = spy
    a = np.ones((10, 3 * SIM.k_max), dtype=np.int64)
    a[-1, -1] = 300
    with pytest.raises(ArgumentError, match="a: values 1..300"):
        acc.gemm(a, np.ones((3 * SIM.k_max, 2), dtype=np.int64), 8, 8)
    assert backend.writes == []


def test_bad_qgemm_scales_before_any_register_write(spy):
    acc, backend = spy
    with pytest.raises(ArgumentError, match=r"b_scale: shape \(2,\): expected a scalar or one value per column of B \(3,\)"):
        acc.qgemm(A, B, 8, 8, 1.0, 0.0, np.ones(2), 0.0)
    with pytest.raises(ArgumentError, match="a_zero: must be finite"):
        acc.qgemm(A, B, 8, 8, 1.0, np.nan, 1.0, 0.0)
    assert backend.writes == []


def test_timeout_names_the_register_state_and_the_device_stays_guarded(spy):
    acc, backend = spy
    backend.device.hang = True
    with pytest.raises(DeviceTimeoutError) as err:
        acc.gemm(A, B, 8, 8)
    msg = str(err.value)
    assert "did not set ap_done within 0.05 s" in msg and "M=4 N=3 K=10" in msg
    assert "CTRL=0x00000000" not in msg and "ap_start=1 ap_done=0 ap_idle=0" in msg and "ISR=0x0" in msg
    assert acc.pool.outstanding == 0
    with pytest.raises(DeviceBusyError, match="not idle"):  # no new call while the old one may still write
        acc.gemm(A, B, 8, 8)
    backend.device.hang = False
    backend.device.finish()  # the stuck call ends; its ap_done is consumed by the next call's idle check
    np.testing.assert_array_equal(acc.gemm(A, B, 8, 8), A @ B)


class TamperingEmu(EmuBackend):
    """The emu backend with a transient fault between driver and device: for the next call after
    :meth:`arm`, the registers the driver programmed are replaced by a refused call derived from them (as a
    driver bug, another process or a bit flip would leave them), and restored once the call is done."""

    case = None

    def arm(self, case):
        self.case = case

    def _args(self, call):
        for name, v in dataclasses.asdict(call).items():
            for i, off in enumerate(self.spec.arg_words[name]):
                super().write_reg(off, (v >> (32 * i)) & 0xFFFFFFFF)

    def write_reg(self, offset, value):
        spec = self.spec
        if self.case is None or offset != spec.registers["CTRL"] or not value & 1 << spec.ctrl_bits["AP_START"]:
            return super().write_reg(offset, value)
        base = Call(**{a.name: sum(self.read_reg(off) << (32 * i) for i, off in enumerate(spec.arg_words[a.name]))
                       for a in INPUTS})
        [(_, call)] = refused_calls(SIM, base, (self.case,))
        self.case = None  # once: the driver's clean-up call after the error runs as programmed
        self._args(call)
        super().write_reg(offset, value)  # the emulated call runs to its end here
        self._args(base)


@pytest.mark.parametrize("case", REFUSED_CALLS, ids=lambda case: case.name)
def test_each_refused_call_raises_with_its_decoded_status(case):
    """Every case of the table of refused calls (cpt_hw.hw.calls.REFUSED_CALLS) at the driver: a
    DeviceStatusError naming exactly the case's bits, no result written, every buffer back in the pool."""
    backend = TamperingEmu(resolve_spec(SIM))
    acc = Accelerator(backend, timeout_s=0.05)
    acc.gemm(A, B, 8, 8)
    arena = acc.pool.arena
    arena.array[:] = 0xEE
    backend.arm(case)
    with pytest.raises(DeviceStatusError, match=r"cpt_gemm refused the call: status 0x[0-9a-f]+ = ") as err:
        acc.gemm(A, B, 8, 8)
    named = [b for b in STATUS_BITS if b in str(err.value)]
    assert err.value.status == case.status and set(named) == set(case.bits), (str(err.value), case.bits)
    assert acc.pool.outstanding == 0
    # The driver packed B, then A, at the start of the arena; the refused device wrote nothing (no C).
    packed = acc.pool.need([L.operand_bytes(3, 10, 8, SIM.dot_width), L.operand_bytes(4, 10, 8, SIM.dot_width)])
    assert (arena.array[:packed] != 0xEE).any()
    assert (arena.array[packed:] == 0xEE).all()
    np.testing.assert_array_equal(acc.gemm(A, B, 8, 8), A @ B)  # and the next GEMM runs


def test_id_probe_and_mismatch():
    backend = EmuBackend(resolve_spec(SIM))
    assert backend.read_reg(backend.spec.registers["id"]) == 0  # HLS: id is written by the first call
    acc = Accelerator(backend)
    assert acc.device_id == SIM.id_word and backend.device.runs == 1  # one refused probe call (M = 0)
    other = SIM.replace(rows=4)
    backend2 = EmuBackend(resolve_spec(other))
    backend2.spec = resolve_spec(SIM)  # a driver built for 'sim' meets a device built from another config
    with pytest.raises(IdMismatchError, match=rf"device ID 0x{other.id_word:08x} does not match config 'sim' "
                                              rf"\(ID 0x{SIM.id_word:08x}"):
        Accelerator(backend2)


MASKED = np.ma.masked_array(A, mask=np.eye(4, 10, dtype=bool))


@pytest.mark.parametrize("args", [(MASKED, B, 8, 8), (A, np.ma.masked_array(B), 8, 8)])
def test_a_masked_array_is_refused_not_unmasked(spy, args):
    """np.asarray would drop the mask and multiply the masked entries like any other."""
    acc, backend = spy
    name = "a" if args[0] is MASKED else "b"
    with pytest.raises(OperandTypeError, match=rf"^{name}: a numpy masked array: the accelerator has no masked values "
                                               rf"and would use the data under the mask; pass {name}.filled"):
        acc.gemm(*args)
    with pytest.raises(OperandTypeError, match=r"^a_scale: a numpy masked array"):
        acc.qgemm(A, B, 8, 8, np.ma.masked_array(np.ones(4)), 0.0, 1.0, 0.0)
    assert backend.writes == [] and acc.pool.outstanding == 0


def test_a_broadcast_operand_is_checked_by_its_shape_first_and_its_stored_values_once(spy):
    acc, backend = spy
    row = np.ones((1, 10), dtype=np.int64)
    huge = np.broadcast_to(row, (1 << 40, 10))  # M = 2**40 rows, 10 stored values
    t0 = time.monotonic()
    with pytest.raises(ResultSizeError, match=r"^result: 1099511627776 x 3 int64 values need 26388279066624 bytes "
                                              r"\(24.0 TiB\), more than this host's"):
        acc.gemm(huge, B, 8, 8)
    # no result at all: the range check reads the 10 stored values, not 2**40 x 10
    bad = np.broadcast_to(row * 300, (1 << 40, 10))
    with pytest.raises(ArgumentError, match=r"^a: values 300..300 do not fit 8-bit unsigned"):
        acc.gemm(bad, B[:, :0], 8, 8)
    assert acc.gemm(huge, B[:, :0], 8, 8).shape == (1 << 40, 0)
    assert time.monotonic() - t0 < 5  # was minutes of min()/max() over 10 Ti elements
    assert backend.writes == [] and acc.pool.outstanding == 0


def test_a_result_larger_than_memory_is_a_driver_error_naming_its_size(spy):
    acc, backend = spy
    a = np.broadcast_to(np.ones((1, 1), dtype=np.int64), (1 << 23, 1))
    b = np.broadcast_to(np.ones((1, 1), dtype=np.int64), (1, 1 << 20))
    with pytest.raises(ResultSizeError, match=r"^result: 8388608 x 1048576 int64 values need 70368744177664 bytes "
                                              r"\(64.0 TiB\), more than this host's [\d.]+ [GT]iB of memory: "
                                              r"split the GEMM$"):
        acc.gemm(a, b, 8, 8)
    assert issubclass(ResultSizeError, DriverError) and issubclass(ResultSizeError, MemoryError)
    assert backend.writes == []
    assert host_memory_bytes() and host_memory_bytes() < 1 << 46
    check_result_size(1000, 1000, memory=8_000_000)  # exactly fits
    with pytest.raises(ResultSizeError, match=r"need 8008000 bytes \(7.6 MiB\), more than this host's 7.6 MiB"):
        check_result_size(1000, 1001, memory=8_000_000)


def test_an_unknown_config_name_is_a_driver_error():
    with pytest.raises(SpecError, match=r"^config 'nosuch': no build/nosuch/driver/regmap.json under .*, and unknown "
                                        r"preset 'nosuch' \(available: "):
        Accelerator(config="nosuch")
