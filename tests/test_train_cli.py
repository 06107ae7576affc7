"""`cpt-hw train` given bad input, a folder holding a run, a bad checkpoint or a signal: one line, exit 2 (or the
signal's code), and nothing written or lost."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from cpt_hw.cli import main
from cpt_hw.cli.train_cmd import MODEL_NAMES
from cpt_hw.schedules import short_cycle_warning
from cpt_hw.train import checkpoint
from cpt_hw.schedules import MAX_BITS
from cpt_hw.train.trainer import Trainer

BASE = ["train", "--model", "digits_cnn", "--batch-size", "32", "--cycles", "1", "--no-progress", "--threads", "1"]


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("cpt-hw: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 6-iteration run (its checkpoint is at the end)."""
    run = tmp_path_factory.mktemp("finished")
    assert main(BASE + ["--iters", "6", "--out", str(run), "--checkpoint-every", "2"]) == 0
    return run


def _copy_checkpoint(finished, tmp_path, edit) -> str:
    ck = torch.load(finished / "checkpoint.pt", weights_only=True)
    edit(ck)
    path = tmp_path / "edited" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save(ck, path)
    return str(path)


# ---------------------------------------------------------------- --out and arguments: nothing touched
@pytest.mark.parametrize("extra, fragments", [
    (["--grad-bits", "20"], ["--grad-bits '20': at most 16 bits"]),
    (["--bits", "3-20"], ["--bits '3-20': at most 16 bits"]),
    (["--iters", "99999999999999999999"], ["--iters 99999999999999999999: at most 1,000,000,000"]),
    (["--lr", "nan"], ["--lr nan: must be a finite number > 0"]),
    (["--lr", "inf"], ["--lr inf: must be a finite number > 0"]),
    (["--weight-decay", "nan"], ["--weight-decay nan"]),
    (["--stop-at", "0"], ["--stop-at 0: must be a positive integer"]),
    (["--threads", "100000"], ["--threads 100000: at most 1024"]),
    (["--model", "resnet75"], ["model 'resnet75': unknown (known: resnet20"]),
    ([], ["holds a run (summary.json, checkpoint.pt); give another --out, or --overwrite to replace it"]),
])
def test_a_refused_run_leaves_the_previous_run_in_out_untouched(finished, capsys, extra, fragments):
    before = _snapshot(finished)
    assert main(BASE + ["--iters", "4", "--out", str(finished), *extra]) == 2
    _one_line_error(capsys, *fragments)
    assert _snapshot(finished) == before


def test_out_holding_an_unfinished_run_points_to_resume(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert main(BASE + ["--iters", "2", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, f"holds a run (checkpoint.pt); continue it with --resume {tmp_path / 'checkpoint.pt'}, ")
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"x"


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(BASE + ["--iters", "2", "--out", str(tmp_path / "f")]) == 2
    _one_line_error(capsys, "is a file, not a folder")
    assert main(BASE + ["--iters", "2", "--out", str(tmp_path / "f" / "run")]) == 2
    _one_line_error(capsys, f"{tmp_path / 'f'} is a file, not a folder")
    assert (tmp_path / "f").read_text() == "x"


def test_the_default_folder_holding_a_run_moves_the_new_run_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "runs" / "digits_cnn-digits"
    old.mkdir(parents=True)
    (old / "summary.json").write_text("{}\n")
    assert main(BASE + ["--iters", "2"]) == 0
    err = capsys.readouterr().err
    assert "runs/digits_cnn-digits holds a run (summary.json); this one goes to runs/digits_cnn-digits-2" in err
    assert (old / "summary.json").read_text() == "{}\n" and sorted(p.name for p in old.iterdir()) == ["summary.json"]
    assert (tmp_path / "runs" / "digits_cnn-digits-2" / "summary.json").is_file()


# ---------------------------------------------------------------- CPT cycles shorter than the precisions
def test_short_cpt_cycles_are_warned_about_on_stderr_and_in_the_summary(tmp_path, capsys):
    assert short_cycle_warning("cpt", (3, 8), (8, 8), 60, 32) == (
        "--cycles 32 over 60 iterations: cycles of 1 iteration(s) cannot step through the 6 precisions of --bits "
        "3-8 / --grad-bits 8-8, so most steps run at the low end; use --cycles 10 or fewer")
    assert short_cycle_warning("cpt", (3, 8), (8, 8), 60, 10) is None  # 6 iterations a cycle: enough
    assert short_cycle_warning("static", (3, 8), (8, 8), 60, 32) is None
    assert short_cycle_warning("cpt", (8, 8), (4, 8), 4, 1).endswith("use at least 5 iterations")
    assert main(BASE + ["--iters", "3", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "cpt-hw: warning: --cycles 1 over 3 iterations: cycles of 3 iteration(s)" in captured.err
    assert "warning: --cycles 1 over 3 iterations" in captured.out  # repeated under the end-of-run summary


# ---------------------------------------------------------------- --resume of a bad or finished checkpoint
@pytest.mark.parametrize("edit, fragments", [
    (lambda ck: ck.pop("optimizer"), ["has no 'optimizer'"]),
    (lambda ck: ck.update(model={f"layer{i}.weight": torch.zeros(3) for i in range(300)}),
     ["model state does not fit this model", "a checkpoint of another model?"]),
    (lambda ck: ck["model"].update({"fc.weight": torch.zeros(3, 3)}), ["'fc.weight' has shape [3, 3], the model's is"]),
    (lambda ck: ck["model"]["fc.weight"].fill_(float("nan")), ["'fc.weight' holds NaN or infinite values"]),
    (lambda ck: next(v for k, v in ck["model"].items() if k.endswith("running_var")).fill_(float("inf")),
     ["running_var' holds NaN or infinite values"]),
    (lambda ck: ck.update(config={"bits": "3-8"}), ["its config is not a valid run"]),
    (lambda ck: ck.update(step=10**6), ["iteration 1000000 is outside the run's 0..6"]),
])
def test_resuming_a_bad_checkpoint_is_one_line(finished, tmp_path, capsys, edit, fragments):
    path = _copy_checkpoint(finished, tmp_path, edit)
    assert main(["train", "--resume", path, "--no-progress"]) == 2
    _one_line_error(capsys, f"checkpoint {path}: ", *fragments)
    assert sorted(p.name for p in (tmp_path / "edited").iterdir()) == ["checkpoint.pt"]  # nothing written


def test_resuming_a_folder_is_one_line(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    _one_line_error(capsys, f"checkpoint {tmp_path}: a folder, not a file")


def test_resuming_a_finished_run_appends_nothing(finished, capsys):
    before = _snapshot(finished)
    assert main(["train", "--resume", str(finished / "checkpoint.pt"), "--no-progress"]) == 2
    _one_line_error(capsys, "the run finished (iteration 6 of 6)", "nothing to resume")
    assert _snapshot(finished) == before


def test_resume_options_that_break_exactness_or_replace_a_run(finished, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(BASE + ["--iters", "6", "--out", str(run), "--stop-at", "2"]) == 0
    capsys.readouterr()
    ck = str(run / "checkpoint.pt")
    assert main(["train", "--resume", ck, "--overwrite"]) == 2
    _one_line_error(capsys, "--overwrite: a resumed run continues its own files")
    assert main(["train", "--resume", ck, "--out", str(finished)]) == 2
    _one_line_error(capsys, f"--out {finished} holds another run")
    assert main(["train", "--resume", ck, "--threads", "2", "--stop-at", "2", "--no-progress"]) == 0
    assert ("cpt-hw: warning: --threads 2 differs from the run's 1: the resumed run will not be bit-exact"
            in capsys.readouterr().err)
    assert checkpoint.load(ck)["step"] == 2


# ---------------------------------------------------------------- diverging runs keep a finite checkpoint
def test_the_last_good_checkpoint_is_finite_in_parameters_buffers_and_momentum(tmp_path, capsys):
    assert main(BASE + ["--iters", "8", "--lr", "1e6", "--checkpoint-every", "1", "--out", str(tmp_path)]) == 2
    err = _one_line_error(capsys, "stopped. last good checkpoint")  # on this machine: running_var at iteration 3
    ck = checkpoint.load(tmp_path / "checkpoint.pt")
    assert checkpoint.non_finite(ck["model"]) is None and checkpoint.non_finite(ck["optimizer"]) is None
    assert f"(iteration {ck['step']})" in err


def test_an_infinite_buffer_stops_the_run_before_it_reaches_a_checkpoint(tmp_path, monkeypatch, capsys):
    original = Trainer._train_step

    def overflowing(self, t):
        stats = original(self, t)
        if t == 3:  # what --lr 1e6 does first: BatchNorm's running variance overflows, the loss is still finite
            next(b for name, b in self.model.named_buffers() if name.endswith("running_var")).fill_(float("inf"))
        return stats

    monkeypatch.setattr(Trainer, "_train_step", overflowing)
    assert main(BASE + ["--iters", "8", "--checkpoint-every", "1", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "running_var' is not finite after iteration 4; stopped. last good checkpoint: "
                    f"{tmp_path / 'checkpoint.pt'} (iteration 3)")
    ck = checkpoint.load(tmp_path / "checkpoint.pt")
    assert ck["step"] == 3 and checkpoint.non_finite(ck["model"]) is None


def test_non_finite_names_the_first_bad_tensor():
    state = {"a": torch.ones(2), "b": {"c": [torch.ones(1), torch.tensor([1.0, float("inf")])]},
             "n": torch.tensor([3])}
    assert checkpoint.non_finite(state) == "b.c.1"
    assert checkpoint.non_finite({"a": torch.ones(2), "n": torch.tensor([3])}) is None


# ---------------------------------------------------------------- SIGINT / SIGTERM
@pytest.mark.parametrize("signum, fast", [(signal.SIGINT, "off"), (signal.SIGTERM, "off"), (signal.SIGINT, "on")])
def test_a_signal_checkpoints_the_current_iteration_and_resumes_bit_for_bit(tmp_path, monkeypatch, capsys, signum,
                                                                            fast):
    args = BASE + ["--iters", "8", "--log-every", "2", "--eval-every", "4", "--fast", fast]
    # what the run must give back (not always default_int_handler: a shell's background job starts with SIG_IGN)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    original = Trainer._train_step

    def signalled(self, t):
        if t == 2:  # the signal arrives during iteration 2: it completes, then the run stops
            os.kill(os.getpid(), signum)
        return original(self, t)

    monkeypatch.setattr(Trainer, "_train_step", signalled)
    run = tmp_path / "stopped"
    assert main(args + ["--out", str(run)]) == 128 + signum
    out = capsys.readouterr().out
    name = signal.Signals(signum).name
    assert f"stopped after iteration 3 of 8 ({name}); checkpoint written; continue with: cpt-hw train --resume " \
           f"{run / 'checkpoint.pt'}" in out
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 3
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the handlers are given back
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert main(["train", "--resume", str(run / "checkpoint.pt"), "--no-progress"]) == 0
    a, b = (checkpoint.load(tmp_path / d / "checkpoint.pt") for d in ("straight", "stopped"))
    assert a["step"] == b["step"] == 8 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    records = [[{k: v for k, v in json.loads(line).items() if k != "wall_s"}
                for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("straight", "stopped")]
    if fast == "off":
        assert records[0] == records[1]
    else:  # the fast path sums a log window's losses in float32 on the device: a stop inside it rounds differently
        assert len(records[0]) == len(records[1])
        for a_rec, b_rec in zip(*records):
            assert a_rec.keys() == b_rec.keys()
            assert all(a_rec[k] == pytest.approx(b_rec[k], rel=1e-6) if isinstance(a_rec[k], float) else
                       a_rec[k] == b_rec[k] for k in a_rec)


# ---------------------------------------------------------------- --help
def test_help_shows_how_model_is_required_and_the_model_names(capsys):
    from cpt_hw.models import MODELS
    from cpt_hw.nn.context import MAX_BITS as QUANTIZER_MAX_BITS

    assert MODEL_NAMES == MODELS and MAX_BITS == QUANTIZER_MAX_BITS  # the torch-free copies stay true
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: cpt-hw train (--model NAME (--iters N | --epochs N) | --resume CHECKPOINT)" in out
    assert f"model to train: {', '.join(MODELS)} (required unless --resume)" in out
