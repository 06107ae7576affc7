"""Register map exports for the driver and C code: regmap.json, regmap.h, regmap.py."""

from __future__ import annotations

import jinja2

from ..hw.config import HardwareConfig
from ..hw.regmap import register_map


def render(cfg: HardwareConfig, env: jinja2.Environment) -> dict[str, str]:
    rm = register_map(cfg)
    return {
        "regmap.json": rm.to_json(),
        "regmap.h": env.get_template("driver/regmap.h.j2").render(),
        "regmap.py": env.get_template("driver/regmap.py.j2").render(),
    }
