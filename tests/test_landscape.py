"""cpt-hw landscape: filter-normalised directions, the grid restores the model, the CLI writes its plot."""

import json

import pytest
import torch

from cpt_hw.landscape import compute_landscape, filter_normalised_direction


def test_filter_normalisation_and_zero_bn_directions():
    conv = torch.randn(8, 3, 3, 3) * 5
    bias = torch.randn(8)
    d_conv, d_bias = filter_normalised_direction([conv, bias], torch.Generator().manual_seed(0))
    torch.testing.assert_close(d_conv.reshape(8, -1).norm(dim=1), conv.reshape(8, -1).norm(dim=1))
    assert torch.count_nonzero(d_bias) == 0


def test_grid_restores_the_model_and_centre_is_the_model_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x, y = torch.randn(16, 3, 2, 2), torch.randint(0, 4, (16,))
    before = [p.clone() for p in model.parameters()]
    ls = compute_landscape(model, [(x, y)], steps=3, span=0.5, progress=False)
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)
    centre = torch.nn.functional.cross_entropy(model(x), y).item()
    assert ls.loss.shape == (3, 3) and ls.loss[1, 1] == pytest.approx(centre, rel=1e-6)
    assert ls.loss.max() > ls.loss[1, 1]


def test_cli_end_to_end(cli, tmp_path):
    r = cli("train", "--model", "digits_cnn", "--iters", "8", "--cycles", "2", "--batch-size", "32", "--out", str(tmp_path / "run"),
            "--no-progress")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "ls"
    r = cli("landscape", str(tmp_path / "run/checkpoint.pt"), "--steps", "3", "--samples", "64", "--out", str(out),
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (out / "landscape.png").stat().st_size > 1000
    data = json.loads((out / "landscape_0.json").read_text())
    assert len(data["loss"]) == 3 and data["fw_bits"] >= 1
    assert data["label"] == "digits_cnn cpt 3-8/8"


def test_cli_bad_input(cli, tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    r = cli("landscape", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "corrupt or unreadable" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("landscape", str(tmp_path / "missing.pt"))
    assert r.returncode == 2 and "not found" in r.stderr
    for steps in ("4", "1"):
        r = cli("landscape", str(bad), "--steps", steps)
        assert r.returncode == 2 and f"--steps {steps}: need an odd number" in r.stderr
