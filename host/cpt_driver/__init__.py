"""cpt_driver: host driver for the cpt-hw GEMM accelerator.

Depends only on numpy (and pynq for the board backend), so it installs on a PYNQ image without torch.
"""

from . import layout

__all__ = ["layout"]
