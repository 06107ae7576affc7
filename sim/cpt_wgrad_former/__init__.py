"""cocotb unit test of rtl/cpt_wgrad_former.v and its pytest runner (test_cpt_wgrad_former.py)."""
