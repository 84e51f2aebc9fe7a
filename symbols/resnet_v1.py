"""ResNet v1 (post-activation), as MXNet's `symbols/resnet-v1.py`: He et al., "Deep Residual Learning
for Image Recognition". Same depths and CIFAR/ImageNet choice as `resnet.py`; no input BatchNorm; the
bottleneck strides on its first 1x1 convolution; projection shortcuts are a 1x1 conv `conv1sc` and a
BatchNorm `sc`. `PostActUnit` is shared with `resnext.py`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import parse_image_shape
from symbols.layers import conv2d, global_avg_pool
from symbols.resnet import StagePlan, bn, stage_layout, stage_plan


class PostActUnit(nn.Module):
    """Residual unit (conv, BN, ReLU) x 2 or x 3 (bottleneck: 1x1 of `width`, 3x3 of `width` in `groups`,
    1x1), the last ReLU after adding the shortcut. `strided` is the number of the convolution that
    downsamples; a projecting unit's shortcut is a 1x1 conv and a BN named `shortcut_names`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, bottle_neck: bool, project: bool,
                 width: int, strided: int, groups: int = 1,
                 shortcut_names: tuple[str, str] = ("conv1sc", "sc")):
        super().__init__()
        kernels = [1, 3, 1] if bottle_neck else [3, 3]
        widths = [width, width, out_channels] if bottle_neck else [out_channels, out_channels]
        channels = in_channels
        for k, (kernel, out) in enumerate(zip(kernels, widths), start=1):
            conv_stride = stride if k == strided else 1
            conv_groups = groups if bottle_neck and kernel == 3 else 1
            self.add_module(f"conv{k}", conv2d(channels, out, kernel, conv_stride, kernel // 2, conv_groups))
            self.add_module(f"bn{k}", bn(out))
            channels = out
        self.steps = [(getattr(self, f"conv{k}"), getattr(self, f"bn{k}"))
                      for k in range(1, len(kernels) + 1)]
        self.shortcut = None
        if project:
            sc_conv, sc_bn = shortcut_names
            self.add_module(sc_conv, conv2d(in_channels, out_channels, 1, stride))
            self.add_module(sc_bn, bn(out_channels))
            self.shortcut = (getattr(self, sc_conv), getattr(self, sc_bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for k, (conv, norm) in enumerate(self.steps, start=1):
            y = norm(conv(y))
            if k < len(self.steps):
                y = F.relu(y)
        shortcut = x if self.shortcut is None else self.shortcut[1](self.shortcut[0](x))
        return F.relu(y + shortcut)


class ResNetV1(nn.Module):
    def __init__(self, plan: StagePlan, num_classes: int, in_channels: int = 3):
        super().__init__()
        stem = plan.filters[0]
        self.cifar = plan.cifar
        self.conv0 = conv2d(in_channels, stem, 3, 1, 1) if plan.cifar else conv2d(in_channels, stem, 7, 2, 3)
        self.bn0 = bn(stem)
        for name, unit_in, unit_out, stride in stage_layout(plan):
            width = unit_out // 4 if plan.bottle_neck else unit_out
            self.add_module(name, PostActUnit(unit_in, unit_out, stride, plan.bottle_neck,
                                              project=name.endswith("_unit1"), width=width, strided=1))
        self.units = [module for name, module in self.named_children() if name.startswith("stage")]
        self.fc1 = nn.Linear(plan.filters[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.conv0(x))
        if not self.cifar:  # MXNet's CIFAR stem has no ReLU after bn0
            x = F.max_pool2d(F.relu(x), 3, 2, 1)
        for unit in self.units:
            x = unit(x)
        return self.fc1(global_avg_pool(x))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32", **kwargs) -> nn.Module:
    """ResNet v1 of `num_layers` for images of `image_shape`; `dtype` is the training loop's (autocast)."""
    channels, height, _ = parse_image_shape(image_shape)
    return ResNetV1(stage_plan(num_layers, height), num_classes, channels)
