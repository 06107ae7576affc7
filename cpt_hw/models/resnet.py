"""CIFAR ResNets as the CPT paper counts them: basic blocks, n = (depth - 2) / 6 blocks per stage.

Three stages of 16, 32 and 64 channels (the second and third start with stride 2), a 3x3 stem conv
3 -> 16, global average pooling and a float FC layer.  Every convolution is a :class:`QConv2d`: the stem
and the 1x1 stride-2 downsample convs of the shortcuts are quantized too, as in the authors' code.

Depth = 6 n + 2 for every name, the paper's "ResNet-164" included: its cost (~6.0e8 GBitOPs at 8/8)
matches a basic-block ResNet with n = 27 (380.6 M conv MACs per 32x32 sample), not He et al.'s
bottleneck ResNet-164 (~3.9e8).  See cpt-reference-facts.md.

Parameter counts are He et al.'s (ResNet-20: 272,474 with 10 classes); the authors' code also creates an
unused BatchNorm in every block without a downsample path, which changes nothing but its parameter count.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..nn import QConv2d

#: Depths the paper and its code name, and the blocks per stage each means.
DEPTHS = {20: 3, 38: 6, 74: 12, 110: 18, 152: 25, 164: 27}


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut (identity, or quantized 1x1 conv + BN), then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = QConv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = QConv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(QConv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-``depth`` for 32x32 inputs: (B, 3, 32, 32) -> (B, num_classes) logits."""

    input_shape = (3, 32, 32)

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth = {depth}: known CIFAR ResNet depths are {sorted(DEPTHS)}")
        n = DEPTHS[depth]
        self.depth = depth
        self.conv1 = QConv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride=2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)  # float, as in the paper
        init_like_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.blocks(x)).flatten(1)
        return self.fc(x)


def init_like_reference(model: nn.Module) -> None:
    """The authors' initialisation: conv N(0, 2/(k k C_out)), BN (1, 0), FC N(0, 2/(C_in C_out))."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.weight.shape[0] * m.weight.shape[1])))
