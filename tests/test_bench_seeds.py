"""bench/bench_seeds.py: paired CPT - static differences over seeds, from bench_accuracy.py's JSON."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_seeds", Path(__file__).parent.parent / "bench/bench_seeds.py")
bench_seeds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_seeds)


def _accuracy(static: float, cpt: float) -> dict:
    return {"command": "python bench/bench_accuracy.py ...", "results": [
        {"model": "resnet74", "run": "static 8/8", "test_acc": static},
        {"model": "resnet74", "run": "CPT 3-8/8", "test_acc": cpt},
        {"model": "resnet38", "run": "CPT 3-8/8", "test_acc": 0.5}]}


def test_paired_differences_mean_and_sample_sd(tmp_path):
    paths = []
    for seed, (s, c) in enumerate([(0.8920, 0.9034), (0.8913, 0.8996), (0.8981, 0.9039)]):
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps(_accuracy(s, c)))
    out = tmp_path / "summary"
    assert bench_seeds.main(["--model", "resnet74", *sum((["--seed", f"{i}={p}"] for i, p in enumerate(paths)), []),
                             "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    diffs = [r["difference"] for r in res["seeds"]]
    assert diffs == pytest.approx([1.14, 0.83, 0.58], abs=1e-9)
    assert res["difference"]["mean"] == pytest.approx(2.55 / 3, abs=1e-9)
    m = 2.55 / 3
    assert res["difference"]["sd"] == pytest.approx(math.sqrt(sum((d - m) ** 2 for d in diffs) / 2), abs=1e-12)
    assert "+0.85 ± 0.28" in out.with_suffix(".md").read_text()


def test_a_seed_without_both_runs_is_one_clear_error(tmp_path, capsys):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"results": [{"model": "resnet74", "run": "static 8/8", "test_acc": 0.9}]}))
    with pytest.raises(SystemExit) as exc:
        bench_seeds.main(["--model", "resnet74", "--seed", f"3={p}", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "seed 3: no resnet74 run CPT 3-8/8" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
