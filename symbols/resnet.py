"""ResNet v2 (pre-activation), as MXNet's `symbols/resnet.py`: He et al., "Identity Mappings in Deep
Residual Networks". An input BatchNorm `bn_data` (fixed gamma) normalises the images; every BatchNorm has
eps 2e-5. ImageNet depths 18/34 (basic units), 50/101/152/200/269 (bottleneck units); CIFAR depths 6n+2
(basic: 20, 32, 44, 56, 110, ...) and 9n+2 >= 164 (bottleneck: 164, 1001, ...).

Layers keep MXNet's names: `stage1_unit1.conv1.weight` is MXNet's `stage1_unit1_conv1_weight`.
The depth-and-size rules in `stage_plan` are shared with `resnet_v1.py` and `resnext.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.cli import UserError

from common.cli import parse_image_shape
from symbols.layers import BatchNorm, conv2d, global_avg_pool

RESNET_BN_EPS = 2e-5
IMAGENET_UNITS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
                  152: [3, 8, 36, 3], 200: [3, 24, 36, 3], 269: [3, 30, 48, 8]}


@dataclass(frozen=True)
class StagePlan:
    units: list[int]          # residual units per stage
    filters: list[int]        # stem width, then each stage's output width
    bottle_neck: bool
    cifar: bool               # 3x3 stem without max-pooling


def stage_plan(num_layers: int | None, height: int, cifar_max_height: int = 28) -> StagePlan:
    """MXNet's choice of ResNet layout: images up to `cifar_max_height` pixels high get the CIFAR layout
    (3 stages, depth 6n+2 basic or 9n+2 >= 164 bottleneck), larger ones the ImageNet layout. Unlike MXNet,
    images up to 32 pixels high also get the CIFAR layout when `num_layers` is no ImageNet depth, so
    `--image-shape 3,32,32` works for resnet-110 (MXNet raises an error there)."""
    if num_layers is None:
        raise UserError("ResNets need --num-layers (e.g. 50 for ImageNet, 110 for CIFAR-10)")
    small = height <= 32
    if height <= cifar_max_height or (small and num_layers not in IMAGENET_UNITS):
        if num_layers >= 164 and (num_layers - 2) % 9 == 0:
            return StagePlan([(num_layers - 2) // 9] * 3, [16, 64, 128, 256], True, True)
        if num_layers < 164 and (num_layers - 2) % 6 == 0:
            return StagePlan([(num_layers - 2) // 6] * 3, [16, 16, 32, 64], False, True)
        raise UserError(f"no CIFAR ResNet has {num_layers} layers; choose 6n+2 (20, 32, 44, 56, 110) "
                         f"or 9n+2 >= 164 (164, 1001)")
    if num_layers not in IMAGENET_UNITS:
        raise UserError(f"no ImageNet ResNet has {num_layers} layers; choose one of "
                         f"{', '.join(map(str, IMAGENET_UNITS))}")
    filters = [64, 256, 512, 1024, 2048] if num_layers >= 50 else [64, 64, 128, 256, 512]
    return StagePlan(IMAGENET_UNITS[num_layers], filters, num_layers >= 50, small)


def stage_layout(plan: StagePlan) -> list[tuple[str, int, int, int]]:
    """(name, input width, output width, stride) of every residual unit `stage<i>_unit<j>`. The first unit
    of each stage (all but the first stage downsampling by 2) projects its shortcut, as MXNet's does even
    where the widths already match."""
    layout = []
    in_channels = plan.filters[0]
    for i, (num_units, out_channels) in enumerate(zip(plan.units, plan.filters[1:])):
        for j in range(num_units):
            stride = 2 if i > 0 and j == 0 else 1
            layout.append((f"stage{i + 1}_unit{j + 1}", in_channels, out_channels, stride))
            in_channels = out_channels
    return layout


def bn(channels: int, fix_gamma: bool = False) -> BatchNorm:
    return BatchNorm(channels, eps=RESNET_BN_EPS, fix_gamma=fix_gamma)


class PreActUnit(nn.Module):
    """Pre-activation residual unit: (BN, ReLU, conv) x 2, or x 3 as a bottleneck of width out/4 with the
    stride on the 3x3. A projecting unit's shortcut is a 1x1 conv `sc` of the first activation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, bottle_neck: bool, project: bool):
        super().__init__()
        width = out_channels // 4 if bottle_neck else out_channels
        kernels = [1, 3, 1] if bottle_neck else [3, 3]
        widths = [width] * (len(kernels) - 1) + [out_channels]
        strided = 2 if bottle_neck else 1
        channels = in_channels
        for k, (kernel, out) in enumerate(zip(kernels, widths), start=1):
            self.add_module(f"bn{k}", bn(channels))
            conv_stride = stride if k == strided else 1
            self.add_module(f"conv{k}", conv2d(channels, out, kernel, conv_stride, kernel // 2))
            channels = out
        self.steps = [(getattr(self, f"bn{k}"), getattr(self, f"conv{k}"))
                      for k in range(1, len(kernels) + 1)]
        self.sc = conv2d(in_channels, out_channels, 1, stride) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act1 = F.relu(self.bn1(x))
        shortcut = x if self.sc is None else self.sc(act1)
        y = self.conv1(act1)
        for norm, conv in self.steps[1:]:
            y = conv(F.relu(norm(y)))
        return y + shortcut


def add_stem(net: nn.Module, plan: StagePlan, in_channels: int) -> None:
    """MXNet's input layers, flat on `net` as MXNet names them: BatchNorm `bn_data` (fixed gamma), then
    `conv0` (3x3 for CIFAR; 7x7 stride 2 followed by `bn0`, ReLU and max-pooling for ImageNet)."""
    stem = plan.filters[0]
    net.bn_data = bn(in_channels, fix_gamma=True)
    net.conv0 = conv2d(in_channels, stem, 3, 1, 1) if plan.cifar else conv2d(in_channels, stem, 7, 2, 3)
    net.bn0 = None if plan.cifar else bn(stem)


def run_stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.conv0(net.bn_data(x))
    return x if net.bn0 is None else F.max_pool2d(F.relu(net.bn0(x)), 3, 2, 1)


class ResNet(nn.Module):
    def __init__(self, plan: StagePlan, num_classes: int, in_channels: int = 3):
        super().__init__()
        add_stem(self, plan, in_channels)
        for name, unit_in, unit_out, stride in stage_layout(plan):
            project = name.endswith("_unit1")
            self.add_module(name, PreActUnit(unit_in, unit_out, stride, plan.bottle_neck, project))
        self.units = [module for name, module in self.named_children() if name.startswith("stage")]
        self.bn1 = bn(plan.filters[-1])
        self.fc1 = nn.Linear(plan.filters[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run_stem(self, x)
        for unit in self.units:
            x = unit(x)
        return self.fc1(global_avg_pool(F.relu(self.bn1(x))))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32", **kwargs) -> nn.Module:
    """ResNet v2 of `num_layers` for images of `image_shape`; `dtype` is the training loop's (autocast)."""
    channels, height, _ = parse_image_shape(image_shape)
    return ResNet(stage_plan(num_layers, height), num_classes, channels)
