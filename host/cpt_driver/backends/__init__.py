"""Device backends: ``emu`` (in-process emulation), ``pynq`` (ZC706 overlay), ``rtl`` (Verilog under cocotb).

Each is imported only when chosen, so the driver core needs nothing beyond numpy.
"""
