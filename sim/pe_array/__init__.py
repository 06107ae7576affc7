"""cocotb unit test of rtl/pe_array.v and its pytest runner (test_pe_array.py)."""
