"""VGG 11/13/16/19, as MXNet's `symbols/vgg.py`: Simonyan and Zisserman, "Very Deep Convolutional Networks
for Large-Scale Image Recognition". 3x3 convolutions `conv<stage>_<i>` (with bias), optionally each followed
by a BatchNorm `bn<stage>_<i>` (MXNet's defaults: eps 1e-3, fixed gamma), ReLU; 2x2 max-pooling after each
stage; classifier fc6, fc7 (ReLU, dropout 0.5) and fc8. The layers live flat on the network, as MXNet names.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import UserError

from common.cli import parse_image_shape
from symbols.layers import Unit

WIDTHS = [64, 128, 256, 512, 512]
CONVS_PER_STAGE = {11: [1, 1, 2, 2, 2], 13: [2, 2, 2, 2, 2], 16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}


class VGG(nn.Module):
    def __init__(self, num_classes: int, num_layers: int, batch_norm: bool = False,
                 image_shape: tuple[int, int, int] = (3, 224, 224)):
        super().__init__()
        channels, height, width = image_shape
        self.stages = []
        for stage, (num_convs, out) in enumerate(zip(CONVS_PER_STAGE[num_layers], WIDTHS), start=1):
            units = []
            for i in range(1, num_convs + 1):
                bn_name = f"bn{stage}_{i}" if batch_norm else None
                units.append(Unit(self, f"conv{stage}_{i}", bn_name, channels, out, 3, 1, 1, bias=True,
                                  fix_gamma=True))
                channels = out
            self.stages.append(units)
        self.fc6 = nn.Linear(channels * (height // 32) * (width // 32), 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for units in self.stages:
            for unit in units:
                x = unit(x)
            x = F.max_pool2d(x, 2, 2)
        x = self.dropout(F.relu(self.fc6(x.flatten(1))))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32",
               batch_norm: bool = False, **kwargs) -> nn.Module:
    """VGG of `num_layers` (11, 13, 16, 19), BatchNorm if `batch_norm`; `dtype` is the training loop's."""
    if num_layers not in CONVS_PER_STAGE:
        raise UserError(f"VGG has 11, 13, 16 or 19 layers, not {num_layers}")
    model = VGG(num_classes, num_layers, bool(batch_norm), parse_image_shape(image_shape))
    return model
