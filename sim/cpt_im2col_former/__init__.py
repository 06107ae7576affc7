"""cocotb unit test of rtl/cpt_im2col_former.v and its pytest runner (test_cpt_im2col_former.py)."""
