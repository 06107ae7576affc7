"""``cpt_hw.golden`` is :mod:`cpt_hw.hw.golden`: the import path ARCHITECTURE.md and docs/driver.md name keeps working."""

import sys

from .hw import golden

sys.modules[__name__] = golden
