"""`cpt-hw train`: outputs, bit-exact resume, backends, DDP under torchrun, NaN handling, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cpt_hw.cli import main
from cpt_hw.schedules import CyclicPrecision, PrecisionSchedule
from cpt_hw.train import bitops, checkpoint
from cpt_hw.train.config import TrainConfig
from cpt_hw.train.trainer import Trainer, TrainingDiverged

ROOT = Path(__file__).resolve().parent.parent
BASE = ["train", "--model", "digits_cnn", "--batch-size", "32", "--cycles", "4", "--no-progress", "--threads", "1"]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_training_writes_metrics_summary_plots_and_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(BASE + ["--iters", "24", "--out", str(run), "--eval-every", "8", "--log-every", "4"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "saving" in out and "accelerator time" not in out
    records = _records(run)
    train = [r for r in records if r["kind"] == "train"]
    assert [r["iter"] for r in train] == [4, 8, 12, 16, 20, 24]
    sched = CyclicPrecision(3, 8, 4, 24)
    assert all(r["fw_bits"] == sched(r["iter"] - 1) and r["bw_bits"] == 8 for r in train)
    assert [r["iter"] for r in records if r["kind"] == "eval"] == [8, 16, 24]
    # iterations 0..11 at 0.1, 12..17 at 0.01, 18..23 at 0.001; a record carries the lr of its last iteration
    assert [r["lr"] for r in train] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.001, 0.001])
    summary = json.loads((run / "summary.json").read_text())
    expected = bitops.schedule_bitops(summary["macs_per_sample"], 32,
                                      PrecisionSchedule.build("cpt", (3, 8), (8, 8), 24, 4), 24) / 1e9
    assert summary["gbitops"] == pytest.approx(expected, rel=1e-12)
    assert summary["static_gbitops"] == pytest.approx(summary["macs_per_sample"] * 32 * 24 * 192 / 1e9)
    assert 0 < summary["gbitops_saving"] < 1 and summary["test_acc"] == records[-2]["test_acc"]
    for png in ("bits_accuracy.png", "accuracy_gbitops.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 24


def test_resume_continues_bit_for_bit(tmp_path, capsys):
    args = BASE + ["--iters", "12", "--checkpoint-every", "5", "--eval-every", "5", "--log-every", "3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(args + ["--out", str(straight)]) == 0
    assert main(args + ["--out", str(split), "--stop-at", "6"]) == 0
    assert "stopped after iteration 6 of 12" in capsys.readouterr().out
    assert checkpoint.load(split / "checkpoint.pt")["step"] == 6
    assert main(["train", "--resume", str(split / "checkpoint.pt"), "--no-progress"]) == 0
    a, b = checkpoint.load(straight / "checkpoint.pt"), checkpoint.load(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 12 and a["bitops"] == b["bitops"]
    assert _same_state(a["model"], b["model"])
    assert all(_same_state(x, y) for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()))
    drop_wall = [{k: v for k, v in r.items() if k != "wall_s"} for r in _records(straight)]
    assert drop_wall == [{k: v for k, v in r.items() if k != "wall_s"} for r in _records(split)]


def test_exact_and_accel_emu_train_identically(tmp_path):
    """The verification pyramid's top: a training run on the emulated accelerator equals the exact one."""
    runs = {}
    for backend in ("exact", "accel:emu"):
        assert main(BASE + ["--iters", "3", "--cycles", "1", "--backend", backend,
                            "--out", str(tmp_path / backend)]) == 0
        runs[backend] = checkpoint.load(tmp_path / backend / "checkpoint.pt")
    assert _same_state(runs["exact"]["model"], runs["accel:emu"]["model"])
    summary = json.loads((tmp_path / "accel:emu" / "summary.json").read_text())
    assert summary["accel_cycles"] > 0 and summary["accel_cycles"] == runs["accel:emu"]["cycles"]
    assert summary["accel_time_s"] == pytest.approx(summary["accel_cycles"] / (summary["accel_clock_mhz"] * 1e6))


def test_recomputed_batchnorm_inputs_train_identically(tmp_path):
    """--recompute-bn all: the same run, bit for bit, on the emulated accelerator (only more forward GEMMs)."""
    runs = {}
    for recompute in ("none", "all"):
        assert main(BASE + ["--iters", "3", "--cycles", "1", "--backend", "accel:emu", "--recompute-bn", recompute,
                            "--out", str(tmp_path / recompute)]) == 0
        runs[recompute] = checkpoint.load(tmp_path / recompute / "checkpoint.pt")
    assert _same_state(runs["none"]["model"], runs["all"]["model"])
    assert runs["all"]["cycles"] > runs["none"]["cycles"]


def test_half_batchnorm_inputs_are_part_of_the_run(tmp_path, capsys):
    """--bn-saved float16: a run of its own (the summary says so; exact and accel:emu still agree bit for bit),
    fixed on --resume."""
    runs = {}
    for backend in ("exact", "accel:emu"):
        out = tmp_path / backend.replace(":", "-")
        assert main(BASE + ["--iters", "2", "--cycles", "1", "--backend", backend, "--bn-saved", "float16",
                            "--out", str(out), "--checkpoint-every", "1", "--stop-at", "1"]) == 0
        assert main(["train", "--resume", str(out / "checkpoint.pt"), "--no-progress", "--threads", "1"]) == 0
        runs[backend] = checkpoint.load(out / "checkpoint.pt")
        assert json.loads((out / "summary.json").read_text())["bn_saved"] == "float16"
    assert _same_state(runs["exact"]["model"], runs["accel:emu"]["model"])
    out = tmp_path / "exact"
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "checkpoint.pt"), "--bn-saved", "float32", "--no-progress"]) == 2
    assert "--bn-saved" in capsys.readouterr().err


def test_recompute_bn_stages_need_a_cifar_resnet(tmp_path, capsys):
    assert main(BASE + ["--iters", "1", "--recompute-bn", "1", "--backend", "exact", "--out", str(tmp_path / "r")]) == 2
    assert "stages apply to the CIFAR ResNets" in capsys.readouterr().err
    assert main(BASE + ["--iters", "1", "--recompute-bn", "x", "--out", str(tmp_path / "s")]) == 2
    assert "--recompute-bn 'x'" in capsys.readouterr().err
    assert main(BASE + ["--iters", "1", "--recompute-bn", "all", "--out", str(tmp_path / "t")]) == 2
    assert "only the integer backends" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in ("r", "s", "t"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = TrainConfig(model="digits_cnn", iters=10, batch_size=32, cycles=2, checkpoint_every=2, threads=1,
                      progress=False, out=str(tmp_path))
    trainer = Trainer(cfg)
    original = type(trainer)._train_step

    def poisoned(self, t):
        if t == 5:  # a NaN input batch: the loss of step 5 is NaN
            real_get = self.batches.get
            self.batches.get = lambda step: (real_get(step)[0] * float("nan"), real_get(step)[1])
        return original(self, t)

    monkeypatch.setattr(Trainer, "_train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at iteration 5.*iteration 4\)"):
        trainer.run()
    ck = checkpoint.load(tmp_path / "checkpoint.pt")
    assert ck["step"] == 4 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_diverging_lr_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(BASE + ["--iters", "6", "--cycles", "1", "--lr", "1e30", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpt-hw: error: ") and "stopped" in err and err.count("\n") == 1


@pytest.mark.parametrize("extra, msg", [
    (["--model", "resnet75"], "model 'resnet75'"),
    (["--backend", "gpu"], "backend 'gpu'"),
    (["--backend", "accel:emu", "--bits", "3-9"], "--bits 3-9: the zc706 accelerator runs 1..8 bits"),
    (["--backend", "accel:emu", "--bits", "0"], "--bits 0-0: the zc706 accelerator runs 1..8 bits"),
    (["--backend", "accel:emu", "--grad-bits", "12"], "--grad-bits 12-12"),
    (["--dataset", "cifar10", "--data", "/nonexistent/cifar.tar.gz"], "not found"),
    (["--bits", "8-3"], "--bits '8-3'"),
    (["--device", "tpu"], "--device 'tpu'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, msg):
    args = BASE + ["--iters", "4", "--out", str(tmp_path)] + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_unknown_dataset_and_corrupt_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(BASE + ["--iters", "4", "--dataset", "mnist"])
    assert e.value.code == 2
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert main(["train", "--resume", str(bad)]) == 2
    assert "checkpoint" in capsys.readouterr().err
    torch.save({"x": 1}, bad)
    assert main(["train", "--resume", str(bad)]) == 2
    assert "not a cpt-hw training checkpoint" in capsys.readouterr().err


def test_resume_refuses_a_changed_schedule(tmp_path, capsys):
    assert main(BASE + ["--iters", "4", "--out", str(tmp_path), "--stop-at", "2"]) == 0
    assert main(["train", "--resume", str(tmp_path / "checkpoint.pt"), "--bits", "4-8"]) == 2
    assert "--bits '4-8' differs from the checkpoint's '3-8'" in capsys.readouterr().err
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "checkpoint.pt").read_bytes()[:-200])  # an interrupted copy
    assert main(["train", "--resume", str(cut)]) == 2
    err = capsys.readouterr().err
    assert "corrupt or unreadable" in err and err.count("\n") == 1


def test_ddp_two_gloo_processes_under_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cpt_hw",
           *BASE[:-2], "--iters", "8", "--log-every", "2", "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("test accuracy") == 1  # rank 0 reports
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["iters"] == 8
    # the global batch is split over the ranks: the cost is that of one process at batch 32
    expected = bitops.schedule_bitops(summary["macs_per_sample"], 32,
                                      PrecisionSchedule.build("cpt", (3, 8), (8, 8), 8, 4), 8) / 1e9
    assert summary["gbitops"] == pytest.approx(expected, rel=1e-12)
    ck = checkpoint.load(tmp_path / "ddp" / "checkpoint.pt")
    assert ck["step"] == 8 and all(torch.isfinite(v).all() for v in ck["model"].values())
    assert [r["iter"] for r in _records(tmp_path / "ddp") if r["kind"] == "train"] == [2, 4, 6, 8]


@pytest.mark.parametrize("schedule, extra, expected", [
    ("progressive", [], lambda t: 3 + min(t * 6 // 6, 5)),
    ("custom", ["--shape", "1,0"], lambda t: round(3 + 5 * (1 - (t % 6) / 6))),  # a falling ramp, T = 6
    ("static", ["--grad-bits", "6"], lambda t: 8),
])
def test_other_schedules_drive_the_precision(tmp_path, schedule, extra, expected):
    assert main(BASE + ["--cycles", "2", "--iters", "12", "--log-every", "1", "--schedule", schedule,
                        "--out", str(tmp_path), *extra]) == 0
    train = [r for r in _records(tmp_path) if r["kind"] == "train"]
    assert [r["fw_bits"] for r in train] == [expected(r["iter"] - 1) for r in train]
    assert {r["bw_bits"] for r in train} == ({6} if schedule == "static" else {8})


def test_a_new_run_removes_the_folders_old_summary(tmp_path):
    """summary.json marks a finished run (bench_accuracy relies on it): a new, unfinished run in the folder
    must not leave the previous run's summary behind (replacing a run takes --overwrite)."""
    (tmp_path / "summary.json").write_text('{"iters": 4}\n')
    assert main(BASE + ["--iters", "4", "--out", str(tmp_path), "--stop-at", "2", "--overwrite"]) == 0
    assert not (tmp_path / "summary.json").exists()
