"""Importing MXNet checkpoints without MXNet: `.params` files built byte by byte, and `-symbol.json` graphs
written as MXNet writes them (layer names, ops and string attributes of MXNet's `symbols/resnet.py`)."""
import json
import struct

import numpy as np
import pytest
import torch

from common import checkpoint, mxnet_params
from common.checkpoint import CheckpointError
from common.mxnet_import import MXNetGraph, describe, load_model
from symbols import create_model, list_networks

needs_resnets = pytest.mark.skipif(not {"resnet", "resnext"} <= set(list_networks()),
                                   reason="symbols/resnet.py and resnext.py are not there yet")


# --- .params byte by byte (docs/formats.md section 6.2) ---------------------------------------------------

def array_record(shape, type_flag: int, data: bytes) -> bytes:
    return (struct.pack("<Iii", 0xF993FAC9, 0, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
            + struct.pack("<iii", 1, 0, type_flag) + data)


def params_file(records: list[bytes], names: list[str]) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records) + struct.pack("<Q", len(names))
    return out + b"".join(struct.pack("<Q", len(n)) + n.encode() for n in names)


def test_formats_example_of_158_bytes():
    raw = bytes.fromhex(
        "1201000000000000" "0000000000000000" "0200000000000000"
        "C9FA93F9" "00000000" "02000000" "0200000000000000" "0300000000000000" "01000000" "00000000" "00000000"
        "0000803F" "00000040" "00004040" "00008040" "0000A040" "0000C040"
        "C9FA93F9" "00000000" "01000000" "0100000000000000" "01000000" "00000000" "04000000" "07000000"
        "0200000000000000" "0500000000000000") + b"arg:w" + bytes.fromhex("0500000000000000") + b"aux:m"
    assert len(raw) == 158
    arrays = mxnet_params.loads(raw)
    np.testing.assert_array_equal(arrays["arg:w"], np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    assert arrays["aux:m"].dtype == np.int32 and arrays["aux:m"].tolist() == [7]


def test_float16_and_integer_arrays():
    half = np.array([0.5, -2.0, 65504.0], np.float16)
    ints = np.array([[1, -2], [3, 2**40]], np.int64)
    raw = params_file([array_record((3,), 2, half.tobytes()), array_record((2, 2), 6, ints.tobytes()),
                       array_record((4,), 3, bytes([0, 1, 254, 255]))],
                      ["arg:h", "aux:i", "arg:u"])
    arrays = mxnet_params.loads(raw)
    assert arrays["arg:h"].dtype == np.float16 and arrays["arg:h"].tolist() == [0.5, -2.0, 65504.0]
    assert arrays["aux:i"].tolist() == [[1, -2], [3, 2**40]]
    assert arrays["arg:u"].dtype == np.uint8 and arrays["arg:u"].tolist() == [0, 1, 254, 255]


def test_file_cut_short_is_a_clear_error(tmp_path):
    raw = params_file([array_record((2, 3), 0, np.ones(6, np.float32).tobytes())], ["arg:w"])
    path = tmp_path / "cut-0001.params"
    path.write_bytes(raw[:70])  # header 24 + array header 40 + 6 of its 24 data bytes
    with pytest.raises(mxnet_params.ParamsFormatError, match=r"truncated at byte \d+ while reading array 0 data"):
        mxnet_params.load(str(path))


# --- MXNet graphs ----------------------------------------------------------------------------------------

class GraphWriter:
    """Writes a `-symbol.json` the way MXNet 1.x does: variables (`op: null`) for data and every weight,
    then layers whose `inputs` are [node, output, version] triples and whose attributes are strings."""

    def __init__(self):
        self.nodes = [{"op": "null", "name": "data", "inputs": []}]

    def layer(self, op: str, name: str, inputs: list[int], params: tuple[str, ...] = (), **attrs) -> int:
        ids = list(inputs)
        for p in params:
            self.nodes.append({"op": "null", "name": f"{name}_{p}", "inputs": []})
            ids.append(len(self.nodes) - 1)
        node = {"op": op, "name": name, "inputs": [[i, 0, 0] for i in ids]}
        if attrs:
            node["attrs"] = {k: str(v) for k, v in attrs.items()}
        self.nodes.append(node)
        return len(self.nodes) - 1

    def conv(self, name, x, num_filter, kernel, stride=1, pad=0, num_group=1):
        return self.layer("Convolution", name, [x], ("weight",), kernel=(kernel, kernel), stride=(stride, stride),
                          pad=(pad, pad), num_filter=num_filter, num_group=num_group, no_bias="True",
                          workspace=256)

    def bn(self, name, x, fix_gamma=False):
        return self.layer("BatchNorm", name, [x], ("gamma", "beta", "moving_mean", "moving_var"),
                          fix_gamma=fix_gamma, eps=2e-5, momentum=0.9)

    def relu(self, name, x):
        return self.layer("Activation", name, [x], act_type="relu")

    def finish(self, x, num_classes: int) -> dict:
        x = self.layer("Flatten", "flatten0", [x])
        x = self.layer("FullyConnected", "fc1", [x], ("weight", "bias"), num_hidden=num_classes)
        self.nodes.append({"op": "null", "name": "softmax_label", "inputs": []})
        self.layer("SoftmaxOutput", "softmax", [x, len(self.nodes) - 1])
        return {"nodes": self.nodes, "arg_nodes": [i for i, n in enumerate(self.nodes) if n["op"] == "null"],
                "node_row_ptr": list(range(len(self.nodes) + 1)), "heads": [[len(self.nodes) - 1, 0, 0]],
                "attrs": {"mxnet_version": ["int", 10901]}}


def cifar_resnet_v2_graph(units_per_stage: int, num_classes: int, stride_of_stage2: int = 2) -> dict:
    """MXNet's symbols/resnet.py for CIFAR (basic units, filters 16/16/32/64), written out node by node."""
    g = GraphWriter()
    x = g.bn("bn_data", 0, fix_gamma=True)
    x = g.conv("conv0", x, 16, 3, 1, 1)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for unit in range(1, units_per_stage + 1):
            name = f"stage{stage}_unit{unit}"
            stride = (stride_of_stage2 if stage == 2 else 1 if stage == 1 else 2) if unit == 1 else 1
            act1 = g.relu(f"{name}_relu1", g.bn(f"{name}_bn1", x))
            y = g.conv(f"{name}_conv1", act1, filters, 3, stride, 1)
            y = g.conv(f"{name}_conv2", g.relu(f"{name}_relu2", g.bn(f"{name}_bn2", y)), filters, 3, 1, 1)
            shortcut = g.conv(f"{name}_sc", act1, filters, 1, stride) if unit == 1 else x
            x = g.layer("elemwise_add", f"_plus{stage}{unit}", [y, shortcut])
    x = g.relu("relu1", g.bn("bn1", x))
    x = g.layer("Pooling", "pool1", [x], global_pool="True", kernel=(7, 7), pool_type="avg")
    return g.finish(x, num_classes)


def random_arrays(model, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, value in checkpoint.to_mxnet_arrays(model).items():
        arrays[name] = (rng.uniform(0.5, 1.5, value.shape) if name.endswith("moving_var")
                        else rng.normal(0, 0.3, value.shape)).astype(np.float32)
    return arrays


def write_checkpoint(prefix, graph: dict, arrays: dict[str, np.ndarray], epoch: int = 3) -> None:
    with open(checkpoint.symbol_path(str(prefix)), "w") as f:
        json.dump(graph, f)
    with open(checkpoint.params_path(str(prefix), epoch), "wb") as f:
        mxnet_params.save(f, arrays)


@needs_resnets
def test_mxnet_resnet_graph_is_recognised_and_loaded(tmp_path):
    reference = create_model("resnet", 7, num_layers=20, image_shape="3,28,28")
    arrays = random_arrays(reference)
    arrays["arg:bn_data_gamma"] = np.full(3, 5.0, np.float32)  # fix_gamma: MXNet computes with 1
    write_checkpoint(tmp_path / "r20", cifar_resnet_v2_graph(3, 7), arrays)

    model, info = load_model(str(tmp_path / "r20"), 3)
    assert (info.network, info.num_classes, info.kwargs["num_layers"]) == ("resnet", 7, 20)
    assert info.layer_before_fullc == "flatten0" and info.classifier == "fc1" and info.normalises_input

    arrays["arg:bn_data_gamma"] = np.ones(3, np.float32)
    checkpoint.load_mxnet_arrays(reference, arrays, "expected")
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=1e-5, atol=1e-5)
    assert model.bn_data.weight.detach().tolist() == [1.0, 1.0, 1.0]


@needs_resnets
def test_resnext_groups_and_width_read_from_graph():
    reference = create_model("resnext", 5, num_layers=50, num_group=4, width_per_group=8)
    g = GraphWriter()
    # the family, depth, groups and widths are read from layer names and attributes: a graph listing the
    # network's layers (unconnected) is enough to check that
    for path, module in reference.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            g.layer("Convolution", path.replace(".", "_"), [0], kernel=module.kernel_size, stride=module.stride,
                    pad=module.padding, num_filter=module.out_channels, num_group=module.groups)
        elif isinstance(module, torch.nn.BatchNorm2d):
            g.layer("BatchNorm", path.replace(".", "_"), [0])
    graph = MXNetGraph(g.finish(len(g.nodes) - 1, 5), "rx-symbol.json")
    network, kwargs = describe(graph, {"arg:conv0_weight": np.zeros((64, 3, 7, 7), np.float32)})
    assert network == "resnext"
    assert kwargs == {"num_layers": 50, "image_shape": "3,224,224", "num_group": 4, "width_per_group": 8}


@needs_resnets
def test_mismatches_are_listed_by_name(tmp_path):
    reference = create_model("resnet", 7, num_layers=20, image_shape="3,28,28")
    arrays = random_arrays(reference)
    del arrays["arg:stage2_unit1_conv1_weight"]
    arrays["arg:stage3_unit1_sc_weight"] = np.zeros((64, 32, 3, 3), np.float32)
    arrays["aux:extra_moving_mean"] = np.zeros(3, np.float32)
    write_checkpoint(tmp_path / "bad", cifar_resnet_v2_graph(3, 7), arrays)
    with pytest.raises(CheckpointError) as e:
        load_model(str(tmp_path / "bad"), 3)
    message = str(e.value)
    assert "missing: stage2_unit1_conv1_weight" in message
    assert "unexpected: extra_moving_mean" in message
    assert "stage3_unit1_sc_weight (64, 32, 3, 3) (network wants (64, 32, 1, 1))" in message


@needs_resnets
def test_graph_that_differs_from_the_network_is_refused(tmp_path):
    reference = create_model("resnet", 7, num_layers=20, image_shape="3,28,28")
    write_checkpoint(tmp_path / "odd", cifar_resnet_v2_graph(3, 7, stride_of_stage2=1), random_arrays(reference))
    with pytest.raises(CheckpointError, match=r"stage2_unit1_conv1 kernel/stride/pad/groups"):
        load_model(str(tmp_path / "odd"), 3)


def test_our_own_checkpoint_loads_the_same_way(tmp_path):
    model = create_model("lenet", 10)
    prefix = str(tmp_path / "mnist")
    checkpoint.save_symbol(prefix, "lenet", {"network": "lenet", "num_classes": 10, "lr": 0.1})
    checkpoint.save_params(prefix, 2, model)
    loaded, info = load_model(prefix, 2)
    assert (info.network, info.num_classes, info.source) == ("lenet", 10, "ours")
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_unknown_graph_and_missing_files(tmp_path):
    g = GraphWriter()
    x = g.layer("Convolution", "mystery", [0], ("weight",), kernel=(3, 3), num_filter=4)
    write_checkpoint(tmp_path / "m", g.finish(x, 3), {"arg:mystery_weight": np.zeros((4, 3, 3, 3), np.float32)})
    with pytest.raises(CheckpointError, match="cannot tell which network this graph is; give --network"):
        load_model(str(tmp_path / "m"), 3)
    with pytest.raises(CheckpointError, match=r"m-0007.params not found"):
        load_model(str(tmp_path / "m"), 7)
