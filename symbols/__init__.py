"""Networks by name, as MXNet's `symbols/` folder: one module per family.

Each module `symbols/<family>.py` (dashes become underscores: `inception-bn` -> `inception_bn.py`)
exposes `get_symbol(num_classes, num_layers=None, image_shape='3,224,224', dtype='float32', **kwargs)
-> torch.nn.Module` and ignores keyword arguments it does not use, since training scripts pass every parsed
option. Layers are named after MXNet's layers, and nested blocks join with '_', so
`stage1_unit1.conv1.weight` is MXNet's `stage1_unit1_conv1_weight` (see `common.checkpoint.mxnet_names`).
Shared building blocks (MXNet's BatchNorm, convolution units, Inception towers) are in `symbols/layers.py`.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util

import torch.nn as nn

from common.cli import UserError

# Every family MXNet ships, in its order; those whose module exists are available.
FAMILIES = ("mlp", "lenet", "alexnet", "vgg", "googlenet", "inception-bn", "inception-v3", "inception-v4",
            "inception-resnet-v2", "resnet", "resnet-v1", "resnext", "mobilenet", "mobilenetv2")


def _module_name(name: str) -> str:
    return f"{__name__}.{name.replace('-', '_')}"


def list_networks() -> list[str]:
    """Names accepted by `--network` on this installation."""
    return [n for n in FAMILIES if importlib.util.find_spec(_module_name(n)) is not None]


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build network `name`; unknown names raise UserError listing the known ones."""
    if name not in list_networks():
        raise UserError(f"unknown network '{name}'; choose from: {', '.join(list_networks())}")
    return importlib.import_module(_module_name(name)).get_symbol(num_classes=num_classes, **kwargs)


# The options of single network families, with the defaults of MXNet's `get_symbol`s: (option, argparse
# keywords). Together with --num-layers and --image-shape they are what a checkpoint needs to rebuild its
# network (see `network_options`).
NETWORK_EXTRAS = (
    ("--num-group", dict(type=int, default=32, help="resnext: groups of the bottleneck 3x3 convolutions")),
    ("--width-per-group", dict(type=int, default=None,
                               help="resnext: channels per group in the first stage, doubling per stage (4 with "
                                    "--num-group 64 is resnext-101-64x4d); default: MXNet's, half the unit's "
                                    "output width")),
    ("--batch-norm", dict(type=int, default=0, choices=[0, 1],
                          help="vgg: 1 adds a BatchNorm after every convolution")),
    ("--alpha", dict(type=float, default=1.0, choices=[0.25, 0.5, 0.75, 1.0], help="mobilenet: width multiplier")),
    ("--multiplier", dict(type=float, default=1.0, help="mobilenetv2: width multiplier")),
)
BUILD_OPTIONS = ("num_layers", "image_shape", *(option[2:].replace("-", "_") for option, _ in NETWORK_EXTRAS))


def add_network_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The options of single network families (NETWORK_EXTRAS)."""
    group = parser.add_argument_group("Network extras", "options read by some --network families only")
    for option, keywords in NETWORK_EXTRAS:
        group.add_argument(option, **keywords)
    return group


def network_options(options: dict) -> dict:
    """The options among `options` that shape a network (BUILD_OPTIONS), leaving out those not set."""
    return {k: options[k] for k in BUILD_OPTIONS if options.get(k) is not None}
