# cpt-hw: every user-facing job is one target here.  Each creates/refreshes .venv first (idempotent).
#   make demo       train a small CNN with CPT 3-8/8 on the emulated accelerator (no download)
#   make test       the whole test suite (what CI runs)
#   make sim        RTL verification on Icarus and Verilator, with a results table (WAVES=1 dumps waves)
#   make csim       HLS C-simulation with g++ and hls4ml's ap_types
#   make bitstream  Vivado flow for the ZC706 (stops with one line when Vivado is missing)
#   make export-demo  export the demo's trained CNN as an hls4ml project for the xc7z045, g++ check against PyTorch
#   make bench      CPU benchmarks (driver, BitOPs table, RTL utilisation); JSON + markdown into docs/results/

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= zc706
# tools/env.sh puts the venv's Verilator 5.048 (cocotb 2 needs >= 5.036) ahead of Debian's.
ENV := source tools/env.sh &&
PYTEST_WORKERS ?= 2

.PHONY: setup demo export-demo test test-all sim csim bitstream bench generate lint clean

setup:
	@tools/setup.sh

generate: setup
	@$(ENV) $(PY) -m cpt_hw generate --preset $(PRESET)

demo: setup
	@$(ENV) $(PY) -m cpt_hw demo --preset $(PRESET)

# The demo's checkpoint (training it first if missing) -> build/demo/hls4ml, compiled with g++ and compared with
# the quantized PyTorch model on the 360 digits test images (about a minute of g++; docs/inference.md).
export-demo: setup
	@[ -f build/demo/checkpoint.pt ] || $(ENV) $(PY) -m cpt_hw demo
	@$(ENV) $(PY) -m cpt_hw export build/demo/checkpoint.pt --out build/demo/hls4ml --check 360

test: setup
	@$(ENV) $(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

test-all: setup
	@$(ENV) $(PY) -m pytest -q -n $(PYTEST_WORKERS)

# HLS C simulation (g++ + hls4ml's ap_types) of the sim and zc706 configs, bit-exact against the golden model.
CSIM_PRESETS ?= sim zc706
csim: setup
	@for p in $(CSIM_PRESETS); do $(ENV) $(PY) -m cpt_hw csim --preset $$p || exit $$?; done

# Vitis/Vivado HLS + Vivado to build/$(PRESET)/overlay/$(PRESET).{bit,hwh}; RTL=1 packages the Verilog twin.
bitstream: setup
	@$(ENV) $(PY) -m cpt_hw bitstream --preset $(PRESET) $(if $(RTL),--rtl)

# RTL: the cocotb suite on both simulators (SIM_PRESET, default the small "sim" config), Verilator lint.
SIM_PRESET ?= sim
sim: setup
	@$(ENV) $(PY) -m cpt_hw sim --preset $(SIM_PRESET) $(if $(filter-out 0,$(WAVES)),--waves,)

lint: setup
	@$(ENV) $(PY) -m cpt_hw lint --preset sim && $(ENV) $(PY) -m cpt_hw lint --preset zc706

# CPU benchmarks; the GPU ones (bench_gpu_step.py, bench_accuracy.py) need CUDA: see docs/gpu.md.
bench: setup
	@$(ENV) $(PY) bench/bench_bitops_table.py --out docs/results
	@$(ENV) $(PY) bench/bench_driver.py
	@$(ENV) $(PY) bench/bench_rtl.py

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
