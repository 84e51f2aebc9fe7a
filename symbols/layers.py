"""Building blocks shared by the networks of `symbols/`, with MXNet's numerics.

- `BatchNorm`: MXNet's defaults (eps 1e-3, momentum 0.9, i.e. PyTorch's 0.1) and its `fix_gamma` mode;
  `synchronize_batchnorm` makes its training statistics those of the batch over all processes (--sync-bn).
- `Unit`: convolution -> BatchNorm -> activation, the `ConvFactory` of MXNet's symbols. Its layers are
  registered on an owner module under MXNet's layer names, so networks whose MXNet names do not nest
  (auto-numbered `convolution12`, dashed `seq-0-block0-exp-conv2d`, `conv_3a` beside `bn_3a`) keep them
  flat; `ConvBNAct` is the same unit as a module of its own (`<name>_conv2d`, `<name>_batchnorm`).
- `C`, `build_steps`, `run_steps`, `Towers`: Inception blocks written as specs of towers (chains of units
  and pooling, concatenated along channels).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.nn.functional import all_reduce


IntPair = Union[int, tuple[int, int]]
Activation = Callable[[torch.Tensor], torch.Tensor]

# MXNet's BatchNorm defaults; `momentum=0.9` keeps 0.9 of the running value, which is PyTorch's 0.1.
MXNET_BN_EPS = 1e-3
TORCH_BN_MOMENTUM = 0.1


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with MXNet's defaults. With `fix_gamma=True` (MXNet's default for `mx.sym.BatchNorm`)
    the layer still holds gamma, so checkpoints keep MXNet's tensors, but computes with gamma = 1 and never
    trains it."""

    def __init__(self, num_features: int, eps: float = MXNET_BN_EPS, fix_gamma: bool = False):
        super().__init__(num_features, eps=eps, momentum=TORCH_BN_MOMENTUM)
        self.fix_gamma = fix_gamma
        if fix_gamma:
            self.weight.requires_grad_(False)

    synchronized = False  # set by synchronize_batchnorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.synchronized and self.training:
            return self._synchronized_forward(x)
        if not self.fix_gamma:
            return super().forward(x)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias,
                            use_batch_stats, self.momentum, self.eps)

    def _synchronized_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with the mean and variance of the batch of all processes together. The per-channel
        sums are all-reduced by a differentiable collective, so gradients flow through the shared
        statistics as they would through one process's batch (any backend: gloo on CPUs, NCCL on GPUs,
        where torch's own SyncBatchNorm has no CPU path)."""
        channels = x.shape[1]
        x32 = x.float()
        local = torch.cat((x32.sum((0, 2, 3)), x32.square().sum((0, 2, 3)),
                           x32.new_full((1,), x.numel() // channels)))
        total = all_reduce(local)
        count = total[-1]
        mean = total[:channels] / count
        var = total[channels:2 * channels] / count - mean.square()
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), self.momentum)
            self.num_batches_tracked += 1
        scale = torch.rsqrt(var + self.eps)
        if not self.fix_gamma:
            scale = scale * self.weight
        shift = self.bias - mean * scale
        return (x32 * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)).to(x.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", fix_gamma=True" if self.fix_gamma else "")


def synchronize_batchnorm(model: nn.Module) -> int:
    """Make every `BatchNorm` of `model` normalise training batches with statistics over all processes of
    the initialised process group; returns how many there are."""
    layers = [m for m in model.modules() if isinstance(m, BatchNorm)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def conv2d(in_channels: int, out_channels: int, kernel: IntPair, stride: IntPair = 1, pad: IntPair = 0,
           groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """MXNet's Convolution: kernel, stride and pad as ints or (height, width) pairs."""
    return nn.Conv2d(in_channels, out_channels, kernel, stride, pad, groups=groups, bias=bias)


class Unit:
    """Convolution -> BatchNorm (optional) -> activation (optional), as one callable. The convolution and
    the BatchNorm are registered on `owner` as `conv_name` and `bn_name`; this object only runs them."""

    def __init__(self, owner: nn.Module, conv_name: str, bn_name: str | None, in_channels: int,
                 out_channels: int, kernel: IntPair, stride: IntPair = 1, pad: IntPair = 0, groups: int = 1,
                 bias: bool = False, eps: float = MXNET_BN_EPS, fix_gamma: bool = False,
                 act: Activation | None = F.relu):
        self.conv = conv2d(in_channels, out_channels, kernel, stride, pad, groups, bias)
        owner.add_module(conv_name, self.conv)
        self.bn = None
        if bn_name is not None:
            self.bn = BatchNorm(out_channels, eps, fix_gamma)
            owner.add_module(bn_name, self.bn)
        self.act = act

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.act is None else self.act(x)


class ConvBNAct(nn.Module):
    """A `Unit` as a module with children `conv2d` and `batchnorm` (MXNet's `<name>_conv2d`,
    `<name>_batchnorm` in Inception-v3/v4 and MobileNet): no bias, fixed gamma, eps 1e-3 by default."""

    def __init__(self, in_channels: int, out_channels: int, kernel: IntPair = 1, stride: IntPair = 1,
                 pad: IntPair = 0, groups: int = 1, eps: float = MXNET_BN_EPS, fix_gamma: bool = True,
                 act: Activation | None = F.relu):
        super().__init__()
        self.unit = Unit(self, "conv2d", "batchnorm", in_channels, out_channels, kernel, stride, pad, groups,
                         eps=eps, fix_gamma=fix_gamma, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(x)


class C(NamedTuple):
    """A convolution unit in a tower spec: layer name, output channels, kernel, stride, pad."""
    name: str
    out_channels: int
    kernel: IntPair = 1
    stride: IntPair = 1
    pad: IntPair = 0


# A tower spec is a list of steps run in turn: a `C` unit, a parameterless function (pooling), or a tuple of
# tower specs run side by side and concatenated along channels (MXNet's Concat), in order.
MakeUnit = Callable[[str, int, int, IntPair, IntPair, IntPair], Callable[[torch.Tensor], torch.Tensor]]


def build_steps(in_channels: int, spec: Sequence, make_unit: MakeUnit) -> tuple[list, int]:
    """Turn a tower spec into runnable steps (for `run_steps`), creating each `C` with
    `make_unit(name, in_channels, out_channels, kernel, stride, pad)`; also return the output channels."""
    steps = []
    channels = in_channels
    for step in spec:
        if isinstance(step, C):
            name, out, kernel, stride, pad = step
            steps.append(make_unit(name, channels, out, kernel, stride, pad))
            channels = out
        elif isinstance(step, tuple):
            towers = [build_steps(channels, tower, make_unit) for tower in step]
            steps.append(tuple(tower for tower, _ in towers))
            channels = sum(out for _, out in towers)
        else:
            steps.append(step)
    return steps, channels


def run_steps(x: torch.Tensor, steps: Sequence) -> torch.Tensor:
    for step in steps:
        if isinstance(step, tuple):
            x = torch.cat([run_steps(x, tower) for tower in step], dim=1)
        else:
            x = step(x)
    return x


class Towers(nn.Module):
    """A block built from a tower spec, its units `ConvBNAct` children named as in the spec."""

    def __init__(self, in_channels: int, spec: Sequence):
        super().__init__()

        def make_unit(name: str, *args) -> ConvBNAct:
            self.add_module(name, ConvBNAct(*args))
            return getattr(self, name)

        self.steps, self.out_channels = build_steps(in_channels, spec, make_unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_steps(x, self.steps)


def max_pool(kernel: int, stride: int = 1, pad: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """MXNet's max Pooling with the default 'valid' convention (output size rounded down)."""
    return functools.partial(F.max_pool2d, kernel_size=kernel, stride=stride, padding=pad)


def avg_pool(kernel: int, stride: int = 1, pad: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """MXNet's avg Pooling: 'valid' convention, padding counted in the average (count_include_pad)."""
    return functools.partial(F.avg_pool2d, kernel_size=kernel, stride=stride, padding=pad)


def pool(pool_type: str, kernel: int, stride: int = 1, pad: int = 0) -> Callable:
    """MXNet's Pooling of `pool_type` 'max' or 'avg'."""
    return {"max": max_pool, "avg": avg_pool}[pool_type](kernel, stride, pad)


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """MXNet's Pooling(global_pool=True, pool_type='avg') followed by Flatten."""
    return x.mean((2, 3))
