"""``cpt-hw train``: CPT (or static/progressive/cyclic) training of a quantized model on a chosen backend."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import CptHwError
from ..schedules import DEFAULT_CYCLES, SCHEDULE_KINDS
from ..train.config import BN_SAVED
from ..train.data import DATASETS

#: argparse destination -> TrainConfig field, for the options a user can give (all default to None so a
#: resumed run can tell what was given on the command line).
_FIELDS = ("model", "dataset", "data", "data_cache", "schedule", "bits", "grad_bits", "cycles", "shape",
           "epochs", "iters", "batch_size", "lr", "momentum", "weight_decay", "lr_steps", "backend", "preset",
           "device", "fast", "recompute_bn", "bn_saved", "threads", "seed", "out", "stop_at", "log_every", "eval_every",
           "checkpoint_every", "eval_batch", "range_threshold", "range_steps", "progress")


#: ``cpt_hw.models.MODELS``, repeated so that ``--help`` needs no torch import (a test keeps them equal).
MODEL_NAMES = ("resnet20", "resnet38", "resnet74", "resnet110", "resnet152", "resnet164", "mobilenetv2",
               "digits_cnn")

#: Files that make a folder hold a run: a finished one (summary.json) or one that can be resumed.  A
#: metrics.jsonl alone is what a run leaves that stopped before its first checkpoint: nothing to resume.
RUN_FILES = ("summary.json", "checkpoint.pt")


def add_training_args(p: argparse.ArgumentParser, *, resumable: bool = False) -> None:
    """Model, data, backend and optimiser options shared by ``train`` and ``range-test``."""
    p.add_argument("--model", metavar="NAME", help=f"model to train: {', '.join(MODEL_NAMES)} (required"
                   f"{' unless --resume' if resumable else ''})")
    p.add_argument("--dataset", choices=DATASETS, help="data set (default: digits, bundled, no download)")
    p.add_argument("--data", metavar="PATH", help="CIFAR python-batches folder, image-folder tree, or its .tar.gz")
    p.add_argument("--data-cache", metavar="DIR", help="where decoded archives are cached "
                   "(default: $CPT_HW_CACHE or ~/.cache/cpt-hw)")
    p.add_argument("--batch-size", type=int, help="global batch size over all processes (default: 128)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: 0.1)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default: 1e-4)")
    p.add_argument("--backend", help="where the quantized GEMMs run: torch, torch:hardware, exact, accel:emu, "
                   "accel:rtl, accel:pynq (default: torch)")
    p.add_argument("--preset", help="hardware config of an accel backend: preset name or .toml (default: zc706)")
    p.add_argument("--device", help="torch device: cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is fastest for small "
                   "models such as the digits CNN)")
    p.add_argument("--seed", type=int, help="seed of initialisation, data order, augmentation and rounding noise")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a quantized model with cyclic precision (CPT)",
                       usage="%(prog)s (--model NAME (--iters N | --epochs N) | --resume CHECKPOINT) [options]",
                       description="Train a quantized model with a precision schedule; every GEMM of the "
                                   "quantized layers runs on the chosen backend.  Outputs go to --out: "
                                   "metrics.jsonl, checkpoint.pt, summary.json and PNG plots.")
    add_training_args(p, resumable=True)
    p.add_argument("--schedule", choices=SCHEDULE_KINDS, help="precision schedule (default: cpt)")
    p.add_argument("--bits", help="forward (weight/activation) bits: N, LO-HI, or auto (precision range test); "
                   "default 3-8")
    p.add_argument("--grad-bits", help="gradient (error) bits: N or LO-HI, scheduled like --bits (default: 8)")
    p.add_argument("--cycles", type=int, help=f"number of precision cycles (default: {DEFAULT_CYCLES})")
    p.add_argument("--shape", help="custom schedule shape: fractions over one cycle, e.g. 0,1,0.5")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="training length in epochs")
    length.add_argument("--iters", type=int, help="training length in iterations (the paper: 64000)")
    p.add_argument("--lr-steps", help="lr x 0.1 at these fractions of the iterations (default: 0.5,0.75)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<model>-<dataset>, or the first "
                   "free runs/<model>-<dataset>-N when that holds a run; with --resume: the checkpoint's folder).  "
                   "A folder holding another run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="a new run may replace the run in --out")
    p.add_argument("--fast", choices=("auto", "on", "off"),
                   help="CUDA fast path: fused quantizers, GPU-resident data, the iteration as one CUDA graph "
                        "(default auto: on for --device cuda with a torch backend; see docs/gpu.md)")
    p.add_argument("--recompute-bn", metavar="STAGES",
                   help="BatchNorm inputs recomputed in backward instead of kept, on the integer CPU backends "
                        "(exact, accel:*): none (default), all, or ResNet stages such as 1 or 2,3.  Bit-exact; "
                        "less memory for a second forward GEMM per layer (docs/zc706-pynq.md, Memory)")
    p.add_argument("--bn-saved", choices=BN_SAVED,
                   help="how BatchNorm layers keep their input for backward: float32 (default) or float16: half "
                        "the bytes of the largest saved tensors, the forward pass unchanged, a rounding in backward "
                        "(docs/training.md, Memory; not on the CUDA fast path)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint.pt, bit for bit")
    p.add_argument("--stop-at", type=int, metavar="ITER", help="stop (with a checkpoint) after this iteration")
    p.add_argument("--log-every", type=int, help="iterations per metrics line (default: 10)")
    p.add_argument("--eval-every", type=int, help="test-set evaluation every N iterations (default: each epoch)")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N iterations (default: each epoch)")
    p.add_argument("--eval-batch", type=int, help="evaluation batch size (default: 500)")
    p.add_argument("--range-threshold", type=float, help="--bits auto: accuracy change that marks bmin "
                   "(fraction, default 0.05)")
    p.add_argument("--range-steps", type=int, help="--bits auto: iterations per precision (default: an epoch "
                   "spread over the precisions, at least 8)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    values = {k: getattr(args, k) for k in _FIELDS if getattr(args, k, None) is not None}
    if "lr_steps" in values:
        try:
            values["lr_steps"] = tuple(float(v) for v in values["lr_steps"].split(","))
        except ValueError:
            raise CptHwError(f"--lr-steps {args.lr_steps!r}: expected fractions such as 0.5,0.75") from None
    return values


def build_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    """TrainConfig from the arguments, or from the checkpoint when resuming (plus the checkpoint)."""
    from ..train import checkpoint
    from ..train.config import RESUME_OVERRIDABLE, TrainConfig

    given = _given(args)
    if args.resume is None:
        if "model" not in given:
            raise CptHwError("--model is required (or --resume a checkpoint)")
        if "epochs" not in given and "iters" not in given:
            raise CptHwError("give --epochs or --iters")
        _check_model(given["model"])
        default_out = "out" not in given
        given.setdefault("out", f"runs/{given['model']}-{given.get('dataset', 'digits')}")
        cfg = TrainConfig(**given)
        return cfg.replace(out=choose_out(cfg.out, default=default_out, overwrite=args.overwrite)), None
    if args.overwrite:
        raise CptHwError("--overwrite: a resumed run continues its own files; it replaces nothing")
    ck = checkpoint.load(args.resume)
    cfg = _checkpoint_config(ck)
    given.setdefault("out", str(Path(args.resume).parent))
    given.setdefault("stop_at", None)  # a stop belongs to one invocation, not to the run
    for key, value in given.items():
        if key not in RESUME_OVERRIDABLE and value != getattr(cfg, key) and value is not None:
            raise CptHwError(f"--{key.replace('_', '-')} {value!r} differs from the checkpoint's "
                             f"{getattr(cfg, key)!r}; a resumed run keeps what it computes")
    cfg = cfg.replace(**{k: v for k, v in given.items() if k in RESUME_OVERRIDABLE})
    _check_resume_out(Path(cfg.out), Path(args.resume).parent)
    _warn_inexact(ck["config"], cfg)
    return cfg, ck


def _check_model(name: str) -> None:
    from ..models import canonical_name
    canonical_name(name)  # an unknown name is one line naming the known ones


def _checkpoint_config(ck: dict[str, Any]) -> Any:
    from ..train.checkpoint import CheckpointError
    from ..train.config import TrainConfig

    try:
        return TrainConfig.from_dict(ck["config"])
    except (CptHwError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {ck['source']}: its config is not a valid run ({e})") from None


def _warn_inexact(saved: dict[str, Any], cfg: Any) -> None:
    """Resuming on another thread count, device or numerics continues, but not bit for bit: say so."""
    integer = ("exact", "accel")  # these compute the same integers: switching between them stays exact
    for key in ("threads", "device", "backend"):
        before, now = saved.get(key), getattr(cfg, key)
        if before == now or (key == "backend" and str(before).split(":")[0] in integer
                              and now.split(":")[0] in integer):
            continue
        _note(f"warning: --{key} {now} differs from the run's {before}: the resumed run will not be bit-exact "
              "with an uninterrupted one")


def _note(line: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, once
        print(f"cpt-hw: {line}", file=sys.stderr)


def _check_folder(out: Path) -> None:
    """--out must be a folder or creatable as one, by this user."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise CptHwError(f"--out {out}: {path} is a file, not a folder")
            if not os.access(path, os.W_OK | os.X_OK):
                raise CptHwError(f"--out {out}: {path} is not writable")
            return


def _held(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (folder / name).exists()]


def choose_out(out: str, *, default: bool, overwrite: bool) -> str:
    """The folder a new run writes to: ``out``, unless it holds a run.  Then: replace it with --overwrite,
    take the first free ``out-2``, ``out-3`` ... when ``out`` is the default, else refuse.  Nothing is written."""
    folder = Path(out)
    _check_folder(folder)
    held = _held(folder)
    if not held or overwrite:
        if held:
            _note(f"--overwrite: replacing the run in {folder}")
        return out
    if not default:
        resume = f"continue it with --resume {folder / 'checkpoint.pt'}, " if held == ["checkpoint.pt"] else ""
        raise CptHwError(f"--out {folder} holds a run ({', '.join(held)}); {resume}give another --out, or "
                         "--overwrite to replace it")
    n = 2
    while _held(Path(f"{out}-{n}")) or Path(f"{out}-{n}").is_file():
        n += 1
    _note(f"{folder} holds a run ({', '.join(held)}); this one goes to {out}-{n}")
    return f"{out}-{n}"


def _check_resume_out(out: Path, own: Path) -> None:
    """A resumed run writes into its own folder, or a folder holding no other run."""
    _check_folder(out)
    if out.resolve() != own.resolve() and _held(out):
        raise CptHwError(f"--out {out} holds another run ({', '.join(_held(out))}); resume into the checkpoint's "
                         f"folder {own} or an empty one")


def run(args: argparse.Namespace) -> int:
    from ..train.trainer import Trainer, format_summary

    cfg, ck = build_config(args)
    trainer = Trainer(cfg, resume=ck)
    summary = trainer.run()
    if trainer.dist.is_main:
        print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
        if not args.json and "plots" in summary:
            print(f"wrote {cfg.out}/: metrics.jsonl, summary.json, checkpoint.pt, "
                  + ", ".join(Path(p).name for p in summary["plots"]))
    if summary.get("signal"):  # stopped by SIGINT/SIGTERM: the shell's convention, 128 + signal number
        import signal
        return 128 + signal.Signals[summary["signal"]].value
    return 0
