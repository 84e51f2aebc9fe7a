"""Load a checkpoint (`prefix-symbol.json` + `prefix-NNNN.params`) into a `symbols/` network: MXNet's own
checkpoints (the model zoo's, or any MXNet 0.x/1.x `save_checkpoint`) and those our training writes.

    model, info = load_model("model/imagenet1k-resnet-50", 0)   # info.network == "resnet", num_layers 50

An MXNet `-symbol.json` is a graph of layers (docs/formats.md section 6.6). It is read as plain JSON, never
executed: the family is told by layer names only it has (`stage1_unit1_sc_bn` is ResNeXt), the depth by
counting residual units, the classes by the last FullyConnected's `num_hidden`; `network`/`num_layers`
override the guess. The matching `symbols/` network is built, its convolutions checked against the
graph (kernel, stride, padding, groups), BatchNorms take the graph's `eps` and `fix_gamma` (fixed gammas
are set to 1, as MXNet computes them), and the tensors are copied by name: any missing, unexpected or
mis-shaped tensor is listed by name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch.nn as nn

from common import checkpoint
from common.checkpoint import CheckpointError
from symbols import create_model, network_options

# A layer name that only one family has, in the order they are tried (the first match wins).
FAMILY_SIGNS = (
    ("resnext", "stage1_unit1_sc_bn"), ("resnet-v1", "stage1_unit1_conv1sc"), ("resnet", "stage1_unit1_sc"),
    ("inception-bn", "conv_2_red"), ("inception-bn", "bn_in3a_1x1"),  # its 224x224 and its 28x28 network
    ("inception-v3", "conv_conv2d"), ("inception-v4", "in_stem_conv1_3*3_conv2d"),
    ("mobilenetv2", "first-3x3-conv-conv2d"), ("mobilenet", "conv_2_dw_conv2d"), ("googlenet", "conv_conv1"),
    ("vgg", "conv1_1"), ("inception-resnet-v2", "batchnorm0"), ("alexnet", "conv1"), ("lenet", "convolution1"),
    ("mlp", "fc1"),
)
RESNETS = ("resnet", "resnet-v1", "resnext")


@dataclass
class Layer:
    name: str
    op: str
    attrs: dict[str, str]
    inputs: list[int]  # node numbers


@dataclass
class ModelInfo:
    """What was loaded: the `symbols/` network and the keyword arguments that rebuild it."""
    network: str
    num_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = "mxnet"               # "mxnet" (an MXNet graph) or "ours" (written by common/fit.py)
    classifier: str = ""                # MXNet name of the last fully-connected layer
    layer_before_fullc: str | None = None  # the graph layer feeding it (MXNet graphs only)
    normalises_input: bool = False      # the network starts with a BatchNorm (`bn_data`), so needs no --rgb-mean


class MXNetGraph:
    """The layers of an MXNet `-symbol.json` (format of MXNet 0.8 to 1.9: attributes under `attrs`,
    `attr` or `param`)."""

    def __init__(self, doc: dict, path: str):
        try:
            self.nodes = [Layer(n["name"], n["op"], dict(n.get("attrs") or n.get("attr") or n.get("param") or {}),
                                [int(i[0]) for i in n.get("inputs", [])]) for n in doc["nodes"]]
            self.head = int(doc["heads"][0][0])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise CheckpointError(f"{path}: not an MXNet symbol graph ({type(e).__name__}: {e})") from None
        self.path = path
        self.layers = {n.name: n for n in self.nodes if n.op != "null"}

    def last_fullc(self) -> Layer:
        """The FullyConnected layer that produces the output (walking back from the head through its data)."""
        node = self.nodes[self.head]
        while node.op != "FullyConnected":
            if not node.inputs:
                raise CheckpointError(f"{self.path}: the output is not computed by a FullyConnected layer")
            node = self.nodes[node.inputs[0]]
        return node

    def of_op(self, op: str) -> list[Layer]:
        return [n for n in self.nodes if n.op == op]


def parse_ints(text: str) -> tuple[int, ...]:
    """MXNet attribute '(3, 3)' or '3' -> (3, 3) or (3,)."""
    return tuple(int(v) for v in re.findall(r"-?\d+", text))


def parse_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1")


def describe(graph: MXNetGraph, arrays: dict[str, np.ndarray]) -> tuple[str, dict[str, Any]]:
    """(family, keyword arguments for `create_model`) of an MXNet graph."""
    names = set(graph.layers)
    network = next((family for family, sign in FAMILY_SIGNS if sign in names), None)
    if network == "mlp" and graph.of_op("Convolution"):  # `fc1` alone says little
        network = None
    if network is None:
        raise CheckpointError(f"{graph.path}: cannot tell which network this graph is; give --network "
                              "(and --num-layers)")
    first_conv = graph.of_op("Convolution")[0] if graph.of_op("Convolution") else None
    channels = _shape(arrays, f"{first_conv.name}_weight")[1] if first_conv else 3
    if network == "mlp":  # 28x28 images flattened
        channels = max(_shape(arrays, "fc1_weight")[1] // (28 * 28), 1)
    if network in RESNETS:
        return network, _describe_resnet(graph, network, channels)
    if network == "vgg":
        return network, {"num_layers": len(graph.of_op("Convolution")) + 3,
                         "batch_norm": bool(graph.of_op("BatchNorm")), "image_shape": f"{channels},224,224"}
    if network == "mobilenet":
        return network, {"alpha": int(graph.layers["conv_1_conv2d"].attrs["num_filter"]) / 32,
                         "image_shape": f"{channels},224,224"}
    if network == "mobilenetv2":
        return network, {"multiplier": int(graph.layers["first-3x3-conv-conv2d"].attrs["num_filter"]) / 32,
                         "image_shape": f"{channels},224,224"}
    if network == "inception-bn":
        small = parse_ints(graph.layers["conv_1"].attrs["kernel"])[0] == 3
        return network, {"image_shape": f"{channels},28,28" if small else f"{channels},224,224"}
    if network in ("inception-v3", "inception-v4", "inception-resnet-v2"):
        return network, {"image_shape": f"{channels},299,299"}
    if network in ("mlp", "lenet"):
        return network, {"image_shape": f"{channels},28,28"}
    return network, {"image_shape": f"{channels},224,224"}


def _describe_resnet(graph: MXNetGraph, network: str, channels: int) -> dict[str, Any]:
    units = []
    while f"stage{len(units) + 1}_unit1_conv1" in graph.layers:
        stage = len(units) + 1
        units.append(sum(1 for n in graph.layers if re.fullmatch(rf"stage{stage}_unit\d+_conv1", n)))
    bottle_neck = "stage1_unit1_conv3" in graph.layers
    num_layers = sum(units) * (3 if bottle_neck else 2) + 2
    cifar = parse_ints(graph.layers["conv0"].attrs["kernel"])[0] == 3
    kwargs: dict[str, Any] = {"num_layers": num_layers,
                              "image_shape": f"{channels},28,28" if cifar else f"{channels},224,224"}
    if network == "resnext":
        conv1, conv2 = graph.layers["stage1_unit1_conv1"], graph.layers["stage1_unit1_conv2"]
        num_group = int(conv2.attrs.get("num_group", "1"))
        kwargs["num_group"] = num_group
        width = int(conv1.attrs["num_filter"])
        if bottle_neck and width != int(graph.layers["stage1_unit1_conv3"].attrs["num_filter"]) // 2:
            kwargs["width_per_group"] = width // num_group  # not MXNet's default width (half): e.g. 64x4d
    return kwargs


def _shape(arrays: dict[str, np.ndarray], name: str) -> tuple[int, ...]:
    for key in (f"arg:{name}", name):
        if key in arrays:
            return arrays[key].shape
    raise CheckpointError(f"the .params file has no {name}")


def _layers_of(model: nn.Module) -> dict[str, nn.Module]:
    """Modules by MXNet layer name (module path joined with '_')."""
    return {path.replace(".", "_"): module for path, module in model.named_modules() if path}


def _classifier(model: nn.Module, num_classes: int) -> str:
    """MXNet name of the network's output layer: its last Linear with `num_classes` outputs."""
    linears = [name for name, m in _layers_of(model).items()
               if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not linears:
        raise CheckpointError(f"the network has no fully-connected layer with {num_classes} outputs")
    return linears[-1]


def _apply_graph(model: nn.Module, graph: MXNetGraph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Make `model` compute what the graph computes (BatchNorm eps and fix_gamma), check its convolutions, and
    return `arrays` with fixed gammas set to 1."""
    layers = _layers_of(model)
    arrays = {k.split(":", 1)[-1]: v for k, v in arrays.items()}
    differences = []
    for node in graph.of_op("Convolution"):
        conv = layers.get(node.name)
        if not isinstance(conv, nn.Conv2d):
            continue  # a missing layer shows as missing tensors
        kernel = parse_ints(node.attrs.get("kernel", "()"))
        stride = parse_ints(node.attrs.get("stride", "(1, 1)")) or (1, 1)
        pad = parse_ints(node.attrs.get("pad", "(0, 0)")) or (0, 0)
        groups = int(node.attrs.get("num_group", "1"))
        want = (tuple(kernel), tuple(stride), tuple(pad), groups)
        have = (tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding), conv.groups)
        if want != have:
            differences.append(f"{node.name} kernel/stride/pad/groups {want} (network has {have})")
    if differences:
        raise CheckpointError(f"{graph.path}: the network built does not match the graph: " + "; ".join(differences))
    for node in graph.of_op("BatchNorm"):
        norm = layers.get(node.name)
        fix_gamma = parse_bool(node.attrs.get("fix_gamma", "True"))  # MXNet's default is True
        if fix_gamma and f"{node.name}_gamma" in arrays:
            arrays[f"{node.name}_gamma"] = np.ones_like(arrays[f"{node.name}_gamma"])
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            continue
        norm.eps = float(node.attrs.get("eps", "0.001"))
        if not fix_gamma and getattr(norm, "fix_gamma", False):
            norm.fix_gamma = False  # the graph trains and uses its gamma: so must we
            norm.weight.requires_grad_(True)
    return arrays


def load_model(prefix: str, epoch: int, network: str | None = None, num_layers: int | None = None
               ) -> tuple[nn.Module, ModelInfo]:
    """Build the network of checkpoint `prefix` and load the weights saved after `epoch`. `network` and
    `num_layers` override what an MXNet graph suggests. Raises CheckpointError naming the file and what
    does not fit."""
    symbol_file = checkpoint.symbol_path(prefix)
    doc = checkpoint.read_symbol_file(prefix)
    params_file = checkpoint.params_path(prefix, epoch)
    arrays = checkpoint.read_params(params_file)
    if isinstance(doc, dict) and doc.get("format") == checkpoint.SYMBOL_FORMAT:
        model, info = _build_ours(doc, symbol_file, network, num_layers)
    elif isinstance(doc, dict) and "nodes" in doc:
        graph = MXNetGraph(doc, symbol_file)
        model, info = _build_from_graph(graph, arrays, network, num_layers)
        arrays = _rename_classifier(_apply_graph(model, graph, arrays), graph.last_fullc().name, info.classifier)
    else:
        raise CheckpointError(f"{symbol_file} is neither an MXNet graph nor a checkpoint of this suite")
    checkpoint.load_mxnet_arrays(model, arrays, params_file)
    for module in model.modules():
        if getattr(module, "fix_gamma", False):
            module.weight.data.fill_(1.0)
    return model, info


def _rename_classifier(arrays: dict[str, np.ndarray], graph_name: str, model_name: str) -> dict[str, np.ndarray]:
    """The zoo's older graphs name the output layer differently (`fc1`, `fc`, `fullyconnected0`): load its
    tensors into the network's output layer whatever the name."""
    renamed = {graph_name + suffix: model_name + suffix for suffix in ("_weight", "_bias")}
    return {renamed.get(key, key): value for key, value in arrays.items()}


def _build_from_graph(graph: MXNetGraph, arrays: dict[str, np.ndarray], network: str | None,
                      num_layers: int | None) -> tuple[nn.Module, ModelInfo]:
    fullc = graph.last_fullc()
    num_classes = int(fullc.attrs.get("num_hidden") or _shape(arrays, f"{fullc.name}_weight")[0])
    try:
        detected, kwargs = describe(graph, arrays)
    except (KeyError, ValueError) as e:  # CheckpointError is a ValueError
        if network is None:
            raise e if isinstance(e, CheckpointError) else \
                CheckpointError(f"{graph.path}: unexpected layer attributes ({e!r}); give --network") from None
        detected, kwargs = network, {}
    if network is not None and network != detected:
        detected, kwargs = network, {}
    model = _create(detected, num_classes, kwargs, num_layers, graph.path)
    info = ModelInfo(detected, num_classes, kwargs, "mxnet", _classifier(model, num_classes),
                     graph.nodes[fullc.inputs[0]].name, "bn_data" in graph.layers)
    return model, info


def _create(network: str, num_classes: int, kwargs: dict, num_layers: int | None, path: str) -> nn.Module:
    """The symbols/ network for a checkpoint (kwargs gets --num-layers when given); a clear error if it cannot be built."""
    if num_layers is not None:
        kwargs["num_layers"] = num_layers
    try:
        return create_model(network, num_classes, **kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot build {network} {kwargs}: {e}") from None


def _build_ours(doc: dict, path: str, network: str | None, num_layers: int | None) -> tuple[nn.Module, ModelInfo]:
    """A checkpoint of common/fit.py: its symbol file holds the network name and the options it was built with."""
    kwargs = dict(doc.get("kwargs") or {})
    network = network or doc.get("network")
    num_classes = kwargs.pop("num_classes", None)
    if not network or not isinstance(num_classes, int):
        raise CheckpointError(f"{path} does not say which network or how many classes (num_classes) it has")
    model = _create(network, num_classes, kwargs, num_layers, path)
    return model, ModelInfo(network, num_classes, network_options(kwargs), "ours", _classifier(model, num_classes), None,
                            isinstance(getattr(model, "bn_data", None), nn.Module))
