"""A small CNN for scikit-learn's 8x8 digits: the embedded demo's model (no download, seconds per epoch
even with every GEMM on the emulated accelerator).

(B, 1, 8, 8) -> conv3x3 1->16 -> conv3x3/2 16->32 (4x4) -> conv3x3 32->32 -> global average pool ->
float FC 32->10.  Each conv is a quantized :class:`QConv2d` followed by BN and ReLU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..nn import QConv2d
from .resnet import init_like_reference


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(QConv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DigitsCNN(nn.Module):
    """(B, 1, 8, 8) pixel values (any scale; the trainer normalises) -> (B, num_classes) logits."""

    input_shape = (1, 8, 8)

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv_bn_relu(1, width, 1), _conv_bn_relu(width, 2 * width, 2),
                                      _conv_bn_relu(2 * width, 2 * width, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)  # float
        init_like_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))
