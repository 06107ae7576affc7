"""The top level cpt_gemm: its testbench (tb.py), system tests and runner (test_cpt_gemm.py), bench driver."""
