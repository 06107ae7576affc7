"""cpt_hw.train.sgd.SGD: torch.optim.SGD's single-tensor arithmetic bit for bit, its state dict layout, and no
torch._dynamo / sympy import (the 68 MB it saves on the board's host side)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cpt_hw.train.sgd import SGD

ROOT = Path(__file__).resolve().parent.parent


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 10))


def _grads(model: torch.nn.Module, step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


def _train(opt, model: torch.nn.Module, steps: range, lr_at=lambda t: 0.1) -> None:
    for t in steps:
        opt.param_groups[0]["lr"] = lr_at(t)
        opt.zero_grad(set_to_none=True)
        _grads(model, t)
        if t == 2:  # a parameter without a gradient is skipped, its momentum kept
            model[0].bias.grad = None
        opt.step()


@pytest.mark.parametrize("options", [
    dict(momentum=0.9, weight_decay=1e-4),
    dict(momentum=0.9, weight_decay=5e-4, nesterov=True),
    dict(momentum=0.9, dampening=0.1, weight_decay=1e-4),
    dict(momentum=0.0, weight_decay=1e-4),
    dict(momentum=0.9),
])
def test_parameters_bit_identical_to_torch_optim_sgd(options):
    ours, ref = _model(), _model()
    a = SGD(ours.parameters(), lr=0.1, **options)
    b = torch.optim.SGD(ref.parameters(), lr=0.1, foreach=False, **options)
    lr_at = lambda t: 0.1 if t < 4 else 0.01  # noqa: E731 (the trainer's step decay changes lr in the group)
    _train(a, ours, range(6), lr_at)
    _train(b, ref, range(6), lr_at)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for i in sb["state"]:
        assert torch.equal(sa["state"][i]["momentum_buffer"], sb["state"][i]["momentum_buffer"])
    sb["param_groups"][0]["foreach"] = None  # ours saves torch's default (for CPU tensors: foreach=False)
    assert sa["param_groups"] == sb["param_groups"]


def test_torch_default_on_cpu_is_the_single_tensor_path():
    """What the other tests compare against: torch.optim.SGD's default for CPU tensors equals foreach=False."""
    a, b = _model(), _model()
    _train(torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4), a, range(4))
    _train(torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=False), b, range(4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_state_dict_round_trips_through_torch_optim_sgd():
    """A checkpoint written with either optimizer resumes with the other, bit for bit."""
    opts = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
    ref = _model()
    b = torch.optim.SGD(ref.parameters(), **opts)
    _train(b, ref, range(3))
    ours = _model()
    ours.load_state_dict(ref.state_dict())
    a = SGD(ours.parameters(), lr=0.5, momentum=0.9)       # group values come from the state dict
    a.load_state_dict(b.state_dict())
    assert a.param_groups[0]["lr"] == 0.1 and a.param_groups[0]["weight_decay"] == 1e-4
    _train(a, ours, range(3, 6))
    _train(b, ref, range(3, 6))
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    back = _model()
    back.load_state_dict(ours.state_dict())
    c = torch.optim.SGD(back.parameters(), lr=0.5)
    c.load_state_dict(copy.deepcopy(a.state_dict()))  # as from a checkpoint: torch's load keeps the tensors
    _train(a, ours, range(6, 8))
    _train(c, back, range(6, 8))
    for p, q in zip(ours.parameters(), back.parameters()):
        assert torch.equal(p, q)


def test_loaded_buffers_are_copies():
    model = _model()
    a = SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(a, model, range(2))
    saved = a.state_dict()
    b = SGD(_model().parameters(), lr=0.1, momentum=0.9)
    b.load_state_dict(saved)
    buf = next(iter(saved["state"].values()))["momentum_buffer"]
    assert not any(s["momentum_buffer"].data_ptr() == buf.data_ptr() for s in b.state.values())


def test_zero_grad_keeps_or_drops_gradients():
    model = _model()
    a = SGD(model.parameters(), lr=0.1)
    _grads(model, 0)
    a.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    a.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-0.1), "lr -0.1: must be a finite number >= 0"),
    (dict(lr=float("nan")), "lr nan"),
    (dict(lr=0.1, momentum=-1.0), "momentum -1.0"),
    (dict(lr=0.1, weight_decay=float("inf")), "weight_decay inf"),
    (dict(lr=0.1, nesterov=True), "nesterov with momentum 0.0 and dampening 0.0"),
])
def test_bad_options_are_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGD(_model().parameters(), **kwargs)


def test_mismatched_state_dicts_are_refused():
    model = _model()
    a = SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(a, model, range(1))
    sd = a.state_dict()
    with pytest.raises(ValueError, match="6 parameters, this optimizer has 2"):
        SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1).load_state_dict(sd)
    other = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(3)])
    with pytest.raises(ValueError, match=r"momentum buffer of parameter 0 has shape \(8, 3, 3, 3\), the "
                                         r"parameter \(2, 2\)"):
        SGD(other.parameters(), lr=0.1).load_state_dict(sd)
    sd["param_groups"][0]["maximize"] = True
    with pytest.raises(ValueError, match="maximize=True is not supported"):
        SGD(model.parameters(), lr=0.1).load_state_dict(sd)


def test_no_dynamo_or_sympy_import():
    """Constructing it and stepping leaves torch._dynamo and sympy unimported (torch.optim.SGD's constructor
    imports both), and so does importing the trainer.  In a subprocess: this test process has them already."""
    code = ("import sys, torch\n"
            "from cpt_hw.train.sgd import SGD\n"
            "from cpt_hw.train import Trainer  # the trainer's CPU path: cpt_hw.fast imported only when used\n"
            "m = torch.nn.Linear(4, 4)\n"
            "opt = SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)\n"
            "m(torch.randn(2, 4)).sum().backward()\n"
            "opt.step()\n"
            "print(sorted(k for k in ('torch._dynamo', 'sympy') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_trainer_optimizer_choice():
    """make_sgd: this SGD on the CPU off the fast path; torch.optim.SGD for the fast path and CUDA."""
    from cpt_hw.train.sgd import make_sgd

    opts = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert type(make_sgd(_model().parameters(), device=torch.device("cpu"), fast=False, **opts)) is SGD
    assert isinstance(make_sgd(_model().parameters(), device=torch.device("cpu"), fast=True, **opts),
                      torch.optim.SGD)
    assert isinstance(make_sgd(_model().parameters(), device=torch.device("cuda"), fast=False, **opts),
                      torch.optim.SGD)
