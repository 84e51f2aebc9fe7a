"""Inference: a trained network made ready to score batches fast (`prepare`), used by score.py.

What `prepare` does, each step kept only where it leaves the logits equal up to float rounding (or, for a
lower `dtype`, where the caller asked for it):

- `fold_batchnorm`: every BatchNorm that directly follows a convolution becomes part of that convolution's
  weights and bias (two of the three in a pre-activation ResNet unit, all in ResNet v1, MobileNet and the
  Inception units); the BatchNorms that follow an addition or the input stay.
- ReLUs of a fresh tensor run in place (`inplace_relu`), which saves a pass over memory and an allocation.
- channels_last memory format (oneDNN's preferred layout on CPUs).
- On CPUs with glibc, freed memory stays with the process (`keep_freed_memory`): an activation of a
  ResNet at batch 32 is up to 100 MB, which glibc would otherwise hand back to the kernel at every free and
  fault in again page by page at the next allocation (this alone doubled ResNet-50's scoring speed on the
  2-core machine).
- A lower `dtype` (bfloat16, float16) runs the network under autocast, with float32 logits.
- With `compile=True`, torch.compile with the weights frozen into the graph (oneDNN convolutions with
  their ReLUs and additions fused); it compiles at the first batch, which then takes seconds to a minute.
"""
from __future__ import annotations

import copy
import ctypes
import ctypes.util
import logging
import operator
import platform
from collections import Counter

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)


def prepare(model: nn.Module, device: torch.device, dtype: torch.dtype, shape: tuple[int, int, int],
            compile: bool = False) -> nn.Module:
    """`model` on `device`, ready for inference: it maps normalised float32 NCHW batches of `shape` to
    float32 logits, computing in `dtype`, compiled if `compile`. `model` itself is left as it is."""
    model = copy.deepcopy(model).eval()
    graph = trace(model)
    if graph is not None:
        fold_batchnorm(graph)
        inplace_relu(graph)
        model = graph
    model = model.to(device, memory_format=torch.channels_last)
    if device.type == "cpu":
        keep_freed_memory()
    if dtype != torch.float32:
        model = Autocast(model, device.type, dtype)
    return Compiled(model) if compile else model


_BATCHNORM = nn.modules.batchnorm._BatchNorm


class _LeafTracer(fx.Tracer):
    """Traces down to convolutions and BatchNorms (ours included: its forward branches on its mode)."""

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return isinstance(m, (nn.Conv2d, _BATCHNORM)) or super().is_leaf_module(m, qualified_name)


def trace(model: nn.Module) -> fx.GraphModule | None:
    """`model` as an FX graph of its layers, or None where its forward cannot be traced symbolically (it is
    then scored as it is)."""
    try:
        return fx.GraphModule(model, _LeafTracer().trace(model), model.__class__.__name__)
    except Exception as e:  # tracing runs arbitrary forward code: any failure means "score it unchanged"
        log.debug("%s is not traceable (%s): scoring it unfolded", model.__class__.__name__, e)
        return None


def fold_batchnorm(graph: fx.GraphModule) -> int:
    """Fold every BatchNorm whose input is a convolution that is called once and used by nothing else into
    that convolution (its weight scaled per output channel, its bias shifted) and drop the BatchNorm;
    returns how many folded."""
    modules = dict(graph.named_modules())
    calls = Counter(node.target for node in graph.graph.nodes if node.op == "call_module")
    folded = 0
    for node in list(graph.graph.nodes):
        if not (node.op == "call_module" and isinstance(modules[node.target], _BATCHNORM)
                and modules[node.target].track_running_stats):
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module"
                and type(modules[source.target]) is nn.Conv2d
                and len(source.users) == 1 and calls[source.target] == 1):
            continue
        graph.add_submodule(source.target, folded_conv(modules[source.target], modules[node.target]))
        node.replace_all_uses_with(source)
        graph.graph.erase_node(node)
        folded += 1
    graph.graph.lint()
    graph.delete_all_unused_submodules()
    graph.recompile()
    return folded


def folded_conv(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Conv2d:
    """A convolution computing `bn(conv(x))` with `bn`'s running statistics."""
    with torch.no_grad():
        fixed_gamma = getattr(bn, "fix_gamma", False) or bn.weight is None
        gamma = torch.ones_like(bn.running_var) if fixed_gamma else bn.weight
        beta = torch.zeros_like(bn.running_mean) if bn.bias is None else bn.bias
        scale = gamma / torch.sqrt(bn.running_var + bn.eps)
        bias = torch.zeros_like(bn.running_mean) if conv.bias is None else conv.bias
        fused = copy.deepcopy(conv)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias = nn.Parameter((bias - bn.running_mean) * scale + beta)
    return fused


# What makes a new tensor that nothing else aliases: a ReLU that is its only user may overwrite it.
_FRESH_MODULES = (nn.Conv2d, _BATCHNORM, nn.Linear)
_FRESH_FUNCTIONS = (operator.add, torch.add)
_RELUS = (F.relu, torch.relu)


def inplace_relu(graph: fx.GraphModule) -> int:
    """Make every ReLU whose input is a fresh tensor (the output of a convolution, BatchNorm, linear layer
    or addition) used by this ReLU alone run in place; returns how many."""
    modules = dict(graph.named_modules())
    changed = 0
    for node in graph.graph.nodes:
        if not (node.op == "call_function" and node.target in _RELUS and len(node.args) == 1
                and not node.kwargs.get("inplace", False)):
            continue
        source = node.args[0]
        fresh = isinstance(source, fx.Node) and len(source.users) == 1 and (
            (source.op == "call_module" and isinstance(modules[source.target], _FRESH_MODULES))
            or (source.op == "call_function" and source.target in _FRESH_FUNCTIONS))
        if fresh:
            node.target, node.kwargs = torch.relu_, {}
            changed += 1
    graph.recompile()
    return changed


class Autocast(nn.Module):
    """`model` run under autocast to `dtype` on `device_type`, returning float32 outputs."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, self.dtype):
            return self.model(x).float()


class Compiled(nn.Module):
    """`model` compiled with frozen weights for the size of the first batch it gets: a smaller batch (the
    last) is padded to that size, so that it needs no compilation of its own. Where compiling fails, `model`
    runs as it is, after a warning."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.compiled = None
        self.size: tuple[int, ...] | None = None  # the first batch's size and strides
        self.stride: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is None:
            self.size, self.stride = tuple(x.shape), x.stride()
            try:
                self.compiled = torch.compile(self.model, dynamic=False, options={"freezing": True})
                return self.compiled(x)
            except Exception as e:  # a missing C++ compiler, an operator the compiler lacks, ...
                log.warning("torch.compile failed, scoring uncompiled: %s", str(e).splitlines()[0])
                self.compiled = None
        n = len(x)
        if self.compiled is None or n > self.size[0] or tuple(x.shape[1:]) != self.size[1:]:
            return self.model(x)
        if n < self.size[0]:
            padded = torch.empty_strided(self.size, self.stride, dtype=x.dtype, device=x.device)
            padded[:n] = x
            padded[n:] = 0
            return self.compiled(padded)[:n]
        return self.compiled(x)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve every allocation from the heap and keep freed memory for reuse, instead of
    mapping each large block anew (and faulting its pages in) and unmapping it at free. Process-wide;
    returns False where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
