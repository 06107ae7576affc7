"""cpt-hw: Cyclic Precision Training on a runtime-reconfigurable-precision FPGA systolic array."""

__version__ = "0.1.0"
