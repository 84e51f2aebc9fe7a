"""GoogLeNet, as MXNet's `symbols/googlenet.py`: Szegedy et al., "Going Deeper with Convolutions".
Convolutions with bias and ReLU, no BatchNorm; MXNet names them `conv_<unit>` (`conv_in3a_5x5_reduce`), so
they live flat on the network; global average pooling and the classifier `fullyconnected0`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from common.cli import parse_image_shape
from symbols.layers import C, Unit, build_steps, global_avg_pool, max_pool, run_steps


def inception(name: str, n1x1: int, n3x3_red: int, n3x3: int, n5x5_red: int, n5x5: int, proj: int) -> tuple:
    return (
        [C(f"{name}_1x1", n1x1)],
        [C(f"{name}_3x3_reduce", n3x3_red), C(f"{name}_3x3", n3x3, 3, pad=1)],
        [C(f"{name}_5x5_reduce", n5x5_red), C(f"{name}_5x5", n5x5, 5, pad=2)],
        [max_pool(3, 1, 1), C(f"{name}_proj", proj)],
    )


NETWORK = [
    C("conv1", 64, 7, 2, 3), max_pool(3, 2), C("conv2", 64), C("conv3", 192, 3, pad=1), max_pool(3, 2),
    inception("in3a", 64, 96, 128, 16, 32, 32), inception("in3b", 128, 128, 192, 32, 96, 64), max_pool(3, 2),
    inception("in4a", 192, 96, 208, 16, 48, 64), inception("in4b", 160, 112, 224, 24, 64, 64),
    inception("in4c", 128, 128, 256, 24, 64, 64), inception("in4d", 112, 144, 288, 32, 64, 64),
    inception("in4e", 256, 160, 320, 32, 128, 128), max_pool(3, 2),
    inception("in5a", 256, 160, 320, 32, 128, 128), inception("in5b", 384, 192, 384, 48, 128, 128),
]


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()

        def make_unit(name: str, *args) -> Unit:
            return Unit(self, f"conv_{name}", None, *args, bias=True)

        self.steps, channels = build_steps(in_channels, NETWORK, make_unit)
        self.fullyconnected0 = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fullyconnected0(global_avg_pool(run_steps(x, self.steps)))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32", **kwargs) -> nn.Module:
    """GoogLeNet; `dtype` is the training loop's (autocast)."""
    return GoogLeNet(num_classes, parse_image_shape(image_shape)[0])
