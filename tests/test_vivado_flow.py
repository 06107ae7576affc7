"""The bitstream flow without Xilinx tools: tool detection, the register-map check of the exported IP,
report parsing, and the orchestration itself driven by stand-in `vitis_hls`/`vivado` executables that
leave realistic outputs (tests/data/sample_*) where the real tools do."""

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from cpt_hw.errors import CptHwError, ToolMissingError
from cpt_hw.flows import bitstream as bs
from cpt_hw.flows import vivado_reports
from cpt_hw.flows.ip_check import RegmapMismatch, check_hw_header, parse_hw_header
from cpt_hw.gen.generator import generate
from cpt_hw.gen.hls import IP
from cpt_hw.gen.vivado import RTL_IP
from cpt_hw.hw.config import INTERFACE_VERSION, HardwareConfig

DATA = Path(__file__).parent / "data"
DOC = Path(__file__).resolve().parent.parent / "docs" / "bitstream.md"
HW_H = DATA / "sample_xcpt_gemm_hw.h"
CFG = HardwareConfig.from_preset("zc706")


@pytest.fixture(scope="module")
def regmap_json(tmp_path_factory):
    out, _ = generate(CFG, tmp_path_factory.mktemp("gen"), ["driver"])
    return out / "driver" / "regmap.json"


# ----------------------------------------------------------------------------- register map of the IP


def test_sample_vitis_header_matches(regmap_json):
    check_hw_header(HW_H, regmap_json)
    defines = parse_hw_header(HW_H.read_text(), "cpt_gemm", "control")
    assert defines["ADDR_CYCLES_DATA"] == 0x8C and defines["BITS_CYCLES_DATA"] == 64


def test_one_wrong_offset_fails(regmap_json, tmp_path):
    text = HW_H.read_text().replace("XCPT_GEMM_CONTROL_ADDR_CYCLES_DATA    0x8c",
                                    "XCPT_GEMM_CONTROL_ADDR_CYCLES_DATA    0x88")
    assert text != HW_H.read_text()
    bad = tmp_path / "xcpt_gemm_hw.h"
    bad.write_text(text)
    with pytest.raises(RegmapMismatch, match=r"ADDR_CYCLES_DATA = 0x88, regmap.json says 0x8c$"):
        check_hw_header(bad, regmap_json)


def test_missing_and_extra_arguments_fail(regmap_json, tmp_path):
    text = HW_H.read_text().replace("#define XCPT_GEMM_CONTROL_BITS_ID_DATA", "#define XCPT_GEMM_CONTROL_BITS_ID_X")
    text += "#define XCPT_GEMM_CONTROL_ADDR_MEM_DATA       0xd8\n"  # what offset=slave on `mem` would add
    bad = tmp_path / "xcpt_gemm_hw.h"
    bad.write_text(text)
    with pytest.raises(RegmapMismatch) as e:
        check_hw_header(bad, regmap_json)
    assert "BITS_ID_DATA missing" in str(e.value) and "ADDR_MEM_DATA = 0xd8 is not in regmap.json" in str(e.value)


def test_interface_2_output_packing_is_caught(regmap_json):
    """An IP of interface version 2, whose pins packed each output into data + ap_vld words only (the
    Vivado HLS <= 2019.2 layout), is refused: the map now gives an output 2 x (data words + 1) words."""
    with pytest.raises(RegmapMismatch, match="ADDR_CYCLES_DATA = 0x84, regmap.json says 0x8c"):
        check_hw_header(DATA / "sample_xcpt_gemm_hw_v2_packing.h", regmap_json)


# ----------------------------------------------------------------------------- reports


def test_utilization_reports_of_two_vivado_generations():
    new = vivado_reports.read_report(DATA / "sample_utilization_v2022.rpt", vivado_reports.parse_utilization)
    assert new["resources"]["lut"] == {"used": 71342, "available": 218600, "percent": 32.64}
    assert new["resources"]["bram36"]["used"] == 164.5 and new["resources"]["dsp"]["used"] == 14
    assert new["resources"]["ff"]["available"] == 437200 and new["state"] == "Routed"
    assert new["device"] == "xc7z045ffg900-2"
    old = vivado_reports.read_report(DATA / "sample_utilization_v2019.rpt", vivado_reports.parse_utilization)
    assert old["resources"]["lut"]["used"] == 6120 and old["resources"]["bram36"]["percent"] == 2.2
    assert old["tool"].startswith("Vivado v.2019.2")


def test_timing_summary_met_and_violated():
    text = (DATA / "sample_timing_summary_v2022.rpt").read_text()
    met = vivado_reports.parse_timing_summary(text)
    assert met["met"] and met["wns_ns"] == 0.187 and met["whs_ns"] == 0.024 and met["tns_failing_endpoints"] == 0
    assert met["clocks"] == [{"name": "clk_fpga_0", "period_ns": 5.0, "mhz": 200.0}]
    bad = vivado_reports.parse_timing_summary(violated_timing(text))
    assert not bad["met"] and bad["wns_ns"] == -0.412 and bad["tns_failing_endpoints"] == 57


def violated_timing(text: str) -> str:
    return (text.replace("      0.187        0.000                      0", "     -0.412      -13.905                     57")
            .replace("All user specified timing constraints are met.", "Timing constraints are not met."))


def test_csynth_xml():
    rep = vivado_reports.read_report(DATA / "sample_csynth_vitis2022.xml", vivado_reports.parse_csynth_xml)
    assert rep["top"] == "cpt_gemm" and rep["target_clock_ns"] == 5.0 and rep["estimated_clock_ns"] == 3.65
    assert rep["resources"]["bram_18k"] == 328 and rep["available"]["lut"] == 218600
    assert rep["latency_worst_cycles"] is None  # "undef": data-dependent


@pytest.mark.parametrize("parser", [vivado_reports.parse_utilization, vivado_reports.parse_timing_summary, vivado_reports.parse_csynth_xml])
def test_parsers_refuse_other_files(parser):
    with pytest.raises(CptHwError):
        parser(HW_H.read_text())


# ----------------------------------------------------------------------------- tools


def test_tool_detection():
    only = lambda *names: (lambda exe: f"/opt/x/{exe}" if exe in names else None)  # noqa: E731
    with pytest.raises(ToolMissingError, match=r"^vitis_hls \(or vivado_hls\) not found on PATH"):
        bs.find_tools(which=only("vivado"))
    with pytest.raises(ToolMissingError, match=r"^vivado not found on PATH"):
        bs.find_tools(which=only("vitis_hls"))
    assert bs.find_tools(rtl=True, which=only("vivado")).hls is None
    old = bs.find_tools(which=only("vivado", "vivado_hls"))
    assert old.hls == "/opt/x/vivado_hls" and old.hls_tcl == "vivado_hls.tcl"
    new = bs.find_tools(which=only("vivado", "vitis-run"))
    assert new.hls_argv == ("--mode", "hls", "--tcl") and new.hls_tcl == "vitis_hls.tcl"


def test_make_bitstream_without_tools_generates_and_stops(cli, tmp_path):
    env = {"PATH": str(tmp_path)}  # nothing Xilinx on it (python is run by absolute path)
    proc = cli("bitstream", "--preset", "sim", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "vitis_hls (or vivado_hls) not found on PATH" in proc.stderr
    root = Path(__file__).resolve().parent.parent / "build" / "sim"
    for f in ("hls/cpt_gemm.cpp", "hls/vitis_hls.tcl", "vivado/build.tcl", "vivado/bd.tcl", "driver/regmap.json"):
        assert (root / f).is_file(), f


# ----------------------------------------------------------------------------- the flow, with stand-ins

FAKE_HLS = r'''#!{python}
"""Stand-in for vitis_hls: leaves an exported IP and csynth.xml where the real tool does."""
import os, shutil, sys
from pathlib import Path
print("INFO: [HLS 200-10] Running '/opt/Xilinx/Vitis_HLS/2023.2/bin/unwrapped/lnx64.o/vitis_hls'")
if os.environ["FAKE_HLS"] == "error":
    print("INFO: [HLS 200-10] Analyzing design file 'cpt_gemm.cpp' ...")
    print("ERROR: [HLS 207-3339] no member named 'rows' in 'cpt_config' (cpt_compute.h:42:21)")
    print("ERROR: [HLS 200-1715] Encountered problem during source synthesis")
    sys.exit(1)
prj = Path("cpt_gemm_prj/solution1")
src = prj / "impl/ip/drivers" / os.environ["FAKE_DRIVER_DIR"] / "src"
src.mkdir(parents=True, exist_ok=True)
shutil.copy(os.environ["FAKE_HW_H"], src / "xcpt_gemm_hw.h")
(prj / "syn/report").mkdir(parents=True, exist_ok=True)
shutil.copy(os.environ["FAKE_CSYNTH"], prj / "syn/report/csynth.xml")
print("INFO: [HLS 200-111] Finished Command export_design")
'''

FAKE_VIVADO = r'''#!{python}
"""Stand-in for vivado -mode batch -source build.tcl: reports and overlay where build.tcl puts them."""
import os, shutil, sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("-source") + 1]).parent.parent
(out / "reports").mkdir(exist_ok=True)
(out / "overlay").mkdir(exist_ok=True)
shutil.copy(os.environ["FAKE_UTIL"], out / "reports/utilization.rpt")
shutil.copy(os.environ["FAKE_TIMING"], out / "reports/timing_summary.rpt")
name = os.environ["FAKE_NAME"]
(out / "overlay" / (name + ".bit")).write_bytes(b"\x00\x09bitstream")
(out / "overlay" / (name + ".hwh")).write_text("<EDKSYSTEM/>")
print("INFO: [Common 17-206] Exiting Vivado")
'''


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("vitis_hls", FAKE_HLS), ("vivado", FAKE_VIVADO)):
        exe = bindir / name
        exe.write_text(text.replace("{python}", sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    env = {"FAKE_HLS": "ok", "FAKE_HW_H": str(HW_H), "FAKE_CSYNTH": str(DATA / "sample_csynth_vitis2022.xml"),
           "FAKE_UTIL": str(DATA / "sample_utilization_v2022.rpt"),
           "FAKE_TIMING": str(DATA / "sample_timing_summary_v2022.rpt"), "FAKE_NAME": CFG.name,
           # export_design -version 2.0 names the driver folder cpt_gemm_v2_0
           "FAKE_DRIVER_DIR": f"cpt_gemm_v{IP.version.replace('.', '_')}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return tmp_path


def test_flow_builds_overlay_and_reports(fake_tools):
    out = fake_tools / "build"
    result = bs.bitstream(CFG, out_dir=out)
    assert result.overlay_bit == out / "overlay" / "zc706.bit" and result.overlay_hwh.is_file()
    util = json.loads((out / "reports" / "utilization.json").read_text())
    timing = json.loads((out / "reports" / "timing.json").read_text())
    csynth = json.loads((out / "reports" / "hls_csynth.json").read_text())
    assert util["resources"]["lut"]["used"] == 71342 and timing["met"] and csynth["top"] == "cpt_gemm"
    assert set(result.reports) == {"hls_csynth", "utilization", "timing"}
    assert "export_design" in (out / "logs" / "hls.log").read_text()


def test_failing_hls_step_reports_log_and_first_error(fake_tools, monkeypatch):
    monkeypatch.setenv("FAKE_HLS", "error")
    out = fake_tools / "build"
    with pytest.raises(bs.StepError) as e:
        bs.bitstream(CFG, out_dir=out)
    msg = str(e.value)
    assert f"(log: {out / 'logs' / 'hls.log'})" in msg
    assert msg.endswith("ERROR: [HLS 207-3339] no member named 'rows' in 'cpt_config' (cpt_compute.h:42:21)")
    assert not (out / "vivado_work").exists()


def test_wrong_register_map_stops_before_vivado(fake_tools, monkeypatch):
    bad = fake_tools / "xcpt_gemm_hw.h"
    bad.write_text(HW_H.read_text().replace("ADDR_STATUS_CTRL    0x80", "ADDR_STATUS_CTRL    0x84"))
    monkeypatch.setenv("FAKE_HW_H", str(bad))
    out = fake_tools / "build"
    with pytest.raises(RegmapMismatch, match="ADDR_STATUS_CTRL = 0x84, regmap.json says 0x80"):
        bs.bitstream(CFG, out_dir=out)
    assert not (out / "overlay").exists()


def test_timing_violation_fails_the_flow(fake_tools, monkeypatch):
    bad = fake_tools / "timing.rpt"
    bad.write_text(violated_timing((DATA / "sample_timing_summary_v2022.rpt").read_text()))
    monkeypatch.setenv("FAKE_TIMING", str(bad))
    with pytest.raises(bs.StepError, match=r"^timing not met at 200 MHz: WNS -0.412 ns"):
        bs.bitstream(CFG, out_dir=fake_tools / "build")


# ----------------------------------------------------------------------------- the doc


def test_ip_version_comes_from_the_interface_version_and_the_doc_restates_none():
    """One place decides the IP version; docs/bitstream.md names that place, and any literal version it
    shows (an IP VLNV or a driver folder) must be the generated one."""
    assert IP.version == RTL_IP.version == f"{INTERFACE_VERSION}.0"
    text = DOC.read_text()
    assert "`INTERFACE_VERSION` in `cpt_hw/hw/config.py`" in text
    for found in re.findall(r"cpt_gemm:(\d+\.\d+)", text):
        assert found == IP.version
    for found in re.findall(r"cpt_gemm_v(\d+)_(\d+)", text):
        assert ".".join(found) == IP.version
    assert "cpt_gemm:<v>.0" in text and "cpt_gemm_v<v>_0" in text
