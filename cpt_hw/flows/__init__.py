"""Verification and implementation flows over the generated artefacts: RTL simulation (cocotb),
HLS C-simulation (g++), resources (Yosys), the bitstream flow (Vivado) and its report checks."""
