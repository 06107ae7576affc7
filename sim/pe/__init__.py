"""cocotb unit test of rtl/pe.v and its pytest runner (test_pe.py)."""
