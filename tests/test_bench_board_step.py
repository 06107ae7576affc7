"""bench/bench_board_step.py: the report's keys and the quantities it derives exactly from the driver."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def bbs(bench_module):
    return bench_module("bench_board_step")


@pytest.fixture(scope="module")
def run(bbs, tmp_path_factory):
    """resnet20 at batch 1, fw 3 and 8 only: the CLI's report and the bench object behind it."""
    out = tmp_path_factory.mktemp("bbs") / "r20"
    args = bbs.parse_args(["--model", "resnet20", "--batch-size", "1", "--bits", "3", "8", "--no-progress",
                           "--out", str(out)])
    bench = bbs.Bench(args.model, args.batch_size)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), bbs.RssSampler() as sampler, \
            bbs.DeviceProbe(bench.clock, sampler) as probe, bbs.set_hook(bench.clock):
        rows = bbs.measure(bench, [3, 8], probe, progress=False)
    memory = {"peak": 1 << 30, "host_peak": 1 << 29, "scratch": probe.scratch_bytes, "baseline": bench.baseline_rss}
    return bench, rows, bbs.summarise("resnet20", 1, rows, memory, "test")


def test_report_keys_and_hours(bbs, run):
    _, _, res = run
    for key in ("model", "accel_s_per_iter", "host_cpu_s_per_iter", "peak_rss_mb", "read_bytes_per_iter",
                "write_bytes_per_iter", "board_hours_64k"):
        assert key in res, key
    assert res["model"] == "resnet20"
    assert res["host_rss_above_baseline_mb"] == pytest.approx(res["host_rss_mb"] - res["baseline_rss_mb"])
    assert res["machine"]["allocator"]  # glibc's or a preloaded one: the peak depends on it
    assert res["schedule"]["partial"] is True and res["schedule"]["measured_bits"] == [3, 8]
    for group in ("accel_s_per_iter", "host_cpu_s_per_iter", "read_bytes_per_iter", "write_bytes_per_iter"):
        assert set(res[group]) == {"cpt", "static"}
    hours = res["board_hours_64k"]
    assert {"accel_only", "a9_15x", "a9_25x", "a9_40x"} <= set(hours)
    a, h = res["accel_s_per_iter"], res["host_cpu_s_per_iter"]
    for kind in ("cpt", "static"):
        assert hours["accel_only"][kind] == pytest.approx(64000 * a[kind] / 3600, rel=1e-12)
        assert hours["a9_25x"][kind] == pytest.approx(64000 * (a[kind] + 25 * h[kind]) / 3600, rel=1e-12)
    assert hours["accel_only"]["static"] > hours["accel_only"]["cpt"]
    # the schedule's shares over 64k iterations (cpt_hw.schedules docstring: 13120 ... 13088 iterations)
    assert res["schedule"]["weights"] == {str(b): n / 64000 for b, n in
                                          zip(range(3, 9), (13120, 10528, 8352, 8384, 10528, 13088))}
    w3, w8 = 13120 / (13120 + 13088), 13088 / (13120 + 13088)
    by_bits = {r["fw"]: r for r in res["per_precision"]}
    assert a["cpt"] == pytest.approx(w3 * by_bits[3]["accel_s"] + w8 * by_bits[8]["accel_s"], rel=1e-12)
    assert a["static"] == by_bits[8]["accel_s"]
    json.dumps(res)  # serialisable


def test_cycles_and_bytes_match_the_driver(run):
    bench, rows, _ = run
    acc = bench.engine.accelerator
    row8 = rows[-1]
    assert row8["fw"] == 8
    # the history holds the last precision's calls (cleared per precision)
    assert row8["device_calls"] == len(acc.history)
    assert row8["cycles"] == sum(r.cycles for r in acc.history)
    assert row8["cycles"] == sum(row8["cycles_by_class"].values())
    assert all(row8["cycles_by_class"][c] > 0 for c in ("fwd", "dgrad", "wgrad"))
    assert row8["accel_s"] == row8["cycles"] / (bench.engine.config.clock_mhz * 1e6)
    cols = bench.engine.config.cols
    assert row8["write_bytes"] == sum(r.m * -(-r.n // cols) * cols * 4 for r in acc.history)
    assert row8["read_bytes"] > 0
    assert {(r.a_bits, r.b_bits) for r in acc.history} == {(8, 8)}
    # fw 3: forward (3, 3), both backward GEMMs with 8-bit errors and 3-bit operands
    assert rows[0]["cycles"] < row8["cycles"]


def test_host_time_is_split_into_categories(bbs, run):
    _, rows, _ = run
    for r in rows:
        assert set(r["host_cpu_s_by_category"]) == set(bbs.CATEGORIES)
        assert r["host_cpu_s"] == pytest.approx(sum(r["host_cpu_s_by_category"].values()), rel=1e-12)
        assert r["host_cpu_s_by_category"]["lowering"] > 0 and r["host_cpu_s_by_category"]["packing"] > 0
        assert r["device_cpu_s"] > 0


@pytest.mark.parametrize("argv, words", [
    (["--model", "resnet21"], "--model 'resnet21'"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--bits", "3", "4"], "including 8"),
    (["--bits", "2", "8"], "3..8"),
    (["--batch-size", "x"], "invalid int value"),
    (["--recompute-bn", "4"], "--recompute-bn '4'"),
])
def test_bad_cli_input_is_one_line_and_exit_2(bbs, tmp_path, capsys, argv, words):
    assert bbs.main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
    assert list(tmp_path.iterdir()) == []


def test_combine_merges_rows_only_reports(bbs, run, tmp_path, capsys):
    """--combine of per-precision --rows-only files gives the report summarise gives on all the rows."""
    _, rows, res = run
    for r in rows:  # the iteration's own memory is taken per process, then the largest
        above = (100 + r["fw"]) << 20
        memory = {"peak": 1 << 30, "host_peak": 1 << 29, "scratch": 0, "baseline": 1 << 28, "above_baseline": above}
        part = {"model": "resnet20", "batch_size": 1, "command": f"part {r['fw']}", "machine": res["machine"],
                "memory": memory, "per_precision": [r]}
        (tmp_path / f"p{r['fw']}.json").write_text(json.dumps(part))
    out = tmp_path / "all"
    assert bbs.main(["--combine", str(tmp_path / "p3.json"), str(tmp_path / "p8.json"), "--out", str(out),
                     "--json"]) == 0
    merged = json.loads(out.with_suffix(".json").read_text())
    assert merged["accel_s_per_iter"] == res["accel_s_per_iter"]
    assert merged["board_hours_64k"] == res["board_hours_64k"]
    assert merged["peak_rss_mb"] == 1024 and merged["host_rss_mb"] == 512
    assert merged["host_rss_above_baseline_mb"] == 108
    assert "part 3" in merged["command"] and "part 8" in merged["command"]
    capsys.readouterr()
    # without the static 8/8 row there is no report: one line, exit 2, nothing written
    assert bbs.main(["--combine", str(tmp_path / "p3.json"), "--out", str(tmp_path / "none")]) == 2
    assert "including 8" in capsys.readouterr().err
    assert not (tmp_path / "none.json").exists()


def test_rss_kinds_add_up_to_the_resident_set(bbs):
    """/proc/self/status's RssAnon + RssFile + RssShmem is statm's resident set, and statm's anonymous part
    (resident - shared) is RssAnon (read back to back: within a few pages of each other)."""
    sampler = bbs.RssSampler()
    kinds = sampler.kinds()
    rss, anon = sampler._statm()
    assert set(kinds) == {"anon", "file", "shmem"} and kinds["file"] > 0
    assert abs(sum(kinds.values()) - rss) < 1 << 20
    assert abs(kinds["anon"] - anon) < 1 << 20


def test_combine_takes_the_kinds_of_the_largest_peak(bbs, run, tmp_path):
    _, rows, res = run
    for r in rows:
        big = r["fw"] == 3  # the fw 3 process peaks higher: its split is the report's
        memory = {"peak": 1 << 30, "host_peak": (600 if big else 500) << 20, "scratch": 4 << 20,
                  "baseline": 1 << 28, "host_anon_peak": (450 if big else 470) << 20,
                  "host_peak_kinds": {"anon": (400 if big else 300) << 20, "file": 150 << 20, "shmem": 50 << 20},
                  "baseline_kinds": {"anon": 170 << 20, "file": 86 << 20, "shmem": 0}}
        part = {"model": "resnet20", "batch_size": 1, "command": f"part {r['fw']}", "machine": res["machine"],
                "memory": memory, "per_precision": [r]}
        (tmp_path / f"p{r['fw']}.json").write_text(json.dumps(part))
    out = tmp_path / "all"
    assert bbs.main(["--combine", str(tmp_path / "p3.json"), str(tmp_path / "p8.json"), "--out", str(out)]) == 0
    merged = json.loads(out.with_suffix(".json").read_text())
    assert merged["host_rss_by_kind_mb"] == {"anon": 396, "file": 150, "shmem": 50}
    assert merged["host_anon_peak_mb"] == 466
    assert merged["baseline_rss_by_kind_mb"] == {"anon": 170, "file": 86, "shmem": 0}
    assert "396 MB anonymous" in out.with_suffix(".md").read_text()


def test_recomputed_batchnorm_inputs_cost_forward_gemms_only(bbs, run):
    """--recompute-bn all: every convolution's forward GEMM runs twice (exact cycle counts from the driver:
    twice the forward's cycles), the backward GEMMs are the same calls, and the report says so."""
    bench = bbs.Bench("resnet20", 1, recompute_bn="all")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), bbs.RssSampler() as sampler, \
            bbs.DeviceProbe(bench.clock, sampler) as probe, bbs.set_hook(bench.clock):
        rows = bbs.measure(bench, [3, 8], probe, progress=False)
    for again, once in zip(rows, run[1]):
        assert again["accel_s_by_class"]["fwd"] == pytest.approx(2 * once["accel_s_by_class"]["fwd"], rel=1e-12)
        assert again["accel_s_by_class"]["dgrad"] == once["accel_s_by_class"]["dgrad"]
        assert again["accel_s_by_class"]["wgrad"] == once["accel_s_by_class"]["wgrad"]
    memory = {"peak": 1 << 30, "host_peak": 1 << 29, "scratch": probe.scratch_bytes, "baseline": bench.baseline_rss}
    res = bbs.summarise("resnet20", 1, rows, memory, "test", recompute_bn="all")
    assert res["recompute_bn"] == "all" and "recomputed in backward" in bbs.markdown(res)


def test_half_batchnorm_inputs_change_no_device_call(bbs, run):
    """--bn-saved float16: the same device calls and cycles as float32 (only what backward keeps changes), and
    the report says so."""
    bench = bbs.Bench("resnet20", 1, bn_saved="float16")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), bbs.RssSampler() as sampler, \
            bbs.DeviceProbe(bench.clock, sampler) as probe, bbs.set_hook(bench.clock):
        rows = bbs.measure(bench, [3, 8], probe, progress=False)
    for half, kept in zip(rows, run[1]):
        assert half["device_calls"] == kept["device_calls"] and half["accel_s_by_class"] == kept["accel_s_by_class"]
    memory = {"peak": 1 << 30, "host_peak": 1 << 29, "scratch": probe.scratch_bytes, "baseline": bench.baseline_rss}
    res = bbs.summarise("resnet20", 1, rows, memory, "test", bn_saved="float16")
    assert res["bn_saved"] == "float16" and "kept as float16" in bbs.markdown(res)


def _iterations(bbs, conv_engine: bool, batch: int = 1, fws: tuple[int, ...] = (3, 8),
                twin_limits: bool = False) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    """resnet20 at ``batch`` (1), fw 3 then fw 8 (one SGD step each): the rows and each iteration's parameter
    gradients."""
    from threadpoolctl import threadpool_limits

    bench = bbs.Bench("resnet20", batch, conv_engine=conv_engine, twin_limits=twin_limits)
    rows, grads = [], []
    with threadpool_limits(limits=1), bbs.RssSampler() as sampler, \
            bbs.DeviceProbe(bench.clock, sampler) as probe, bbs.set_hook(bench.clock):
        for fw in fws:
            rows += bbs.measure(bench, [fw], probe, progress=False)
            grads.append({n: p.grad.clone() for n, p in bench.model.named_parameters() if p.grad is not None})
    assert bench.engine.config.conv_engine is conv_engine
    return rows, grads


def test_conv_engine_iteration_is_bit_identical_and_reads_less(bbs):
    """--conv-engine moves where the convolutions' GEMMs run, not what they compute: the same losses and
    parameter gradients bit for bit as on interface 3, every device call a conv call (resnet20's convolutions
    all fit the engine), and fewer AXI bytes read (no k^2-expanded operands)."""
    gemm_rows, gemm_grads = _iterations(bbs, conv_engine=False)
    conv_rows, conv_grads = _iterations(bbs, conv_engine=True)
    for g, c, gg, cg in zip(gemm_rows, conv_rows, gemm_grads, conv_grads):
        assert c["fw"] == g["fw"] and c["loss"] == g["loss"]
        assert gg.keys() == cg.keys() and len(gg) > 0
        for name in gg:
            assert torch.equal(gg[name], cg[name]), name
        assert g["conv_calls"] == 0 and c["conv_calls"] == c["device_calls"] > 0
        assert c["read_bytes"] < g["read_bytes"]
        assert all(c["cycles_by_class"][k] > 0 for k in ("fwd", "dgrad", "wgrad"))
    res = bbs.summarise("resnet20", 1, conv_rows, {"peak": 1 << 30, "host_peak": 1 << 29, "scratch": 0,
                                                   "baseline": 1 << 28}, "test", conv_engine=True)
    assert res["conv_engine"] is True and "design's model" in bbs.markdown(res)


def test_twin_limits_refuse_then_halve_and_change_nothing(bbs):
    """--twin-limits: on the Verilog twin's rule stage 3's weight gradients of 8 images are refused once per layer
    geometry (its formers take 4) and run in halves; losses and gradients equal the design's calls' bit for bit."""
    design_rows, design_grads = _iterations(bbs, conv_engine=True, batch=8, fws=(8,))
    twin_rows, twin_grads = _iterations(bbs, conv_engine=True, batch=8, fws=(8,), twin_limits=True)
    (d,), (t,) = design_rows, twin_rows
    assert t["loss"] == d["loss"] and all(torch.equal(design_grads[0][n], twin_grads[0][n]) for n in design_grads[0])
    assert d["refused_calls"] == 0 and t["refused_calls"] > 0
    assert t["conv_calls"] > d["conv_calls"] and t["device_calls"] == t["conv_calls"] + t["refused_calls"]
    res = bbs.summarise("resnet20", 8, twin_rows, {"peak": 1 << 30, "host_peak": 1 << 29, "scratch": 0,
                                                   "baseline": 1 << 28}, "test", conv_engine=True, twin_limits=True)
    assert f"{t['refused_calls']} calls refused" in bbs.markdown(res)
    assert bbs.main(["--twin-limits", "--bits", "8"]) == 2             # needs --conv-engine
