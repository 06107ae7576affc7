"""The generator: one validated config rendered into every hardware artefact (HLS C++, Verilog twin,
Vivado TCL, register-map exports, HLS test vectors)."""
