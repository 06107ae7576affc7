"""Helpers shared by the cocotb testbenches: the config under test, records, operand packing."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import numpy as np

from cpt_driver import layout
from cpt_hw.hw.config import HardwareConfig
from cpt_hw.hw.golden import operand_range

ENV_CONFIG = "CPT_HW_CONFIG"
ENV_RECORDS = "CPT_HW_SIM_RECORDS"


def sim_config() -> HardwareConfig:
    """The config the design was built for (set by cpt_hw.flows.rtl_sim; the sim preset otherwise)."""
    raw = os.environ.get(ENV_CONFIG)
    return HardwareConfig.from_mapping(json.loads(raw)) if raw else HardwareConfig.from_preset("sim")


def record(**fields: Any) -> None:
    """Append one JSON record (e.g. one GEMM's cycles and useful ops) for cpt_hw.flows.rtl_sim / make sim."""
    path = os.environ.get(ENV_RECORDS)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(fields) + "\n")


def random_operand(rng: np.random.Generator, shape: tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    lo, hi = operand_range(bits, signed)
    # Bias towards the extremes now and then: they exercise the top plane and the carries.
    x = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    if rng.random() < 0.3:
        x = np.where(rng.random(shape) < 0.5, lo, hi)
    return x


def plane_words(rows: np.ndarray, bits: int, dot_width: int) -> list[list[list[int]]]:
    """(R, K) integers -> words[r][plane][w] as Python ints (D bits, element k at bit k - w D)."""
    packed = layout.pack_rows(rows, bits, dot_width)  # (R, bits, Kw * D/8)
    wb = dot_width // 8
    r, p, nbytes = packed.shape
    return [[[int.from_bytes(packed[ri, pi, w * wb:(w + 1) * wb].tobytes(), "little")
              for w in range(nbytes // wb)] for pi in range(p)] for ri in range(r)]


def to_signed(value: int, width: int) -> int:
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def seeded_rng(name: str) -> np.random.Generator:
    """numpy RNG seeded from cocotb's random seed and the test name (reproducible per seed)."""
    return np.random.default_rng([random.getrandbits(32), sum(map(ord, name))])
