"""``cpt_hw.regmap`` is :mod:`cpt_hw.hw.regmap`: the import path ARCHITECTURE.md and docs/driver.md name keeps working."""

import sys

from .hw import regmap

sys.modules[__name__] = regmap
