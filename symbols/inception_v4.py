"""Inception-v4 for 299x299 images, as MXNet's `symbols/inception-v4.py`: Szegedy et al., "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning". Units are convolution, BatchNorm
(eps 1e-3, fixed gamma) and ReLU, named as MXNet's (`in1A` holds `conv4_3*3`, so its weight is
`in1A_conv4_3*3_conv2d_weight`; reach such units with `getattr`). As in MXNet, the final 8x8 average pooling
pads by 1, leaving 3x3 positions for the classifier.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import parse_image_shape
from symbols.layers import C, Towers, avg_pool, max_pool

STEM = [
    C("conv1_3*3", 32, 3, 2), C("conv2_3*3", 32, 3), C("conv3_3*3", 64, 3, pad=1),
    ([max_pool(3, 2)], [C("conv4_3*3", 96, 3, 2)]),
    ([C("conv5_1*1", 64), C("conv6_3*3", 96, 3)],
     [C("conv7_1*1", 64), C("conv8_7*1", 64, (7, 1), pad=(3, 0)), C("conv9_1*7", 64, (1, 7), pad=(0, 3)),
      C("conv10_3*3", 96, 3)]),
    ([C("conv11_3*3", 192, 3, 2)], [max_pool(3, 2)]),
]

INCEPTION_A = [(
    [avg_pool(3, 1, 1), C("conv1_1*1", 96)],
    [C("conv2_1*1", 96)],
    [C("conv3_1*1", 64), C("conv4_3*3", 96, 3, pad=1)],
    [C("conv5_1*1", 64), C("conv6_3*3", 96, 3, pad=1), C("conv7_3*3", 96, 3, pad=1)],
)]

REDUCTION_A = [(
    [max_pool(3, 2)],
    [C("conv1_3*3", 384, 3, 2)],
    [C("conv2_1*1", 192), C("conv3_3*3", 224, 3, pad=1), C("conv4_3*3", 256, 3, 2)],
)]

# MXNet's names (e.g. `conv5_1*7` for a 7x1 kernel) are kept even where they disagree with the kernels.
INCEPTION_B = [(
    [avg_pool(3, 1, 1), C("conv1_1*1", 128)],
    [C("conv2_1*1", 384)],
    [C("conv3_1*1", 192), C("conv4_1*7", 224, (1, 7), pad=(0, 3)), C("conv5_1*7", 256, (7, 1), pad=(3, 0))],
    [C("conv6_1*1", 192), C("conv7_1*7", 192, (1, 7), pad=(0, 3)), C("conv8_7*1", 224, (7, 1), pad=(3, 0)),
     C("conv9_1*7", 224, (1, 7), pad=(0, 3)), C("conv10_7*1", 256, (7, 1), pad=(3, 0))],
)]

REDUCTION_B = [(
    [max_pool(3, 2)],
    [C("conv1_1*1", 192), C("conv2_3*3", 192, 3, 2)],
    [C("conv3_1*1", 256), C("conv4_1*7", 256, (1, 7), pad=(0, 3)), C("conv5_7*1", 320, (7, 1), pad=(3, 0)),
     C("conv6_3*3", 320, 3, 2)],
)]

INCEPTION_C = [(
    [avg_pool(3, 1, 1), C("conv1_1*1", 256)],
    [C("conv2_1*1", 256)],
    [C("conv3_1*1", 384),
     ([C("conv4_3*1", 256, (1, 3), pad=(0, 1))], [C("conv5_1*3", 256, (3, 1), pad=(1, 0))])],
    [C("conv6_1*1", 384), C("conv7_1*3", 448, (1, 3), pad=(0, 1)), C("conv8_3*1", 512, (3, 1), pad=(1, 0)),
     ([C("conv9_1*3", 256, (3, 1), pad=(1, 0))], [C("conv10_3*1", 256, (1, 3), pad=(0, 1))])],
)]

BLOCKS = ([("in_stem", STEM)] + [(f"in{i}A", INCEPTION_A) for i in range(1, 5)] + [("re1A", REDUCTION_A)]
          + [(f"in{i}B", INCEPTION_B) for i in range(1, 8)] + [("re1B", REDUCTION_B)]
          + [(f"in{i}C", INCEPTION_C) for i in range(1, 4)])


class InceptionV4(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        channels = in_channels
        self.blocks = []
        for name, spec in BLOCKS:
            block = Towers(channels, spec)
            self.add_module(name, block)
            self.blocks.append(block)
            channels = block.out_channels
        self.dropout = nn.Dropout(0.2)
        self.fc1 = nn.Linear(channels * 3 * 3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = F.avg_pool2d(x, 8, 1, 1)
        return self.fc1(self.dropout(x).flatten(1))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,299,299", dtype: str = "float32", **kwargs) -> nn.Module:
    """Inception-v4; `dtype` is the training loop's (autocast)."""
    return InceptionV4(num_classes, parse_image_shape(image_shape)[0])
