"""bench/bench_conv_twin.py: the calls it runs are ResNet-74's, and its per-class weighting is exact (no simulation:
the twin's results are checked byte for byte by the cocotb module it drives, sim/cpt_gemm/bench_cpt_gemm_conv.py,
which reuses the system test's run_conv)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from cpt_hw.hw.calls import ConvCall
from cpt_hw.hw.conv_calls import conv_status, encode_conv

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bct():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_conv_twin", ROOT / "bench" / "bench_conv_twin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cfg():
    from cpt_hw.hw.config import HardwareConfig
    return HardwareConfig.from_preset("zc706", {"conv_engine": True, "name": "zc706_conv"})


def test_calls_are_resnet74_training_calls(bct, cfg):
    specs = bct.layer_calls(1, list(range(3, 9)))
    # 8 distinct convolutions x 3 classes x 6 precisions, less the stem's input gradient
    assert len(specs) == 8 * 3 * 6 - 6
    # the stem, 6 n = 72 block convolutions and the 2 downsampling 1x1 ones (the FC is the 74th layer)
    assert sum(s["count"] for s in specs if s["op"] == "fwd" and s["fw"] == 8) == 75
    for s in specs:
        assert (s["a_bits"], s["b_bits"]) == {"fwd": (s["fw"], s["fw"]), "dgrad": (8, s["fw"]),
                                              "wgrad": (s["fw"], 8)}[s["op"]]
        call = ConvCall(0, 0, 0, 0, 0, 0, s["a_bits"], s["b_bits"], 0, 0, 1 << 30,
                        conv=encode_conv(s["op"], s["kh"], s["kw"], s["stride"], s["padding"]), batch=1,
                        channels=s["c"] | s["k"] << 16, size=s["h"] | s["w"] << 16)
        assert conv_status(cfg, call) == 0, s["name"]          # every one a legal call of the engine
    # the twin takes at least every forward call (the rest as its rule says)
    assert all(bct.twin_runs(cfg, s) for s in specs if s["op"] == "fwd")


def test_class_ratios_weight_layers_by_their_iteration_time(bct, cfg):
    specs = bct.layer_calls(1, list(range(3, 9)))
    ratio = {"fwd": 1.5, "dgrad": 2.0}
    records = {s["name"]: {"cycles": int(1000 * ratio[s["op"]]), "model_cycles": 1000, "hls_cycles": 900,
                           "useful_ops": 10**6} for s in specs if s["op"] in ratio}
    summary = bct.summarise(cfg, specs, records)
    for op, r in ratio.items():
        c = summary["classes"][op]
        assert c["ran"] == c["of"] and c["cpt_ratio"] == pytest.approx(r, rel=1e-12)
        assert c["cpt_twin_scaled_s"] == pytest.approx(r * c["cpt_model_s"], rel=1e-12)
    assert summary["classes"]["wgrad"] == {"ran": 0, "of": 48}
    text = bct.markdown(cfg, bct.argparse.Namespace(simulator="verilator", batch=1), summary, 1.0, "cmd")
    assert "| wgrad | 0 of 48" in text and "| fwd | 48 of 48" in text


def test_wgrad_calls_sum_the_iterations_calls(bct, cfg):
    """Weight gradients as the twin runs them: 128 / batch calls of the measured call per layer occurrence, CPT-
    weighted over fw; an upper bound when the twin would take more images a call than were run, its own sum when
    each call ran as many as it takes (--wgrad-batch max)."""
    hz = cfg.clock_mhz * 1e6
    weights = bct.cpt_weights()
    one = [s for s in bct.layer_calls(1, list(range(3, 9))) if s["op"] == "wgrad"]
    most = [{**s, "batch": bct.twin_images_max(cfg, s)} for s in one]
    by_layer: dict[str, list[int]] = {}
    for s in most:
        by_layer.setdefault(s["name"].split("/")[0], []).append(s["batch"])
    # the formers' banks: 4 images on stage 1, 8 on stage 2, 16 on stage 3 (fw 3..8); the stride-2 layers' X (the
    # previous stage's larger images) fills its banks with fewer at 5-8 bits
    assert by_layer["s1.conv"] == [4] * 6 and by_layer["s2.conv"] == [8] * 6 and by_layer["s3.conv"] == [16] * 6
    assert by_layer["s2.first"] == [8, 8, 6, 5, 4, 4] and by_layer["s3.first"] == [16, 16, 12, 10, 9, 8]
    for specs, text in ((one, "upper bound"), (most, "not an extrapolation")):
        records = {s["name"]: {"cycles": 1000 + s["fw"], "model_cycles": 500, "hls_cycles": 900,
                               "useful_ops": 10**6} for s in specs}
        summary = bct.summarise(cfg, specs, records)
        c = summary["classes"]["wgrad"]
        expect = sum(weights[s["fw"]] * (1000 + s["fw"]) * s["count"] * -(-128 // s["batch"]) for s in specs) / hz
        assert c["cpt_twin_calls_s"] == pytest.approx(expect, rel=1e-12) and c["images_max"] == [4, 16]
        assert c["static_twin_calls_s"] == pytest.approx(
            sum(1008 * s["count"] * -(-128 // s["batch"]) for s in specs if s["fw"] == 8) / hz)
        md = bct.markdown(cfg, bct.argparse.Namespace(simulator="verilator", batch=1), summary, 1.0, "cmd")
        assert f"**{expect:.3f} s CPT**" in md and text in md


def test_wgrad_chains_sum_first_hits_and_last(bct, cfg):
    """--wgrad-batch max measures each layer as a chain of three hinted calls: the layer's 32 calls are the first
    call, 30 of the middle (a hit with a hint) and the last (a hit without); the model's hit column is the
    design's call less its exposed loads."""
    hz = cfg.clock_mhz * 1e6
    weights = bct.cpt_weights()
    specs = [{**s, "batch": 4, "chain": True} for s in bct.layer_calls(1, list(range(3, 9))) if s["op"] == "wgrad"]
    records = {}
    for s in specs:
        for suffix, cycles in (("", 3000), ("/hit", 2000 + s["fw"]), ("/last", 1900)):
            records[s["name"] + suffix] = {"cycles": cycles, "model_cycles": 2500, "hls_cycles": 900,
                                           "useful_ops": 10**6}
    summary = bct.summarise(cfg, specs, records)
    c = summary["classes"]["wgrad"]
    expect = sum(weights[s["fw"]] * (3000 + 30 * (2000 + s["fw"]) + 1900) * s["count"] for s in specs) / hz
    assert c["cpt_twin_calls_s"] == pytest.approx(expect, rel=1e-12)
    row = next(r for r in summary["rows"] if r["name"] == "s1.conv/wgrad/fw8")
    assert (row["twin_hit_cycles"], row["twin_last_cycles"]) == (2008, 1900)
    spec = next(s for s in specs if s["name"] == "s1.conv/wgrad/fw8")
    assert 0 < row["model_hit_cycles"] < bct.emu_conv.call_cycles(cfg, bct.ConvArgs.decode(bct.spec_call(spec)))
    md = bct.markdown(cfg, bct.argparse.Namespace(simulator="verilator", batch=1, wgrad_batch="max"), summary, 1.0,
                      "cmd")
    assert f"**{expect:.3f} s CPT**" in md and "PREFETCH_B" in md and "| 2008 (1900), " in md


def test_bad_arguments_exit_2(bct, capsys):
    with pytest.raises(SystemExit) as e:
        bct.main(["--fw", "9", "--dry-run"])
    assert e.value.code == 2 and "--fw" in capsys.readouterr().err


def test_resume_reuses_the_records_of_the_same_calls_only(bct, cfg, tmp_path):
    """--resume takes an earlier run's records for the calls they measured: a chain's three calls together or not
    at all, and only where the record's geometry and precisions are the spec's; an unreadable file is one line,
    exit code 2."""
    import json

    specs = [{**s, "batch": 4, "chain": True} for s in bct.layer_calls(1, [3, 8]) if s["op"] == "wgrad"]
    a, b, c = specs[:3]

    def rec(s, suffix="", **change):
        return {**{k: s[k] for k in bct.RECORD_KEYS}, "name": s["name"] + suffix, "status": 0, "cycles": 7, **change}

    lines = [rec(a), rec(a, "/hit"), rec(a, "/last"),       # a whole chain: reused
             rec(b), rec(b, "/hit"),                         # its last call missing: simulated again
             rec(c, batch=8), rec(c, "/hit"), rec(c, "/last")]  # another call of the same layer: simulated again
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert sorted(bct.load_resumed(path, specs)) == sorted([a["name"], a["name"] + "/hit", a["name"] + "/last"])
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(SystemExit) as e:
        bct.load_resumed(tmp_path / "bad.jsonl", specs)
    assert e.value.code == 2
