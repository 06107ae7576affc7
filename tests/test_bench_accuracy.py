"""bench/bench_accuracy.py: parallel runs, a deadline that stops them, and the rerun that finishes them."""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import subprocess
import sys
import time

from conftest import ROOT

RUNS = ["static 8/8", "CPT 3-8/8"]


def load_bench_accuracy():
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "bench" / "bench_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(tmp_path, *extra: str, iters: int = 32, runs: list[str] = RUNS) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "bench/bench_accuracy.py", "--dataset", "digits", "--models", "digits_cnn",
           "--iters", str(iters), "--device", "cpu", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
           "--parallel", "2", "--runs-only", *runs, *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_deadline_stops_the_runs(tmp_path):
    """Runs far longer than the deadline are stopped (at the first poll, 2 s in), and no table is written."""
    stopped = bench(tmp_path, "--deadline", "0.5", iters=1_000_000)
    assert stopped.returncode == 3, stopped.stderr
    assert "rerun the same command to continue" in stopped.stdout
    assert not (tmp_path / "out" / "accuracy.json").exists()


def test_runs_that_end_before_the_deadline_check_count_as_finished(monkeypatch):
    """The deadline is checked at each poll; runs that all ended by then are finished, not stopped."""
    bench_accuracy = load_bench_accuracy()
    monkeypatch.setattr(bench_accuracy, "train_command", lambda model, label, args: [sys.executable, "-c", "pass"])
    args = argparse.Namespace(parallel=2, deadline=0.5)
    assert bench_accuracy.run_all([("m", label) for label in RUNS], args) is True


def test_a_training_that_ignores_the_interrupt_is_killed(monkeypatch):
    """The deadline stops every run even if one does not react to its signal (it is killed after the grace)."""
    bench_accuracy = load_bench_accuracy()
    deaf = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    monkeypatch.setattr(bench_accuracy, "train_command", lambda model, label, args: deaf)
    monkeypatch.setattr(bench_accuracy, "STOP_GRACE_S", 1.0)
    start = time.monotonic()
    assert bench_accuracy.run_all([("m", label) for label in RUNS], argparse.Namespace(parallel=2, deadline=0.5)) \
        is False
    assert time.monotonic() - start < 30


def test_a_training_still_starting_with_sigint_ignored_is_stopped_at_once(monkeypatch):
    """A shell without job control (nohup, `cmd &` in a script, CI) starts background commands with SIGINT ignored
    and the trainings inherit that: the deadline's signal must still stop one that has not reached its loop.
    Stopped at the first poll (2 s) here; with SIGINT it waited out the whole grace (30 s) and was killed."""
    bench_accuracy = load_bench_accuracy()
    starting = [sys.executable, "-c", "import time; time.sleep(60)"]   # a training importing torch, say
    monkeypatch.setattr(bench_accuracy, "train_command", lambda model, label, args: starting)
    monkeypatch.setattr(bench_accuracy, "STOP_GRACE_S", 30.0)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)            # what the children inherit
    try:
        start = time.monotonic()
        assert bench_accuracy.run_all([("m", label) for label in RUNS], argparse.Namespace(parallel=2, deadline=0.5)) \
            is False
        elapsed = time.monotonic() - start
    finally:
        signal.signal(signal.SIGINT, previous)
    assert elapsed < 20, elapsed   # ~2-3 s; the grace would make it >= 32 s


def test_stopped_run_is_continued_then_reused(tmp_path):
    # A run stopped at a checkpoint (as --deadline leaves one after its first epoch) is continued, not restarted.
    static_dir = tmp_path / "runs" / "digits_cnn_static_8_8"
    recipe = argparse.Namespace(runs=str(tmp_path / "runs"), iters=32, data=None, dataset="digits", device="cpu",
                                seed=0)
    start = load_bench_accuracy().train_command("digits_cnn", "static 8/8", recipe)  # the bench's own command
    assert str(static_dir) in start
    subprocess.run([*start, "--stop-at", "11"], cwd=ROOT, check=True, capture_output=True, timeout=600)

    done = bench(tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"--resume {static_dir / 'checkpoint.pt'}" in done.stdout, done.stdout
    rows = json.loads((tmp_path / "out" / "accuracy.json").read_text())["results"]
    assert [r["run"] for r in rows] == RUNS
    assert all(r["iters"] == 32 and 0 <= r["test_acc"] <= 1 for r in rows)
    cpt, static = rows[1], rows[0]
    assert cpt["gbitops"] < static["gbitops"]
    assert "| digits_cnn | CPT 3-8/8 |" in (tmp_path / "out" / "accuracy.md").read_text()
    assert (tmp_path / "out" / "accuracy_gbitops.png").stat().st_size > 0
    assert (tmp_path / "out" / "accuracy_curves.png").stat().st_size > 0
    assert "- digits_cnn: CPT 3-8/8 vs static 8/8: " in (tmp_path / "out" / "accuracy.md").read_text()

    again = bench(tmp_path)  # finished runs are reused, not trained again
    assert again.returncode == 0, again.stderr
    assert "cpt_hw train" not in again.stdout


def test_a_run_of_another_length_or_seed_is_refused(tmp_path):
    assert bench(tmp_path, runs=["static 8/8"]).returncode == 0
    other = bench(tmp_path, iters=64, runs=["static 8/8"])
    assert other.returncode != 0
    assert "holds a run of another length" in other.stderr
    other = bench(tmp_path, "--seed", "1", runs=["static 8/8"])   # finished: its summary says seed 0
    assert other.returncode != 0
    assert "holds a run of another seed (0, not 1)" in other.stderr
    # interrupted: its checkpoint says seed 0
    recipe = argparse.Namespace(runs=str(tmp_path / "runs"), iters=32, data=None, dataset="digits", device="cpu",
                                seed=0)
    start = load_bench_accuracy().train_command("digits_cnn", "CPT 3-8/8", recipe)
    subprocess.run([*start, "--stop-at", "11"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    other = bench(tmp_path, "--seed", "1", runs=["CPT 3-8/8"])
    assert other.returncode != 0
    assert "holds a run of another seed (0, not 1)" in other.stderr and "cpt_hw train" not in other.stdout


def test_targets_say_met_or_missed():
    targets = load_bench_accuracy().targets

    def rows(static_acc, cpt_acc, hw_acc, cpt_gbitops):
        return [{"model": "m", "run": "static 8/8", "test_acc": static_acc, "gbitops": 100.0},
                {"model": "m", "run": "CPT 3-8/8", "test_acc": cpt_acc, "gbitops": cpt_gbitops},
                {"model": "m", "run": "CPT 3-8/8 (hardware numerics)", "test_acc": hw_acc, "gbitops": cpt_gbitops}]

    cpt_line, hw_line = targets(rows(0.9000, 0.8975, 0.8950, 63.3))
    assert "-0.25 points at 63.3 %" in cpt_line and cpt_line.endswith(": met")
    assert "-0.25 points" in hw_line and hw_line.endswith(": met")
    cpt_line, hw_line = targets(rows(0.9000, 0.8960, 0.8995, 63.3))   # CPT 0.4 points behind static
    assert cpt_line.endswith(": missed") and hw_line.endswith(": missed")
    cpt_line, _ = targets(rows(0.9000, 0.9100, 0.9100, 64.0))        # better, but too expensive
    assert cpt_line.endswith(": missed")
