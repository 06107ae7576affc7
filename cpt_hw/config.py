"""``cpt_hw.config`` is :mod:`cpt_hw.hw.config`: the import path ARCHITECTURE.md and docs/driver.md name keeps working."""

import sys

from .hw import config

sys.modules[__name__] = config
