"""From a CPT training checkpoint to an hls4ml inference project for the ZC706 (``cpt-hw export``).

:func:`export_checkpoint` folds the trained model at its last precision (:mod:`.fold`), gives every hls4ml
layer its precision (:mod:`.precision`), writes the project (:mod:`.project`) into a temporary folder next to
``out`` and renames it into place at the end, so a failure leaves nothing half-written.  With ``check`` > 0
it first compiles the C++ with g++ and compares it with the quantized PyTorch model (:mod:`.check`).
docs/inference.md describes the mapping and the measured agreement.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..nn.context import MAX_BITS
from .check import CheckResult, load_images, run_check
from .fold import ExportError, fold
from .precision import plan

#: Marks a folder as written by cpt-hw export (so a re-export may replace it, and nothing else).
MANIFEST = "export.json"


@dataclass
class ExportResult:
    out: Path
    model: str
    bits: int
    io: str
    layers: int
    check: CheckResult | None

    def line(self) -> str:
        from .project import BACKEND, PART

        return (f"exported {self.model} at {self.bits} bits ({self.layers} hls4ml layers, io_{self.io}) to {self.out}: "
                f"{BACKEND} HLS project for {PART}")


def check_args(out: str | Path, bits: int | None, io: str, check: int) -> Path:
    """Validate the options before any work: one :class:`ExportError` naming the flag, the value and the rule."""
    from .project import IO_TYPES

    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS):
        raise ExportError(f"--bits {bits!r}: must be an integer in 1..{MAX_BITS}")
    if io not in IO_TYPES:
        raise ExportError(f"--io {io!r}: must be one of {', '.join(IO_TYPES)}")
    if isinstance(check, bool) or not isinstance(check, int) or check < 0:
        raise ExportError(f"--check {check!r}: must be an integer >= 0 (0: no check)")
    out = Path(out)
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: its parent folder {out.parent} does not exist")
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"--out {out}: a folder not written by cpt-hw export and not empty; choose another")
    return out


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, bits: int | None = None, io: str = "stream",
                      check: int = 0, data: str | None = None) -> ExportResult:
    """Export ``checkpoint`` (a ``cpt-hw train`` checkpoint.pt) as an hls4ml project into folder ``out``.

    ``bits``: weight/activation precision (default: the checkpoint's last); ``io``: ``stream`` or ``parallel``
    (hls4ml's io_stream / io_parallel); ``check``: compile with g++ and compare on that many test images
    (``data`` overrides the checkpoint's dataset path).  Everything that can be refused is refused before
    anything is written."""
    from .source import load_trained, resolve_bits

    out = check_args(out, bits, io, check)
    trained = load_trained(checkpoint)
    bits = resolve_bits(trained, bits)
    net = fold(trained.model, bits)
    types = plan(net)
    images = load_images(trained, data, check) if check else None
    tmp = Path(tempfile.mkdtemp(dir=out.parent.resolve(), prefix=f".{out.name}.tmp-"))
    try:
        result = _build(trained, net, types, tmp, io, images, bits)
        _finish(tmp, out, result)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.out = out
    return result


def _build(trained, net, types, tmp: Path, io: str, images, bits: int) -> ExportResult:
    from . import project

    hmodel = project.convert(net, tuple(trained.model.input_shape), types, tmp, io)
    result = ExportResult(tmp, trained.config.model, bits, io, len(list(hmodel.get_layers())), None)
    if images is not None:
        project.compile_model(hmodel)
        result.check = run_check(trained.model, hmodel, images, bits)
    manifest = {"checkpoint": trained.source, "iteration": trained.step, "model": result.model, "bits": bits,
                "io": f"io_{io}", "part": project.PART, "backend": project.BACKEND, "project": project.PROJECT,
                "input_type": types.input_type, "layer_types": types.layers,
                "check": asdict(result.check) if result.check else None}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return result


def _finish(tmp: Path, out: Path, result: ExportResult) -> None:
    """Drop what only worked inside ``tmp`` (the g++ library reads its weights from tmp's absolute path), point
    hls4ml's config at ``out`` and rename ``tmp`` into place, replacing an earlier export."""
    for lib in (tmp / "firmware").glob("*.so"):
        lib.unlink()
    cfg = tmp / "hls4ml_config.yml"
    if cfg.is_file():
        cfg.write_text(cfg.read_text().replace(str(tmp), str(out.resolve())))
    if out.exists():
        old = out.parent / f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


__all__ = ["CheckResult", "ExportError", "ExportResult", "check_args", "export_checkpoint", "fold", "plan"]
