"""bench/bench_accuracy.py: parallel runs, a deadline that stops them, and the rerun that finishes them."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

RUNS = ["static 8/8", "CPT 3-8/8"]


def bench(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "bench/bench_accuracy.py", "--dataset", "digits", "--models", "digits_cnn",
           "--iters", "32", "--device", "cpu", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
           "--parallel", "2", "--runs-only", *RUNS, *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_deadline_then_rerun_finishes_and_reuses(tmp_path):
    stopped = bench(tmp_path, "--deadline", "0.5")
    assert stopped.returncode == 3, stopped.stderr
    assert "rerun the same command to continue" in stopped.stdout
    assert not (tmp_path / "out" / "accuracy.json").exists()

    # A run stopped at a checkpoint (as --deadline leaves one after its first epoch) is continued, not restarted.
    static_dir = tmp_path / "runs" / "digits_cnn_static_8_8"
    subprocess.run([sys.executable, "-m", "cpt_hw", "train", "--model", "digits_cnn", "--dataset", "digits",
                    "--iters", "32", "--batch-size", "128", "--device", "cpu", "--seed", "0", "--out", str(static_dir),
                    "--no-progress", "--schedule", "static", "--bits", "8", "--grad-bits", "8", "--stop-at", "11"],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)

    done = bench(tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"--resume {static_dir / 'checkpoint.pt'}" in done.stdout
    rows = json.loads((tmp_path / "out" / "accuracy.json").read_text())["results"]
    assert [r["run"] for r in rows] == RUNS
    assert all(r["iters"] == 32 and 0 <= r["test_acc"] <= 1 for r in rows)
    cpt, static = rows[1], rows[0]
    assert cpt["gbitops"] < static["gbitops"]
    assert "| digits_cnn | CPT 3-8/8 |" in (tmp_path / "out" / "accuracy.md").read_text()
    assert (tmp_path / "out" / "accuracy_gbitops.png").stat().st_size > 0

    again = bench(tmp_path)  # finished runs are reused, not trained again
    assert again.returncode == 0, again.stderr
    assert "cpt_hw train" not in again.stdout


def test_a_run_of_another_length_is_refused(tmp_path):
    assert bench(tmp_path).returncode == 0
    other = subprocess.run([sys.executable, "bench/bench_accuracy.py", "--dataset", "digits", "--models",
                            "digits_cnn", "--iters", "64", "--device", "cpu", "--runs", str(tmp_path / "runs"),
                            "--out", str(tmp_path / "out"), "--runs-only", "static 8/8"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert other.returncode != 0
    assert "holds a run of another length" in other.stderr
