"""Inception-ResNet-v2 for 299x299 images, as MXNet's `symbols/inception-resnet-v2.py`: Szegedy et al.,
"Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning".

MXNet leaves the layers unnamed, so they carry its automatic names in creation order: `convolution<n>`
(with bias) and `batchnorm<n>` (MXNet's defaults: eps 1e-3, fixed gamma) for the n-th unit, and the
classifier `fullyconnected0`; the layers therefore live flat on the network. MXNet's quirks are kept: 129
channels in the 17x17 blocks and their (1,2)/(2,1) paddings.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import parse_image_shape
from symbols.layers import C, Unit, avg_pool, build_steps, global_avg_pool, max_pool, run_steps

# Units take MXNet's automatic numbers in creation order, so the specs leave their names empty.
STEM = [
    C("", 32, 3, 2), C("", 32, 3), C("", 64, 3, pad=1), max_pool(3, 2),
    C("", 80), C("", 192, 3), max_pool(3, 2),
    ([C("", 96)],
     [C("", 48), C("", 64, 5, pad=2)],
     [C("", 64), C("", 96, 3, pad=1), C("", 96, 3, pad=1)],
     [avg_pool(3, 1, 1), C("", 64)]),
]
BLOCK35 = ([C("", 32)],
           [C("", 32), C("", 32, 3, pad=1)],
           [C("", 32), C("", 48, 3, pad=1), C("", 64, 3, pad=1)])
REDUCTION_A = ([C("", 384, 3, 2)], [C("", 256), C("", 256, 3, pad=1), C("", 384, 3, 2)], [max_pool(3, 2)])
BLOCK17 = ([C("", 192)], [C("", 129), C("", 160, (1, 7), pad=(1, 2)), C("", 192, (7, 1), pad=(2, 1))])
REDUCTION_B = ([C("", 256), C("", 384, 3, 2)], [C("", 256), C("", 288, 3, 2)],
               [C("", 256), C("", 288, 3, pad=1), C("", 320, 3, 2)], [max_pool(3, 2)])
BLOCK8 = ([C("", 192)], [C("", 192), C("", 224, (1, 3), pad=(0, 1)), C("", 256, (3, 1), pad=(1, 0))])


class ScaledResidual:
    """x + scale * conv1x1(towers(x)) (the 1x1 unit without activation), then ReLU unless `act` is False."""

    def __init__(self, towers: list, project: Unit, scale: float, act: bool):
        self.towers, self.project, self.scale, self.act = towers, project, scale, act

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale * self.project(run_steps(x, self.towers))
        return F.relu(x) if self.act else x


class InceptionResNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        numbers = itertools.count()

        def make_unit(_: str, *args, act=F.relu) -> Unit:
            n = next(numbers)
            return Unit(self, f"convolution{n}", f"batchnorm{n}", *args, bias=True, fix_gamma=True, act=act)

        def residual(towers: tuple, channels: int, scale: float, act: bool = True) -> ScaledResidual:
            steps, width = build_steps(channels, [towers], make_unit)
            return ScaledResidual(steps, make_unit("", width, channels, 1, 1, 0, act=None), scale, act)

        self.steps, channels = build_steps(in_channels, STEM, make_unit)                 # 320 channels
        self.steps += [residual(BLOCK35, channels, 0.17) for _ in range(10)]
        reduction, channels = build_steps(channels, [REDUCTION_A], make_unit)           # 1088
        self.steps += reduction + [residual(BLOCK17, channels, 0.1) for _ in range(20)]
        reduction, channels = build_steps(channels, [REDUCTION_B], make_unit)           # 2080
        self.steps += reduction + [residual(BLOCK8, channels, 0.2) for _ in range(9)]
        self.steps += [residual(BLOCK8, channels, 1.0, act=False), make_unit("", channels, 1536, 1, 1, 0)]
        self.dropout = nn.Dropout(0.2)
        self.fullyconnected0 = nn.Linear(1536, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fullyconnected0(self.dropout(global_avg_pool(run_steps(x, self.steps))))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,299,299", dtype: str = "float32", **kwargs) -> nn.Module:
    """Inception-ResNet-v2; `dtype` is the training loop's (autocast)."""
    return InceptionResNetV2(num_classes, parse_image_shape(image_shape)[0])
