"""cocotb unit test of rtl/and_popcount.v and its pytest runner (test_and_popcount.py)."""
