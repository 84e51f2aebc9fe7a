"""MobileNet (v1), as MXNet's `symbols/mobilenet.py`: Howard et al., "MobileNets: Efficient Convolutional
Neural Networks for Mobile Vision Applications". Depthwise 3x3 (`conv_<i>_dw`) and pointwise 1x1
(`conv_<i>`) units, each convolution, BatchNorm (eps 1e-3, fixed gamma) and ReLU; width multiplier `alpha`
in 0.25, 0.5, 0.75, 1. The final average pooling spans height/32 positions (MXNet's `resolution / 32`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import UserError

from common.cli import parse_image_shape
from symbols.layers import ConvBNAct

ALPHAS = (0.25, 0.5, 0.75, 1.0)
# (depthwise stride, pointwise output width in units of 32 * alpha) for units conv_2 ... conv_14
SEPARABLE = [(1, 2), (2, 4), (1, 4), (2, 8), (1, 8), (2, 16)] + [(1, 16)] * 5 + [(2, 32), (1, 32)]


class MobileNet(nn.Module):
    def __init__(self, num_classes: int, alpha: float = 1.0, pool_size: int = 7, in_channels: int = 3):
        super().__init__()
        if alpha not in ALPHAS:
            raise UserError(f"MobileNet alpha must be one of {', '.join(map(str, ALPHAS))}, not {alpha}")
        base = int(32 * alpha)
        self.conv_1 = ConvBNAct(in_channels, base, 3, 2, 1)
        self.units = [self.conv_1]
        channels = base
        for i, (stride, width) in enumerate(SEPARABLE, start=2):
            self.add_module(f"conv_{i}_dw", ConvBNAct(channels, channels, 3, stride, 1, groups=channels))
            self.add_module(f"conv_{i}", ConvBNAct(channels, base * width))
            self.units += [getattr(self, f"conv_{i}_dw"), getattr(self, f"conv_{i}")]
            channels = base * width
        self.pool_size = pool_size
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = unit(x)
        return self.fc(F.avg_pool2d(x, self.pool_size, 1).flatten(1))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32",
               alpha: float = 1.0, **kwargs) -> nn.Module:
    """MobileNet of width `alpha`; `dtype` is the training loop's (autocast)."""
    channels, height, _ = parse_image_shape(image_shape)
    return MobileNet(num_classes, alpha, max(height // 32, 1), channels)
