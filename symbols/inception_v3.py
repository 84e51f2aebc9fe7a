"""Inception-v3 for 299x299 images, as MXNet's `symbols/inception-v3.py`: Szegedy et al., "Rethinking the
Inception Architecture for Computer Vision". Every convolution is followed by a BatchNorm with MXNet's
defaults (eps 1e-3, fixed gamma) and a ReLU; blocks `mixed` ... `mixed_10` hold units named as MXNet's
(`mixed_1.tower_1_conv_2.conv2d.weight` is `mixed_1_tower_1_conv_2_conv2d_weight`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from common.cli import parse_image_shape
from symbols.layers import C, ConvBNAct, Towers, max_pool, pool


def block_a(pool_proj: int) -> list:
    """35x35 block: 1x1, 5x5, double 3x3 and average-pool towers."""
    return [(
        [C("conv", 64)],
        [C("tower_conv", 48), C("tower_conv_1", 64, 5, pad=2)],
        [C("tower_1_conv", 64), C("tower_1_conv_1", 96, 3, pad=1), C("tower_1_conv_2", 96, 3, pad=1)],
        [pool("avg", 3, 1, 1), C("tower_2_conv", pool_proj)],
    )]


def block_b() -> list:
    """35x35 -> 17x17 reduction."""
    return [(
        [C("conv", 384, 3, 2)],
        [C("tower_conv", 64), C("tower_conv_1", 96, 3, pad=1), C("tower_conv_2", 96, 3, 2)],
        [max_pool(3, 2)],
    )]


def block_c(width: int) -> list:
    """17x17 block with factorised 7x7 convolutions of `width` channels inside the towers."""
    return [(
        [C("conv", 192)],
        [C("tower_conv", width), C("tower_conv_1", width, (1, 7), pad=(0, 3)),
         C("tower_conv_2", 192, (7, 1), pad=(3, 0))],
        [C("tower_1_conv", width), C("tower_1_conv_1", width, (7, 1), pad=(3, 0)),
         C("tower_1_conv_2", width, (1, 7), pad=(0, 3)), C("tower_1_conv_3", width, (7, 1), pad=(3, 0)),
         C("tower_1_conv_4", 192, (1, 7), pad=(0, 3))],
        [pool("avg", 3, 1, 1), C("tower_2_conv", 192)],
    )]


def block_d() -> list:
    """17x17 -> 8x8 reduction."""
    return [(
        [C("tower_conv", 192), C("tower_conv_1", 320, 3, 2)],
        [C("tower_1_conv", 192), C("tower_1_conv_1", 192, (1, 7), pad=(0, 3)),
         C("tower_1_conv_2", 192, (7, 1), pad=(3, 0)), C("tower_1_conv_3", 192, 3, 2)],
        [max_pool(3, 2)],
    )]


def block_e(pool_type: str) -> list:
    """8x8 block whose 3x3 towers end in parallel 1x3 and 3x1 convolutions."""
    return [(
        [C("conv", 320)],
        [C("tower_conv", 384), ([C("tower_mixed_conv", 384, (1, 3), pad=(0, 1))],
                                [C("tower_mixed_conv_1", 384, (3, 1), pad=(1, 0))])],
        [C("tower_1_conv", 448), C("tower_1_conv_1", 384, 3, pad=1),
         ([C("tower_1_mixed_conv", 384, (1, 3), pad=(0, 1))],
          [C("tower_1_mixed_conv_1", 384, (3, 1), pad=(1, 0))])],
        [pool(pool_type, 3, 1, 1), C("tower_2_conv", 192)],
    )]


class InceptionV3(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv = ConvBNAct(in_channels, 32, 3, 2)
        self.conv_1 = ConvBNAct(32, 32, 3)
        self.conv_2 = ConvBNAct(32, 64, 3, pad=1)
        self.conv_3 = ConvBNAct(64, 80, 1)
        self.conv_4 = ConvBNAct(80, 192, 3)
        specs = [block_a(32), block_a(64), block_a(64), block_b(), block_c(128), block_c(160), block_c(160),
                 block_c(192), block_d(), block_e("avg"), block_e("max")]
        channels = 192
        self.blocks = []
        for i, spec in enumerate(specs):
            block = Towers(channels, spec)
            self.add_module("mixed" if i == 0 else f"mixed_{i}", block)
            self.blocks.append(block)
            channels = block.out_channels
        self.fc1 = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool(3, 2)(self.conv_2(self.conv_1(self.conv(x))))
        x = max_pool(3, 2)(self.conv_4(self.conv_3(x)))
        for block in self.blocks:
            x = block(x)
        x = pool("avg", 8)(x)  # 8x8 -> 1x1 at 299x299, as MXNet's (not global) pooling
        return self.fc1(x.flatten(1))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,299,299", dtype: str = "float32", **kwargs) -> nn.Module:
    """Inception-v3; `dtype` is the training loop's (autocast)."""
    return InceptionV3(num_classes, parse_image_shape(image_shape)[0])
