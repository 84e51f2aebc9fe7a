"""AlexNet, as MXNet's `symbols/alexnet.py`: Krizhevsky et al., "ImageNet Classification with Deep
Convolutional Neural Networks". Convolutions conv1-conv5 with ReLU; after the ReLU of conv1 and conv2 a local
response normalisation (size 5, alpha 1e-4, beta 0.75, k 2: x / (k + alpha / size * sum x^2) ^ beta as MXNet's
LRN with knorm 2) and then 3x3 stride-2 max-pooling, which also follows conv5; classifier fc1, fc2 (ReLU,
dropout 0.5) and fc3.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import parse_image_shape
from symbols.layers import Unit


def lrn(x: torch.Tensor) -> torch.Tensor:
    return F.local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0)


class AlexNet(nn.Module):
    def __init__(self, num_classes: int, image_shape: tuple[int, int, int] = (3, 224, 224)):
        super().__init__()
        channels, height, width = image_shape
        self.units = [Unit(self, "conv1", None, channels, 96, 11, 4, bias=True),
                      Unit(self, "conv2", None, 96, 256, 5, 1, 2, bias=True)]
        self.units += [Unit(self, f"conv{i}", None, in_ch, out, 3, 1, 1, bias=True)
                       for i, (in_ch, out) in enumerate([(256, 384), (384, 384), (384, 256)], start=3)]

        def size_after_pools(size: int) -> int:  # conv1 and three 3x3 stride-2 poolings, rounding down
            size = (size - 11) // 4 + 1
            for _ in range(3):
                size = (size - 3) // 2 + 1
            return size

        self.fc1 = nn.Linear(256 * size_after_pools(height) * size_after_pools(width), 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(lrn(self.units[0](x)), 3, 2)
        x = F.max_pool2d(lrn(self.units[1](x)), 3, 2)
        for unit in self.units[2:]:
            x = unit(x)
        x = F.max_pool2d(x, 3, 2)
        x = self.dropout(F.relu(self.fc1(x.flatten(1))))
        x = self.dropout(F.relu(self.fc2(x)))
        return self.fc3(x)


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32", **kwargs) -> nn.Module:
    """AlexNet; `dtype` is the training loop's (autocast)."""
    return AlexNet(num_classes, parse_image_shape(image_shape))
