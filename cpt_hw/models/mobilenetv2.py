"""MobileNetV2 for CIFAR (32x32), as the CPT authors' code adapts it.

Changes against the ImageNet network (theirs, kept): stem conv stride 1 and the second stage stride 1,
so the last feature map is 4x4; average pooling over it and a float linear classifier.  Every conv is a
:class:`QConv2d` (expand 1x1, depthwise 3x3, project 1x1, the 1x1 shortcut convs, the stem and the final
1x1 conv).  The authors keep the depthwise convs at a fixed 8/16-bit precision (their ``DWS_BITS``);
here they follow the schedule like every other layer, since the accelerator's errors are at most 8 bits.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nn import QConv2d

#: (expansion, out_planes, blocks, stride) per stage.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
          (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """expand 1x1 - depthwise 3x3 - project 1x1 (BN after each, ReLU after the first two), + shortcut
    when stride is 1 (a 1x1 conv + BN when the width changes)."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        planes = expansion * in_planes
        self.stride = stride
        self.conv1 = QConv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = QConv2d(planes, planes, 3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = QConv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut: nn.Module | None = None
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(QConv2d(in_planes, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 1:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return out


class CifarMobileNetV2(nn.Module):
    """(B, 3, 32, 32) -> (B, num_classes) logits."""

    input_shape = (3, 32, 32)

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = QConv2d(3, 32, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        layers, in_planes = [], 32
        for expansion, out_planes, blocks, stride in STAGES:
            for i in range(blocks):
                layers.append(InvertedResidual(in_planes, out_planes, expansion, stride if i == 0 else 1))
                in_planes = out_planes
        self.layers = nn.Sequential(*layers)
        self.conv2 = QConv2d(320, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, num_classes)  # float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(self.layers(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))
