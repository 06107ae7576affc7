"""Kernel-time breakdown of one training iteration (eager, so kernels are attributed): where the time goes.

    python bench/profile_gpu_step.py --model resnet74 [--mode cpt_fast|fp32] [--channels-last]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpt_hw import nn as cnn  # noqa: E402
from cpt_hw.fast import DevicePrecision, enable_fast  # noqa: E402
from cpt_hw.models import build_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet74")
    p.add_argument("--mode", default="cpt_fast", choices=["cpt_fast", "cpt_fast_hw", "fp32"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--stacks", type=int, default=0, metavar="N",
                   help="also group the kernels by the innermost N Python frames that launched them (which "
                        "layer or quantizer op a kernel belongs to)")
    a = p.parse_args()
    torch.manual_seed(0)
    model = build_model(a.model, 10).cuda()
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(a.batch, 3, 32, 32, device="cuda").contiguous(memory_format=mf)
    y = torch.randint(0, 10, (a.batch,), device="cuda")
    if a.mode.startswith("cpt"):
        dp = DevicePrecision("cuda", hardware=a.mode.endswith("hw"))
        dp.set(5, 8, 0)
        enable_fast(model, dp)
    cnn.set_precision(fw=0, bw=0)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    n = 5
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA] if a.stacks else [ProfilerActivity.CUDA],
                 with_stack=bool(a.stacks)) as prof:
        for _ in range(n):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    total = sum(e.self_device_time_total for e in events) / n / 1000
    count = sum(e.count for e in events if e.self_device_time_total > 0) / n
    print(f"{a.model} {a.mode} cl={a.channels_last}: kernel time {total:.2f} ms/iter, {count:.0f} kernels/iter")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=a.rows, max_name_column_width=70))
    if a.stacks:
        print(prof.key_averages(group_by_stack_n=a.stacks).table(sort_by="self_cuda_time_total", row_limit=a.rows,
                                                                  max_name_column_width=70))
    return 0


if __name__ == "__main__":
    sys.exit(main())
