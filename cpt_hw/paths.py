"""Where cpt-hw finds its hardware sources and writes its output.

Resolution rule (one, documented in README): hardware sources (``templates/``, ``rtl/``, ``sim/``)
live in the source tree next to the ``cpt_hw`` package, which `make` installs in editable mode; the
environment variable ``CPT_HW_ROOT`` points elsewhere (e.g. a checkout used from another venv).
Generated files go only under ``<root>/build/<config name>/`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CptHwError


def source_root() -> Path:
    env = os.environ.get("CPT_HW_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parent.parent
    if not (root / "templates").is_dir():
        raise CptHwError(f"hardware sources not found under {root} (set CPT_HW_ROOT to a cpt-hw checkout)")
    return root


def templates_dir() -> Path:
    return source_root() / "templates"


def rtl_dir() -> Path:
    return source_root() / "rtl"


def build_dir(config_name: str) -> Path:
    return source_root() / "build" / config_name
