"""cpt-hw landscape: filter-normalised directions, the grid restores the model, the CLI writes its plot."""

import json

import pytest
import torch

from cpt_hw.train.landscape import compute_landscape, filter_normalised_direction


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


def test_cli_bad_input(tmp_path, capsys):
    from cpt_hw.cli import main

    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    for args, msg in [([str(bad), "--out", str(tmp_path / "o")], "corrupt or unreadable"),
                      ([str(tmp_path / "missing.pt")], "not found"),
                      ([str(bad), "--steps", "4"], "--steps 4: need an odd number"),
                      ([str(bad), "--steps", "1"], "--steps 1: need an odd number")]:
        assert main(["landscape", *args]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits_cnn checkpoint (8 iterations) and a copy whose first conv weight holds a NaN."""
    from cpt_hw.cli import main
    from cpt_hw.train import checkpoint

    root = tmp_path_factory.mktemp("landscape")
    assert main(["train", "--model", "digits_cnn", "--iters", "8", "--cycles", "2", "--batch-size", "32",
                 "--threads", "1", "--out", str(root / "run"), "--no-progress", "--json"]) == 0
    good = root / "run" / "checkpoint.pt"
    ck = checkpoint.load(good)
    name = next(k for k, v in ck["model"].items() if v.is_floating_point() and v.dim() == 4)
    ck["model"][name].view(-1)[0] = float("nan")
    payload = {k: v for k, v in ck.items() if k not in ("format", "version", "source")}
    checkpoint.save(root / "nan.pt", payload)
    return good, root / "nan.pt", name


def test_bad_landscape_input_is_one_line_and_writes_nothing(trained, tmp_path, capsys):
    from cpt_hw.cli import main

    good, nan, name = trained
    (tmp_path / "file").write_text("x")
    for args, msg in [
        ([str(good), str(nan)], f"checkpoint {nan}: '{name}' holds NaN or infinite values; a loss landscape"),
        ([str(good), "--bits", "99"], "--bits '99': expected 'last', 0 (float) or a number of bits in 1..16"),
        ([str(good), "--bits", "-1"], "--bits '-1'"),
        ([str(good), "--out", str(tmp_path / "file")], f"--out {tmp_path / 'file'}: exists and is not a folder"),
    ]:
        out = ["--out", str(tmp_path / "ls")] if "--out" not in args else []
        assert main(["landscape", *args, *out, "--steps", "3", "--samples", "32", "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
        assert not (tmp_path / "ls").exists()


def test_plot_leaves_overflowed_points_blank_and_refuses_an_all_nan_grid(tmp_path):
    import numpy as np

    from cpt_hw.errors import CptHwError
    from cpt_hw.train.landscape import Landscape, plot_landscapes

    axis = np.linspace(-1, 1, 3)
    loss = np.array([[np.inf, 2.0, np.nan], [2.0, 1.0, 2.0], [3.0, 2.0, 4.0]])
    ls = Landscape(axis, axis, loss, np.zeros((3, 3)), {})
    assert plot_landscapes({"a": ls}, tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    flat = Landscape(axis, axis, np.ones((3, 3)), np.zeros((3, 3)), {})
    assert plot_landscapes({"flat": flat}, tmp_path / "flat.png").is_file()
    with pytest.raises(CptHwError, match="no finite loss"):
        plot_landscapes({"a": Landscape(axis, axis, np.full((3, 3), np.nan), np.zeros((3, 3)), {})},
                        tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()
