"""bench/twin_iteration.py: the twin's iteration is the model's with its three classes replaced by bench_twin_cycles'
exact counts (with code sums, as the board run's calls write them); the --recompute-bn run's forward class, which
holds recomputed calls besides, scaled by the exact count's ratio without sums, its weight gradients (without sums)
the twin's simulated sum of calls; exact arithmetic on made-up inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def ti(bench_module):
    return bench_module("twin_iteration")


def board(total: dict, by_class: dict) -> dict:
    return {"accel_s_per_iter": total, "accel_s_per_iter_by_class": by_class}


def write_inputs(folder: Path) -> None:
    by_class = {"cpt": {"fwd": 0.25, "dgrad": 0.5, "wgrad": 0.125}, "static": {"fwd": 0.5, "dgrad": 0.5, "wgrad": 0.5}}
    (folder / "board_step-resnet74-conv-twin.json").write_text(json.dumps(board({"cpt": 1.0, "static": 2.0}, by_class)))
    (folder / "board_step-resnet74-conv-recompute1.json").write_text(
        json.dumps(board({"cpt": 1.25, "static": 2.0}, {**by_class, "cpt": {**by_class["cpt"], "fwd": 0.5}})))
    (folder / "conv_twin_wgrad.json").write_text(
        json.dumps({"classes": {"wgrad": {"cpt_twin_calls_s": 0.375, "static_twin_calls_s": 0.75}}}))

    def exact(cpt: tuple[float, float], static: tuple[float, float]) -> dict:
        return {"cpt_s": {"twin_cycles": cpt[0], "model_cycles": cpt[1]},
                "static_s": {"twin_cycles": static[0], "model_cycles": static[1]}, "cpt_complete": True}
    summary = {"fwd_sums": exact((1.0, 0.25), (1.0, 0.5)), "fwd": exact((0.5, 0.25), (0.75, 0.5)),
               "dgrad": exact((0.625, 0.5), (0.75, 0.5)), "wgrad_sums": exact((0.5, 0.125), (1.0, 0.5))}
    (folder / "twin_cycles.json").write_text(json.dumps({"batch": 128, "summary": summary}))


def test_twin_iteration_replaces_each_class(ti, tmp_path):
    write_inputs(tmp_path)
    assert ti.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    runs = json.loads((tmp_path / "out.json").read_text())["runs"]
    plain, recompute = runs["board_step-resnet74-conv-twin"], runs["board_step-resnet74-conv-recompute1"]
    # CPT: rest 1 - 0.875 = 0.125; the exact counts with sums: fwd 1.0, dgrad 0.625, wgrad 0.5
    assert plain["cpt"] == {"model": 1.0, "twin": 0.125 + 1.0 + 0.625 + 0.5, "fwd": 1.0, "dgrad": 0.625,
                            "wgrad": 0.5}
    # static: the exact counts 1.0, 0.75 and 1.0; rest 0.5
    assert plain["static"]["twin"] == 0.5 + 1.0 + 0.75 + 1.0
    # --recompute-bn 1 (no sums): its forward class 0.5 x the ratio without sums 2, the weight gradients without sums
    assert recompute["cpt"]["twin"] == 1.25 - 1.125 + 1.0 + 0.625 + 0.375
    md = (tmp_path / "out.md").read_text()
    assert ("| the twin, `--recompute-bn 1` (calls without code sums) | 2.750 | 2.125 | 0.773 | 37.8 h | "
            "1.000 / 0.625 / 0.375 |") in md


@pytest.mark.parametrize("op, what", [("dgrad", "input gradients"), ("fwd_sums", "forward calls with code sums"),
                                      ("wgrad_sums", "weight gradients with code sums")])
def test_an_exact_count_of_other_calls_is_refused(ti, tmp_path, capsys, op: str, what: str):
    """An exact count replaces a class only where its design-model seconds are the board run's."""
    write_inputs(tmp_path)
    run = json.loads((tmp_path / "twin_cycles.json").read_text())
    run["summary"][op]["cpt_s"]["model_cycles"] *= 1.02
    (tmp_path / "twin_cycles.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit) as e:
        ti.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{what} (" in err and "are not the board run's" in err
    assert not (tmp_path / "out.json").exists()


def test_an_exact_count_without_the_forward_sums_is_refused(ti, tmp_path, capsys):
    write_inputs(tmp_path)
    run = json.loads((tmp_path / "twin_cycles.json").read_text())
    del run["summary"]["fwd_sums"]
    (tmp_path / "twin_cycles.json").write_text(json.dumps(run))
    with pytest.raises(SystemExit) as e:
        ti.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "fwd_sums, fwd, dgrad, wgrad_sums" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_a_wgrad_run_with_sums_is_refused_for_the_calls_without(ti, tmp_path, capsys):
    write_inputs(tmp_path)
    (tmp_path / "conv_twin_wgrad.json").write_text(
        json.dumps({"sums": True, "classes": {"wgrad": {"cpt_twin_calls_s": 0.5, "static_twin_calls_s": 1.0}}}))
    with pytest.raises(SystemExit) as e:
        ti.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "without SUMS" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_missing_input_is_one_line(ti, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ti.main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "cannot read" in err
    assert not (tmp_path / "out.json").exists()
