"""`cpt-hw export`: the folding is the quantized model's arithmetic, the hls4ml types are the CPT precisions,
the g++ build agrees with PyTorch, and bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from cpt_hw.cli import main
from cpt_hw.export import ExportError, fold, plan
from cpt_hw.models import build_model
from cpt_hw.nn import precision

TRAIN = ["train", "--model", "digits_cnn", "--batch-size", "32", "--cycles", "1", "--bits", "3-6", "--iters", "12",
         "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    assert main(TRAIN + ["--out", str(run)]) == 0
    return run / "checkpoint.pt"


def _calibrated(name: str, shape: tuple[int, ...]) -> torch.nn.Module:
    """A fresh model whose activation ranges and BN statistics come from a few train-mode passes."""
    torch.manual_seed(0)
    model = build_model(name)
    with precision(fw=8, bw=0):
        for _ in range(3):
            model(torch.randn(8, *shape))
    return model.eval()


@pytest.mark.parametrize("bits", [2, 5, 8])
def test_folded_network_computes_the_quantized_model(one_torch_thread, bits):
    name, shape = "digits_cnn", (1, 8, 8)
    model = _calibrated(name, shape)
    net = fold(model, bits)
    net.set_round_codes(True)
    net.double()
    x = torch.randn(4, *shape)
    with torch.no_grad(), precision(fw=bits, bw=0):
        ref = model(x).double()
    with torch.no_grad():
        got = net(x.double())
    # float32 reference vs float64 folding: equal unless a code lands on a rounding boundary, which these
    # seeded inputs do not
    assert torch.allclose(got, ref, atol=1e-4, rtol=0), (got - ref).abs().max()


@pytest.fixture(scope="module")
def resnet20():
    return _calibrated("resnet20", (3, 32, 32))


@pytest.mark.parametrize("path", ["conv1", "blocks.3.downsample.0", "blocks.4.conv2"])
def test_unit_is_the_conv_of_dequantized_codes_then_bn(one_torch_thread, resnet20, path):
    """On inputs that lie on the activation grid (no rounding boundary), a folded unit equals BN(conv(x_hat,
    w_hat)) in float64 to rounding: the stem (zero point != 0, padding), a 1x1 stride-2 downsample, a 3x3."""
    model = resnet20
    unit = next(u for u in fold(model, 4).units if u.name == path)
    conv = model.get_submodule(path)
    bn = model.get_submodule(path.replace("conv", "bn") if "downsample" not in path else path[:-1] + "1")
    torch.manual_seed(1)
    codes = torch.randint(0, 16, (2, conv.in_channels, 8, 8)).double()
    x_hat = codes * unit.s_x + unit.z_x
    unit.round_codes = True
    unit.double()
    with torch.no_grad():
        want = torch.nn.functional.conv2d(x_hat, unit.w_hat.double(), None, conv.stride, conv.padding)
        want = torch.nn.functional.batch_norm(want, bn.running_mean.double(), bn.running_var.double(),
                                              bn.weight.double(), bn.bias.double(), False, 0.0, bn.eps)
        got = unit(x_hat)
    # the unit's float constants are float32 (what hls4ml reads): agreement to float32 precision
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max())), (got - want).abs().max()


def test_unit_conv_holds_the_weight_codes_and_a_ones_kernel(one_torch_thread):
    model = _calibrated("digits_cnn", (1, 8, 8))
    unit = fold(model, 3).units[1]
    w = unit.conv.weight
    assert w.shape[0] == model.features[1][0].out_channels + 1
    assert torch.equal(w[:-1], w[:-1].round()) and int(w[:-1].min()) >= 0 and int(w[:-1].max()) <= 7
    assert torch.equal(w[-1], torch.ones_like(w[-1]))
    assert unit.shift is None and unit.z_x == 0.0  # behind a ReLU: the codes enter the integer conv as they are


def test_types_are_the_cpt_precisions_and_exact_accumulators(one_torch_thread):
    types = plan(fold(_calibrated("digits_cnn", (1, 8, 8)), 8)).layers
    assert types["u1_quant"]["result"] == "ufixed<8,8,RND_CONV,SAT>"
    assert types["u1_conv"]["weight"] == "ufixed<8,8>"
    # k = 16 x 3 x 3 = 144 taps of 255 x 255 at most: 9,363,600 < 2^24
    assert types["u1_conv"]["accum"] == types["u1_conv"]["result"] == "ufixed<24,24>"
    assert types["u2_conv"]["accum"] == "ufixed<25,25>"  # k = 288: 18,727,200 < 2^25
    assert set(types) >= {"u0_shift", "relu2", "pool", "flatten", "fc"}


def test_grouped_convolution_is_refused_naming_the_layer():
    with pytest.raises(ExportError, match=r"layer 'layers\.0\.conv2' is a grouped convolution \(groups = 32\)"):
        fold(build_model("mobilenetv2"), 8)


def test_export_writes_the_project_with_the_cpt_types(ckpt, tmp_path, capsys):
    out = tmp_path / "hls"
    assert main(["export", str(ckpt), "--out", str(out), "--bits", "5"]) == 0
    assert capsys.readouterr().out.startswith("exported digits_cnn at 5 bits ")
    defines = (out / "firmware" / "defines.h").read_text()
    assert "ap_ufixed<5,5,AP_RND_CONV,AP_SAT,0>, 16*1> layer" in defines  # the quantizer, as the C++ type
    assert "typedef ap_ufixed<5,5> u1_conv_weight_t;" in defines
    assert "typedef ap_ufixed<18,18> u1_conv_accum_t;" in defines  # 144 x 31 x 31 = 138,384 < 2^18
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["bits"] == 5 and manifest["part"] == "xc7z045ffg900-2" and manifest["check"] is None
    assert str(out) in (out / "hls4ml_config.yml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["hls"]  # no temporary folder left
    assert main(["export", str(ckpt), "--out", str(out), "--bits", "4"]) == 0  # an earlier export is replaced
    assert json.loads((out / "export.json").read_text())["bits"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["hls"]


@pytest.mark.slow  # the g++ build of the hls4ml project: ~50 CPU-seconds
def test_export_and_check_on_digits(ckpt, tmp_path, capsys):
    out = tmp_path / "hls"
    assert main(["export", str(ckpt), "--out", str(out), "--check", "40"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("exported digits_cnn at ") and "xc7z045ffg900-2" in lines[0]
    assert lines[1].startswith("check on 40 test images")
    check = json.loads((out / "export.json").read_text())["check"]
    assert check["agreement"] >= 0.975 and abs(check["acc_hls"] - check["acc_torch"]) <= 0.025
    assert (out / "firmware" / "cpt_model.cpp").is_file() and not list((out / "firmware").glob("*.so"))
    assert [p.name for p in tmp_path.iterdir()] == ["hls"]


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("cpt-hw: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("extra, fragment", [
    (["--bits", "0"], "--bits 0: must be an integer in 1..16"),
    (["--bits", "17"], "--bits 17: must be an integer in 1..16"),
    (["--check", "-1"], "--check -1: must be an integer >= 0"),
])
def test_bad_flags(ckpt, tmp_path, capsys, extra, fragment):
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hls"), *extra]) == 2
    _one_line_error(capsys, fragment)
    assert not list(tmp_path.iterdir())


def test_missing_parent_and_foreign_folder(ckpt, tmp_path, capsys):
    assert main(["export", str(ckpt), "--out", str(tmp_path / "no" / "hls")]) == 2
    _one_line_error(capsys, "its parent folder", "does not exist")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["export", str(ckpt), "--out", str(tmp_path / "mine")]) == 2
    _one_line_error(capsys, "not written by cpt-hw export")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_other_checkpoint_formats(tmp_path, capsys):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    assert main(["export", str(tmp_path / "other.pt"), "--out", str(tmp_path / "hls")]) == 2
    _one_line_error(capsys, "not a cpt-hw training checkpoint")
    (tmp_path / "text.pt").write_text("hello")
    assert main(["export", str(tmp_path / "text.pt"), "--out", str(tmp_path / "hls")]) == 2
    _one_line_error(capsys, "corrupt or unreadable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt", "text.pt"]


def _edited(ckpt, tmp_path, edit) -> str:
    ck = torch.load(ckpt, weights_only=True)
    edit(ck)
    path = tmp_path / "edited.pt"
    torch.save(ck, path)
    return str(path)


def test_model_hls4ml_cannot_express(ckpt, tmp_path, capsys):
    def to_mobilenet(ck):
        ck["config"]["model"] = "mobilenetv2"
        ck["model"] = build_model("mobilenetv2").state_dict()
    path = _edited(ckpt, tmp_path, to_mobilenet)
    assert main(["export", path, "--out", str(tmp_path / "hls")]) == 2
    _one_line_error(capsys, "grouped convolution", "hls4ml")
    assert not (tmp_path / "hls").exists()


def test_no_precision_to_take_asks_for_bits(ckpt, tmp_path, capsys):
    path = _edited(ckpt, tmp_path, lambda ck: ck.update(last_eval={}))
    assert main(["export", path, "--out", str(tmp_path / "hls")]) == 2
    _one_line_error(capsys, "give --bits")


def test_a_failure_half_way_leaves_nothing(ckpt, tmp_path, monkeypatch):
    from cpt_hw.export import project

    def broken(net, shape, types, out_dir, io):
        (out_dir / "partial.cpp").write_text("// half")
        raise ExportError("simulated failure")
    monkeypatch.setattr(project, "convert", broken)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hls")]) == 2
    assert not list(tmp_path.iterdir())
