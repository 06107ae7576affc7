"""The generated HLS and Vivado TCL: complete commands, the config's part/board/clock, existing files,
and a dry run of every script in tclsh with the Xilinx commands stood in by tests/data/xilinx_stubs.tcl."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cpt_hw.gen import hls as hls_target
from cpt_hw.gen import vivado as vt
from cpt_hw.gen.generator import generate
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.regmap import KERNEL_NAME
from cpt_hw.paths import rtl_dir, source_root

STUBS = Path(__file__).parent / "data" / "xilinx_stubs.tcl"
PRESETS = ["zc706", "sim"]

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh is not installed")


@pytest.fixture(scope="module", params=PRESETS)
def generated(request, tmp_path_factory):
    cfg = HardwareConfig.from_preset(request.param)
    out, _ = generate(cfg, tmp_path_factory.mktemp(cfg.name), ["driver", "rtl", "hls", "vivado"])
    return cfg, out


def tcl(script: str) -> str:
    proc = subprocess.run(["tclsh"], input=script + "\nexit 0\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tcl_files(out: Path) -> list[Path]:
    return sorted((out / "hls").glob("*.tcl")) + sorted((out / "vivado").glob("*.tcl"))


def test_every_command_is_complete(generated):
    _, out = generated
    files = tcl_files(out)
    assert {f.name for f in files} == {"vitis_hls.tcl", "vivado_hls.tcl", "build.tcl", "bd.tcl", "package_rtl.tcl"}
    for f in files:
        # Split into commands the way Tcl does (a command ends at a newline where it is complete);
        # report any that never completes, then the file as a whole.
        result = tcl(f"""
            set fh [open {{{f}}}]; set text [read $fh]; close $fh
            set cmd ""; set n 0
            foreach line [split $text "\\n"] {{
                append cmd $line "\\n"
                if {{[info complete $cmd]}} {{ if {{[string trim $cmd] ne ""}} {{ incr n }}; set cmd "" }}
            }}
            puts "$n [expr {{[string trim $cmd] eq ""}}] [info complete $text]"
        """).split()
        assert int(result[0]) > 3 and result[1:] == ["1", "1"], f"{f.name}: incomplete command"


def test_part_board_and_clock(generated):
    cfg, out = generated
    period = f"{1000 / cfg.clock_mhz:.3f}"
    for tool in ("vitis_hls", "vivado_hls"):
        text = (out / "hls" / f"{tool}.tcl").read_text()
        assert f"set_part {{{cfg.part}}}" in text
        assert f"create_clock -period {period} -name default" in text
        assert "export_design -format ip_catalog" in text and "cosim_design" in text and "csim_design" in text
    assert "-flow_target vivado" in (out / "hls" / "vitis_hls.tcl").read_text()
    build = (out / "vivado" / "build.tcl").read_text()
    assert f"-part {{{cfg.part}}}" in build and f"set_property board_part {{{cfg.board}}}" in build
    assert "write_bitstream" in build and "hw_handoff" in build
    bd = (out / "vivado" / "bd.tcl").read_text()
    assert f"CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {{{cfg.clock_mhz:g}}}" in bd
    assert f"CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {{{cfg.axi_data_width}}}" in bd
    assert 'apply_board_preset "1"' in bd and "IRQ_F2P" in bd


def dry_run(script: Path, cwd: Path, *args: str, fake_dir: Path | None = None, fclk: float = 0.0) -> dict:
    """Source a generated script under the stubs; returns the recorded commands and missing files."""
    out = tcl(f"""
        set ::cpt_fake_dir {{{fake_dir or cwd}}}
        set ::cpt_fclk_actual {fclk}
        if {{[catch {{source {{{STUBS}}}}} e]}} {{ puts "STUBS BROKEN: $e"; cpt_real_exit 3 }}
        cd {{{cwd}}}
        set ::argv [list {' '.join(args)}]
        if {{[catch {{source {{{script}}}}} err]}} {{ puts "STATUS ERROR $err" }} else {{ puts "STATUS OK" }}
        foreach c $::cpt_log {{ puts "CMD $c" }}
        foreach m $::cpt_missing {{ puts "MISSING $m" }}
    """)
    lines = out.splitlines()
    status = next(line[7:] for line in lines if line.startswith("STATUS "))
    return {"status": status, "cmds": [line[4:] for line in lines if line.startswith("CMD ")],
            "missing": [line[8:] for line in lines if line.startswith("MISSING ")]}


@pytest.mark.parametrize("tool", ["vitis_hls", "vivado_hls"])
def test_hls_script_dry_run(generated, tool, tmp_path):
    cfg, out = generated
    run = dry_run(out / "hls" / f"{tool}.tcl", tmp_path)
    assert run["status"] == "OK" and run["missing"] == []
    names = [c.split()[0] for c in run["cmds"]]
    for step in ("open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock",
                 "csim_design", "csynth_design", "cosim_design", "export_design", "exit"):
        assert step in names
    assert f"set_top {KERNEL_NAME}" in run["cmds"]
    assert "config_rtl -reset state" in run["cmds"]  # ap_rst_n clears the B prefetch (docs/registers.md)
    # the kernel headers the top includes are where -cflags points
    add = next(c for c in run["cmds"] if c.startswith("add_files") and "cpt_gemm.cpp" in c)
    assert (Path(re.search(r"-I(\S+)\s*\}?$", add).group(1).rstrip("}")) / "cpt_gemm.h").is_file()
    # the project the script opens is the one whose export the Vivado flow reads
    assert f"open_project -reset {KERNEL_NAME}_prj" in run["cmds"]
    assert vt.HLS_IP_REPO == f"{vt.HLS_WORK}/{KERNEL_NAME}_prj/solution1/impl/ip"
    steps = dry_run(out / "hls" / f"{tool}.tcl", tmp_path, "csim", "synth")
    assert not any(c.startswith(("cosim_design", "export_design")) for c in steps["cmds"])


def fake_vivado_outputs(fake: Path) -> None:
    (fake / "impl_1").mkdir(parents=True)
    (fake / "impl_1" / f"{vt.BD}_wrapper.bit").write_bytes(b"bit")
    hwh = fake / "cpt_project" / f"{vt.PROJECT}.gen" / "sources_1" / "bd" / vt.BD / "hw_handoff"
    hwh.mkdir(parents=True)
    (hwh / f"{vt.BD}.hwh").write_text("<hwh/>")


def test_vivado_script_dry_run_hls(generated, tmp_path):
    cfg, out = generated
    fake_vivado_outputs(tmp_path / "fake")
    run = dry_run(out / "vivado" / "build.tcl", tmp_path, "hls", fake_dir=tmp_path / "fake", fclk=cfg.clock_mhz)
    assert run["status"] == "OK" and run["missing"] == []
    cmds = run["cmds"]
    ip_repo = out / vt.HLS_IP_REPO
    assert any(c.startswith("set_property ip_repo_paths") and str(ip_repo) in c for c in cmds)
    assert f"create_bd_cell -type ip -vlnv {hls_target.IP.vlnv} {KERNEL_NAME}_0" in cmds
    wiring = [
        "connect_bd_intf_net intf:ps7/M_AXI_GP0 intf:ctrl_interconnect/S00_AXI",
        f"connect_bd_intf_net intf:ctrl_interconnect/M00_AXI intf:{KERNEL_NAME}_0/s_axi_control",
        f"connect_bd_intf_net intf:{KERNEL_NAME}_0/m_axi_gmem intf:mem_interconnect/S00_AXI",
        "connect_bd_intf_net intf:mem_interconnect/M00_AXI intf:ps7/S_AXI_HP0",
        f"connect_bd_net pin:{KERNEL_NAME}_0/interrupt pin:ps7/IRQ_F2P",
    ]
    for w in wiring:
        assert w in cmds
    clock_net = next(c for c in cmds if c.startswith("connect_bd_net pin:ps7/FCLK_CLK0"))
    assert f"pin:{KERNEL_NAME}_0/ap_clk" in clock_net and "pin:ps7/S_AXI_HP0_ACLK" in clock_net
    for step in ("assign_bd_address", "validate_bd_design", "launch_runs impl_1 -to_step write_bitstream"):
        assert any(c.startswith(step) for c in cmds)
    assert (out / "overlay" / f"{cfg.name}.bit").read_bytes() == b"bit"
    assert (out / "overlay" / f"{cfg.name}.hwh").read_text() == "<hwh/>"
    assert (out / "reports" / "utilization.rpt").is_file() and (out / "reports" / "timing_summary.rpt").is_file()


def test_vivado_script_refuses_a_faster_fclk(generated, tmp_path):
    cfg, out = generated
    fake_vivado_outputs(tmp_path / "fake")
    run = dry_run(out / "vivado" / "build.tcl", tmp_path, "hls", fake_dir=tmp_path / "fake",
                  fclk=cfg.clock_mhz * 1.1)
    assert run["status"].startswith("ERROR FCLK_CLK0 would run at")
    assert not any(c.startswith("launch_runs") for c in run["cmds"])


#: A Verilog `include of a file by name (the rtl/ sources include generated headers by bare name).
INCLUDE = re.compile(r'^\s*`include\s+"([^"]+)"', re.MULTILINE)


def required_headers(sources: list[Path], search: list[Path]) -> set[str]:
    """The names of every file the sources `include, transitively (headers found in ``search``)."""
    need: set[str] = set()
    todo = list(sources)
    while todo:
        for name in INCLUDE.findall(todo.pop().read_text()):
            if name not in need:
                need.add(name)
                todo += [d / name for d in search if (d / name).is_file()]
    return need


def tcl_words(cmd: str) -> list[str]:
    """The words of a recorded command whose arguments are paths and flags (no spaces inside a word)."""
    return cmd.replace("{", " ").replace("}", " ").split()


def test_vivado_script_packages_the_verilog_twin(generated, tmp_path):
    cfg, out = generated
    fake_vivado_outputs(tmp_path / "fake")
    run = dry_run(out / "vivado" / "build.tcl", tmp_path, "rtl", fake_dir=tmp_path / "fake", fclk=cfg.clock_mhz)
    assert run["status"] == "OK" and run["missing"] == []
    cmds = run["cmds"]
    added = [Path(w) for c in cmds if c.startswith("add_files -norecurse") for w in tcl_words(c)[2:]]
    # every Verilog source: the generated top and the copies of rtl/, all inside the build folder
    sources = sorted(rtl_dir().glob("*.v")) + sorted((out / "rtl").glob("*.v"))
    assert sorted(p.name for p in added if p.suffix == ".v") == sorted(p.name for p in sources)
    assert all(out in p.parents for p in added)
    # every file a source includes (derived from the `include lines, not listed here) is packaged as a header
    headers = required_headers(sources, [out / "rtl", rtl_dir()])
    assert "cpt_gemm_regmap.vh" in headers
    include_dirs = next(tcl_words(c)[2:-1] for c in cmds if c.startswith("set_property include_dirs"))
    ipx_dir = "src"  # -import_files copies the sources and headers together into the IP's src/
    assert any(c.startswith("ipx::package_project") and "-import_files" in c for c in cmds)
    for name in headers:
        path = next(p for p in added if p.name == name)
        assert f"set_property file_type {{Verilog Header}} {path}" in cmds, name
        assert str(path.parent) in include_dirs, name
        for group in ("xilinx_anylanguagesynthesis", "xilinx_anylanguagebehavioralsimulation"):
            assert f"set_property is_include true ipxfile:{group}:{ipx_dir}/{name}" in cmds, name
    assert any(c.startswith("ipx::package_project") and "-vendor cpt-hw.org -library rtl" in c for c in cmds)
    assert f"create_bd_cell -type ip -vlnv {vt.RTL_IP.vlnv} {KERNEL_NAME}_0" in cmds
    # the packaging project is closed before the overlay project is created
    assert cmds.index("close_project") < max(i for i, c in enumerate(cmds) if c.startswith("create_project"))


def test_build_folder_can_be_moved(generated, tmp_path):
    """No generated script names the original build folder or the source tree: a copy of the build
    folder elsewhere, with the original gone, runs every script from its new place."""
    cfg, out = generated
    original, moved = tmp_path / "original", tmp_path / "elsewhere" / "moved"
    shutil.copytree(out, original)
    shutil.copytree(original, moved)
    shutil.rmtree(original)
    for f in tcl_files(moved):
        text = f.read_text()
        for absolute in (str(original), str(out), str(source_root())):
            assert absolute not in text, f"{f.name} names {absolute}"
    work = tmp_path / "work"
    work.mkdir()
    for tool in ("vitis_hls", "vivado_hls"):
        run = dry_run(moved / "hls" / f"{tool}.tcl", work)
        assert run["status"] == "OK" and run["missing"] == []
        assert [c for c in run["cmds"] if c.startswith("add_files")]
        for c in run["cmds"]:
            if c.startswith("add_files"):
                paths = [w.removeprefix("-I") for w in tcl_words(c) if w.startswith(("/", "-I/"))]
                assert paths and all(moved in Path(p).parents for p in paths), c
    fake_vivado_outputs(tmp_path / "fake")
    run = dry_run(moved / "vivado" / "build.tcl", work, "rtl", fake_dir=tmp_path / "fake", fclk=cfg.clock_mhz)
    assert run["status"] == "OK" and run["missing"] == []
    added = [w for c in run["cmds"] if c.startswith("add_files") for w in tcl_words(c)[2:]]
    assert added and all(moved in Path(p).parents for p in added)
    assert (moved / "overlay" / f"{cfg.name}.bit").is_file()


def test_vivado_script_without_verilog_says_so(generated, tmp_path):
    """A copy of the generated tree whose generated top or a datapath copy is missing fails with one line."""
    _, out = generated
    copy = tmp_path / "gen"
    shutil.copytree(out, copy)
    (copy / "vivado" / vt.DATAPATH / "pe.v").unlink()
    run = dry_run(copy / "vivado" / "build.tcl", tmp_path, "rtl", fake_dir=tmp_path, fclk=0)
    assert run["status"].startswith(f"ERROR no pe.v in {copy / 'vivado' / vt.DATAPATH}: run `cpt-hw generate`")
    for v in (copy / "rtl").glob("*.v"):
        v.unlink()
    run = dry_run(copy / "vivado" / "build.tcl", tmp_path, "rtl", fake_dir=tmp_path, fclk=0)
    assert run["status"] == f"ERROR no Verilog in {copy / 'rtl'}: generate the rtl target first"
