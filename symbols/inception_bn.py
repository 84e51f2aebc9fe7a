"""Inception with BatchNorm, as MXNet's `symbols/inception-bn.py`: Ioffe and Szegedy, "Batch
Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift". Two variants, as
MXNet picks them from the image height: 224x224 (GoogLeNet-like with double 3x3 towers) and, for images up
to 28 pixels high, a small network of simple 1x1 + 3x3 blocks.

MXNet names each convolution `conv_<unit>` and its BatchNorm `bn_<unit>` (eps 1e-10 + 1e-5), so the layers
live flat on the network (`conv_3a_1x1`, `bn_3a_1x1`, ...); the classifier is `fullyconnected0`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import parse_image_shape
from symbols.layers import C, Unit, build_steps, max_pool, pool, run_steps

BN_EPS = 1e-10 + 1e-5


def block_a(name: str, n1x1: int, n3x3_red: int, n3x3: int, nd3x3_red: int, nd3x3: int, pool_type: str,
            proj: int) -> tuple:
    return (
        [C(f"{name}_1x1", n1x1)],
        [C(f"{name}_3x3_reduce", n3x3_red), C(f"{name}_3x3", n3x3, 3, pad=1)],
        [C(f"{name}_double_3x3_reduce", nd3x3_red), C(f"{name}_double_3x3_0", nd3x3, 3, pad=1),
         C(f"{name}_double_3x3_1", nd3x3, 3, pad=1)],
        [pool(pool_type, 3, 1, 1), C(f"{name}_proj", proj)],
    )


def block_b(name: str, n3x3_red: int, n3x3: int, nd3x3_red: int, nd3x3: int) -> tuple:
    """Reduction: the strided towers halve the size."""
    return (
        [C(f"{name}_3x3_reduce", n3x3_red), C(f"{name}_3x3", n3x3, 3, 2, 1)],
        [C(f"{name}_double_3x3_reduce", nd3x3_red), C(f"{name}_double_3x3_0", nd3x3, 3, pad=1),
         C(f"{name}_double_3x3_1", nd3x3, 3, 2, 1)],
        [max_pool(3, 2, 1)],
    )


def simple(name: str, n1x1: int, n3x3: int) -> tuple:
    return ([C(f"{name}_1x1", n1x1)], [C(f"{name}_3x3", n3x3, 3, pad=1)])


def downsample(name: str, n3x3: int) -> tuple:
    return ([C(f"{name}_conv", n3x3, 3, 2, 1)], [max_pool(3, 2, 1)])


NETWORK_224 = [
    C("1", 64, 7, 2, 3), max_pool(3, 2), C("2_red", 64), C("2", 192, 3, pad=1), max_pool(3, 2),
    block_a("3a", 64, 64, 64, 64, 96, "avg", 32), block_a("3b", 64, 64, 96, 64, 96, "avg", 64),
    block_b("3c", 128, 160, 64, 96),
    block_a("4a", 224, 64, 96, 96, 128, "avg", 128), block_a("4b", 192, 96, 128, 96, 128, "avg", 128),
    block_a("4c", 160, 128, 160, 128, 160, "avg", 128), block_a("4d", 96, 128, 192, 160, 192, "avg", 128),
    block_b("4e", 128, 192, 192, 256),
    block_a("5a", 352, 192, 320, 160, 224, "avg", 128), block_a("5b", 352, 192, 320, 192, 224, "max", 128),
]

NETWORK_28 = [
    C("1", 96, 3, pad=1), simple("in3a", 32, 32), simple("in3b", 32, 48), downsample("in3c", 80),
    simple("in4a", 112, 48), simple("in4b", 96, 64), simple("in4c", 80, 80), simple("in4d", 48, 96),
    downsample("in4e", 96), simple("in5a", 176, 160), simple("in5b", 176, 160),
]


class InceptionBN(nn.Module):
    def __init__(self, num_classes: int, small: bool = False, in_channels: int = 3):
        super().__init__()

        def make_unit(name: str, *args) -> Unit:
            return Unit(self, f"conv_{name}", f"bn_{name}", *args, bias=True, eps=BN_EPS)

        self.steps, channels = build_steps(in_channels, NETWORK_28 if small else NETWORK_224, make_unit)
        self.fullyconnected0 = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(run_steps(x, self.steps), 7, 1)  # 7x7 -> 1x1 at the native sizes, as MXNet's
        return self.fullyconnected0(x.flatten(1))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32", **kwargs) -> nn.Module:
    """Inception-BN, the small variant for images up to 28 pixels high; `dtype` is the training loop's."""
    channels, height, _ = parse_image_shape(image_shape)
    return InceptionBN(num_classes, small=height <= 28, in_channels=channels)
