"""MobileNetV2, as MXNet's `symbols/mobilenetv2.py`: Sandler et al., "MobileNetV2: Inverted Residuals and
Linear Bottlenecks". Width `multiplier` scales every layer (the last 1x1 only above 1). BatchNorms have eps
1e-5 and a trained gamma; activations are ReLU6.

MXNet's names join with dashes (`seq-1-block0-exp-conv2d_weight`), which no module nesting can give, so the
layers live flat on the network under those names (reach them with `getattr`); classifier `fc`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import UserError

from common.cli import parse_image_shape
from symbols.layers import Unit, global_avg_pool

BN_EPS = 1e-5
# (expansion t, output channels c, units n, first stride s) of each sequence `seq-<i>`
SEQUENCES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]


class InvertedResidual:
    """1x1 expansion, 3x3 depthwise, linear 1x1 projection; adds the input when `shortcut` (every unit of a
    sequence but the first, as MXNet's)."""

    def __init__(self, units: list[Unit], shortcut: bool):
        self.units, self.shortcut = units, shortcut

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for unit in self.units:
            y = unit(y)
        return x + y if self.shortcut else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, multiplier: float = 1.0, in_channels: int = 3):
        super().__init__()

        def unit(prefix: str, *args, groups: int = 1, act=F.relu6) -> Unit:
            return Unit(self, f"{prefix}-conv2d", f"{prefix}-batchnorm", *args, groups=groups, eps=BN_EPS,
                        act=act)

        channels = int(round(32 * multiplier))
        self.steps = [unit("first-3x3-conv", in_channels, channels, 3, 2, 1)]
        for i, (t, c, n, s) in enumerate(SEQUENCES):
            out = int(round(c * multiplier))
            for j in range(n):
                prefix = f"seq-{i}-block{j}"
                expanded = int(round(channels * t))
                self.steps.append(InvertedResidual([
                    unit(f"{prefix}-exp", channels, expanded, 1),
                    unit(f"{prefix}-depthwise", expanded, expanded, 3, 1 if j else s, 1, groups=expanded),
                    unit(f"{prefix}-linear", expanded, out, 1, act=None),
                ], shortcut=j > 0))
                channels = out
        last = int(1280 * multiplier) if multiplier > 1.0 else 1280
        self.steps.append(unit("last-1x1-conv", channels, last, 1))
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return self.fc(global_avg_pool(x))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32",
               multiplier: float = 1.0, **kwargs) -> nn.Module:
    """MobileNetV2 of width `multiplier`; `dtype` is the training loop's (autocast)."""
    if multiplier <= 0:
        raise UserError(f"MobileNetV2 multiplier must be positive, not {multiplier}")
    return MobileNetV2(num_classes, multiplier, parse_image_shape(image_shape)[0])
