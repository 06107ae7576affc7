"""The pynq backend with PYNQ mocked only at its boundary: Overlay/IP MMIO (backed by the emulated device's
registers), pynq.allocate (real PynqBuffer objects over non-coherent host memory, flushed to and
invalidated from the emulated DDR) and the IP's interrupt pin."""

import asyncio
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pynq
import pytest
from pynq.buffer import PynqBuffer
from pynq.pl_server.remote_device import RemoteBuffer

from cpt_driver import Accelerator, DeviceTimeoutError, IdMismatchError, SpecError, resolve_spec
from cpt_driver.backends.emu import EmuBackend
from cpt_hw.gen.generator import generate
from cpt_hw.hw.config import HardwareConfig

SIM = HardwareConfig.from_preset("sim")


class FakeBuffer(PynqBuffer):
    def freebuffer(self):
        if getattr(self, "_owner", None) is not None and not self.freed:  # views own nothing, as in PYNQ
            self.freed = True
            self._owner.free(self.device_address)


class Board:
    """The emulated device behind a fake overlay, its DDR, and a non-coherent cache in front of it."""

    def __init__(self, cfg=SIM, with_irq=False, extra_ips=(), ip_path="cpt_gemm_0"):
        self.emu = EmuBackend(resolve_spec(cfg))
        self.device, self.memory = self.emu.device, self.emu.memory
        self.flushes = self.invalidates = self.irq_waits = 0
        self.with_irq, self.extra_ips, self.ip_path = with_irq, extra_ips, ip_path
        self.buffers = {}
        self.opened = []

    # pynq.allocate
    def allocate(self, shape, dtype="u4", target=None, **kwargs):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        phys, _ = self.memory.allocate(nbytes)
        buf = FakeBuffer(shape, dtype, device=self, device_address=phys, bo=phys, coherent=False)
        buf._owner = self
        buf[...] = 0x5A  # host memory is not the device's: garbage until invalidated
        self.buffers[phys] = buf
        return buf

    def free(self, phys):
        del self.buffers[phys]
        self.memory.free(phys)

    # PynqBuffer's device interface: cache maintenance moves bytes between host and DDR
    def flush(self, bo, offset, vaddr, nbytes):
        self.flushes += 1
        self.memory.view(bo + offset, nbytes)[:] = self.buffers[bo].view(np.uint8)[offset:offset + nbytes]

    def invalidate(self, bo, offset, vaddr, nbytes):
        self.invalidates += 1
        self.buffers[bo].view(np.uint8)[offset:offset + nbytes] = self.memory.view(bo + offset, nbytes)

    # pynq.Overlay
    def overlay(self, bitfile, download=True):
        self.opened.append((bitfile, download))
        return FakeOverlay(self)


class FakeMMIO:
    def __init__(self, device):
        self.device = device

    def read(self, offset=0, length=4, word_order="little"):
        assert length == 4
        return self.device.read(offset)

    def write(self, offset, data):
        assert isinstance(data, int)
        self.device.write(offset, data)


class FakeInterrupt:
    def __init__(self, board):
        self.board = board

    async def wait(self):
        self.board.irq_waits += 1
        while not self.board.device.interrupt:
            await asyncio.sleep(0.001)


class FakeIP:
    def __init__(self, board):
        self.mmio = FakeMMIO(board.device)
        self.interrupt = FakeInterrupt(board) if board.with_irq else None


class Hier:
    pass


class FakeOverlay:
    def __init__(self, board):
        self.ip_dict = {board.ip_path: {"type": "xilinx.com:hls:cpt_gemm:1.0", "fullpath": board.ip_path}}
        self.ip_dict.update({n: {"type": t} for n, t in board.extra_ips})
        parts = board.ip_path.split("/")
        obj = self
        for p in parts[:-1]:
            setattr(obj, p, Hier())
            obj = getattr(obj, p)
        setattr(obj, parts[-1], FakeIP(board))


@pytest.fixture
def board(monkeypatch):
    def make(**kwargs):
        b = Board(**kwargs)
        monkeypatch.setattr(pynq, "Overlay", b.overlay)
        monkeypatch.setattr(pynq, "allocate", b.allocate)
        return b
    return make


def check_gemm(acc, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-8, 8, size=(20, 300))
    b = rng.integers(0, 64, size=(300, 9))
    np.testing.assert_array_equal(acc.gemm(a, b, 4, 6, True, False), a @ b)


def test_gemm_through_pynq_with_cache_maintenance(board, tmp_path):
    b = board()
    out, _ = generate(SIM, tmp_path, ["driver"])
    regmap = out / "driver" / "regmap.json"  # what a board has: the bitstream and regmap.json
    acc = Accelerator("pynq", config=str(regmap), bitfile="/overlays/cpt.bit")
    assert b.opened == [("/overlays/cpt.bit", True)] and acc.backend.ip_name == "cpt_gemm_0"
    check_gemm(acc)
    assert b.flushes >= 2 * acc.calls and b.invalidates >= acc.calls  # A and B flushed, C invalidated
    assert acc.pool.arena_allocations == 1 and len(b.buffers) == 1
    acc.close()
    assert b.buffers == {}
    # On the board: <dir>/<name>.bit, <name>.hwh and regmap.json side by side; config defaults to that file
    acc = Accelerator("pynq", bitfile=str(out / "driver" / "sim.bit"))
    assert acc.spec.source == str(regmap)


def test_interrupt_mode(board):
    b = board(with_irq=True)
    acc = Accelerator("pynq", config=SIM, bitfile="x.bit", use_interrupt=True)
    assert b.device.read(acc.spec.registers["GIE"]) == 1 and b.device.read(acc.spec.registers["IER"]) == 1
    check_gemm(acc)
    assert b.irq_waits == acc.calls + 1  # + the ID probe
    assert b.device.isr == 0  # every interrupt acknowledged

    async def inside_a_running_loop():  # e.g. a Jupyter cell: the backend cannot block on a loop, so it polls
        check_gemm(acc, seed=3)

    waits = b.irq_waits
    asyncio.run(inside_a_running_loop())
    assert b.irq_waits == waits and b.device.isr == 0
    check_gemm(acc, seed=4)  # and back to interrupts
    assert b.irq_waits > waits


@pytest.mark.parametrize("use_interrupt", [False, True])
def test_hung_kernel_times_out(board, use_interrupt):
    b = board(with_irq=True)
    acc = Accelerator("pynq", config=SIM, bitfile="x.bit", use_interrupt=use_interrupt, timeout_s=0.05)
    b.device.hang = True
    with pytest.raises(DeviceTimeoutError, match=r"pynq: cpt_gemm did not set ap_done.*ap_idle=0"):
        check_gemm(acc)
    assert acc.pool.outstanding == 0


def test_refuses_an_overlay_built_from_another_config(board):
    board(cfg=SIM.replace(cols=4, b_block_cols=8))
    with pytest.raises(IdMismatchError, match="does not match config 'sim'"):
        Accelerator("pynq", config=SIM, bitfile="x.bit")


def test_ip_discovery(board):
    board(ip_path="accel/cpt_gemm_3", extra_ips=[("axi_dma_0", "xilinx.com:ip:axi_dma:7.1")])
    acc = Accelerator("pynq", config=SIM, bitfile="x.bit", download=False)
    assert acc.backend.ip_name == "accel/cpt_gemm_3"
    check_gemm(acc, seed=1)
    board(extra_ips=[("cpt_gemm_1", "xilinx.com:hls:cpt_gemm:1.0")])
    with pytest.raises(SpecError, match="overlay has 2 'cpt_gemm' IPs .*pass ip_name="):
        Accelerator("pynq", config=SIM, bitfile="x.bit")
    acc = Accelerator("pynq", config=SIM, bitfile="x.bit", ip_name="cpt_gemm_0")
    check_gemm(acc, seed=2)
    with pytest.raises(SpecError, match="needs bitfile="):
        Accelerator("pynq", config=SIM)
    board(with_irq=False)
    with pytest.raises(SpecError, match="no interrupt pin"):
        Accelerator("pynq", config=SIM, bitfile="x.bit", use_interrupt=True)


class FakeBufferStub:
    """The gRPC buffer stub of PYNQ.remote, serving the emulated DDR: ``write`` stores the streamed bytes
    from ``start`` (0 when the request names none, as RemoteBuffer.flush sends it), ``read`` streams
    ``[start, end)`` (the whole buffer when end is 0); the board's own cache maintenance is a no-op here."""

    def __init__(self, memory):
        self.memory = memory
        self.buffers = {}  # buffer_id -> (phys, nbytes)
        self.writes = self.reads = 0

    def add(self, buffer_id, phys, nbytes):
        self.buffers[buffer_id] = (phys, nbytes)

    def _ddr(self, buffer_id):
        phys, nbytes = self.buffers[buffer_id]
        return self.memory.view(phys, nbytes)

    def write(self, requests):
        self.writes += 1
        requests = list(requests)
        ddr, pos = self._ddr(requests[0].buffer_id), requests[0].start
        for r in requests:
            ddr[pos:pos + len(r.data)] = np.frombuffer(r.data, dtype=np.uint8)
            pos += len(r.data)
        return SimpleNamespace(msg="")

    def read(self, request):
        self.reads += 1
        ddr = self._ddr(request.buffer_id)
        yield SimpleNamespace(data=ddr[request.start:request.end or len(ddr)].tobytes(), msg="")

    def flush(self, request):
        return SimpleNamespace(msg="")

    def invalidate(self, request):
        return SimpleNamespace(msg="")

    def physical_address(self, request):
        return SimpleNamespace(msg="", address=self.buffers[request.buffer_id][0])

    def freebuffer(self, request):
        phys, _ = self.buffers.pop(request.buffer_id)
        self.memory.free(phys)
        return SimpleNamespace(msg="")


@pytest.fixture
def remote_board(board):
    """A board reached through PYNQ.remote: pynq.allocate returns pynq's own RemoteBuffer (pynq 4.0)."""
    b = board()
    stub = FakeBufferStub(b.memory)

    def allocate(shape, dtype="u4", **kwargs):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        phys, _ = b.memory.allocate(nbytes)
        buffer_id = f"buf{phys:x}"
        stub.add(buffer_id, phys, nbytes)
        buf = RemoteBuffer(shape, dtype, stub, buffer_id)
        buf[...] = 0x5A  # the workstation's copy is not the board's memory
        return buf

    pynq.allocate = allocate  # the board fixture's monkeypatch restores it
    return b, stub


def test_gemm_through_pynq_remote_buffers(remote_board):
    """RemoteBuffer.flush/invalidate of a slice would write the slice at the buffer's start and reshape
    the whole buffer into the slice: the backend syncs whole buffers, and the results are exact."""
    b, stub = remote_board
    acc = Accelerator("pynq", config=SIM, bitfile="x.bit")
    check_gemm(acc)
    check_gemm(acc, seed=5)
    assert acc.calls >= 2 and stub.writes >= 2 * acc.calls and stub.reads >= acc.calls
    acc.close()
    assert stub.buffers == {}


def test_remote_buffer_slices_are_not_synced_in_place(remote_board):
    """Why the backend never syncs a slice: pynq 4.0's RemoteBuffer loses the slice's offset."""
    b, stub = remote_board
    buf = pynq.allocate((256,), np.uint8)
    buf[:] = 1
    buf.flush()
    buf[128:] = 7
    buf[128:].flush()  # lands at offset 0 on the board, not at 128
    ddr = stub._ddr(next(iter(stub.buffers)))
    assert (ddr[:128] == 7).all() and (ddr[128:] == 1).all()
    with pytest.raises(ValueError):
        buf[128:].invalidate()  # the whole buffer does not reshape into the slice
    buf.freebuffer()


BLOCK_IMPORTS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('cpt_hw', 'torch'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import cpt_driver, cpt_driver.backends.pynq
spec = cpt_driver.resolve_spec(sys.argv[1])
print(spec.name, hex(spec.id_word), spec.k_max)
"""


def test_driver_and_pynq_backend_import_without_cpt_hw_or_torch(tmp_path):
    out, _ = generate(SIM, tmp_path, ["driver"])
    r = subprocess.run([sys.executable, "-c", BLOCK_IMPORTS, str(out / "driver" / "regmap.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["sim", hex(SIM.id_word), str(SIM.k_max)]
