"""cocotb testbenches of the Verilog twin (``rtl/``), laid out as verilog-axis lays out its ``tb/``.

One directory per RTL design, named after the module it tests; each holds ``test_<design>.py``: the
design's cocotb tests and, below them, the pytest runner ``test_<design>(...)`` whose
``pytest.mark.parametrize`` lists the legal parameter sets (test geometries, simulators, back-pressure)
and which of them are slow.  pytest collects the runners (``testpaths`` in pyproject.toml); inside the
simulator, :mod:`cpt_hw.flows.rtl_sim` imports the same file as the cocotb test module.

* ``and_popcount/``, ``pe/``, ``pe_array/``: unit tests of the datapath;
* ``cpt_gemm/``: the top level -- ``tb.py`` (the reusable testbench :class:`CptGemmTB` and its call
  helpers), ``test_cpt_gemm.py`` (system tests, cycle model against the RTL), ``test_cpt_gemm_conv.py``
  (convolution calls of a config with the convolution engine, against the emulated device),
  ``bench_cpt_gemm.py`` (the GEMMs bench/bench_rtl.py asks for), ``bench_cpt_gemm_conv.py`` (the conv calls
  bench/bench_conv_twin.py asks for);
* shared here: ``tbutil.py`` (config under test, records, operands, seeds), ``plane_order.py`` (the
  order the controller feeds plane pairs in), ``runner.py`` (the pytest side: fixed seed, run and check).
"""
