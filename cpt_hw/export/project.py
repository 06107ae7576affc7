"""Turn a folded network into an hls4ml project (Vitis backend, xc7z045) and compile its C++ with g++.

hls4ml is imported here only, late: it pulls in heavy modules and prints; the rest of cpt-hw never needs it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .fold import ExportError, ExportNet
from .precision import TypePlan

#: The ZC706's part (cpt_hw.hw.parts) and the accelerator's clock (zc706 preset: 200 MHz).
PART = "xc7z045ffg900-2"
CLOCK_NS = 5
PROJECT = "cpt_model"
BACKEND = "Vitis"
#: Resource strategy: the multipliers of a layer are reused over its inputs, as a CNN on a 7-series part needs.
STRATEGY = "Resource"
IO_TYPES = {"stream": "io_stream", "parallel": "io_parallel"}


def hls_config(net: ExportNet, input_shape: tuple[int, ...], plan: TypePlan) -> dict[str, Any]:
    """hls4ml's per-layer config with every precision set from ``plan`` (none left to 'auto')."""
    import hls4ml

    with _quiet():
        config = hls4ml.utils.config_from_pytorch_model(net, input_shape, granularity="name", backend=BACKEND,
                                                        default_precision="fixed<32,16>")
    config["Model"]["Strategy"] = STRATEGY
    layers = config["LayerName"]
    unknown = sorted(set(plan.layers) - set(layers))
    if unknown:  # a plan out of step with the traced graph would silently leave layers at the default type
        raise RuntimeError(f"type plan names layers hls4ml did not trace: {unknown[:4]}")
    for name, entry in layers.items():
        precision = entry.setdefault("Precision", {})
        if name in plan.layers:
            precision.update(plan.layers[name])
        elif entry.get("Precision", {}).get("result") == "auto" and name != next(iter(layers)):
            raise RuntimeError(f"type plan has no precision for layer {name!r}")
    first = next(iter(layers))  # the input layer
    layers[first]["Precision"] = {"result": plan.input_type}
    return config


def convert(net: ExportNet, input_shape: tuple[int, ...], plan: TypePlan, out_dir: Path, io_kind: str) -> Any:
    """The hls4ml ModelGraph of ``net`` written to ``out_dir`` (not compiled).  hls4ml's own refusals (a layer
    its front end cannot express) become one :class:`ExportError`."""
    import hls4ml

    config = hls_config(net, input_shape, plan)
    try:
        with _quiet():
            hmodel = hls4ml.converters.convert_from_pytorch_model(
                net, output_dir=str(out_dir), project_name=PROJECT, backend=BACKEND, part=PART,
                clock_period=CLOCK_NS, io_type=IO_TYPES[io_kind], hls_config=config)
            hmodel.write()
    except ExportError:
        raise
    except Exception as e:  # hls4ml raises bare Exception for unsupported layers
        raise ExportError(f"hls4ml cannot convert the model: {str(e).strip().splitlines()[0][:200]}") from None
    return hmodel


def compile_model(hmodel: Any) -> None:
    """g++ build of the project's C++ (hls4ml's compile(): bridge library, no Xilinx tools)."""
    with _quiet():
        hmodel.compile()


def predict(hmodel: Any, x: torch.Tensor) -> np.ndarray:
    """Logits (N, classes) of the compiled C++ model for a float batch (N, C, H, W) in PyTorch's layout."""
    flat = np.ascontiguousarray(x.detach().numpy().reshape(len(x), -1), dtype=np.float64)
    with _quiet():
        out = hmodel.predict(flat)
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)


@contextlib.contextmanager
def _quiet():
    """hls4ml prints its topology and warns freely; keep the CLI's output to its own lines."""
    level = logging.getLogger().level
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger().setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger().setLevel(level)
