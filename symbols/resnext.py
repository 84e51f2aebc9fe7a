"""ResNeXt, as MXNet's `symbols/resnext.py`: Xie et al., "Aggregated Residual Transformations for Deep
Neural Networks". ResNet v1 units (see `resnet_v1.py`) whose bottleneck 3x3 convolution is split in
`num_group` groups and strides there; input BatchNorm `bn_data`; shortcut conv `sc` and BatchNorm `sc_bn`.
The CIFAR layout is chosen for images up to 32 pixels high, as MXNet does.

Bottleneck width: MXNet's is half of the unit's output width (`32x4d` with 32 groups). `width_per_group`
sets `num_group * width_per_group` channels in the first stage instead, doubling per stage:
`num_group=64, width_per_group=4` is `resnext-101-64x4d`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from common.cli import parse_image_shape
from symbols.layers import global_avg_pool
from symbols.resnet import StagePlan, add_stem, run_stem, stage_layout, stage_plan
from symbols.resnet_v1 import PostActUnit


class ResNeXt(nn.Module):
    def __init__(self, plan: StagePlan, num_classes: int, num_group: int, width_per_group: int | None,
                 in_channels: int = 3):
        super().__init__()
        add_stem(self, plan, in_channels)
        for name, unit_in, unit_out, stride in stage_layout(plan):
            if width_per_group is None:
                width = unit_out // 2
            else:  # output widths double per stage from filters[1]
                width = num_group * width_per_group * unit_out // plan.filters[1]
            self.add_module(name, PostActUnit(unit_in, unit_out, stride, plan.bottle_neck,
                                              project=name.endswith("_unit1"), width=width,
                                              strided=2 if plan.bottle_neck else 1, groups=num_group,
                                              shortcut_names=("sc", "sc_bn")))
        self.units = [module for name, module in self.named_children() if name.startswith("stage")]
        self.fc1 = nn.Linear(plan.filters[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run_stem(self, x)
        for unit in self.units:
            x = unit(x)
        return self.fc1(global_avg_pool(x))


def get_symbol(num_classes: int, num_layers: int | None = None,
               image_shape: str | Sequence[int] = "3,224,224", dtype: str = "float32",
               num_group: int = 32, width_per_group: int | None = None, **kwargs) -> nn.Module:
    """ResNeXt of `num_layers` with `num_group` groups; `dtype` is the training loop's (autocast)."""
    channels, height, _ = parse_image_shape(image_shape)
    plan = stage_plan(num_layers, height, cifar_max_height=32)
    return ResNeXt(plan, num_classes, num_group, width_per_group, channels)
