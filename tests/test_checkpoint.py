import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from common import checkpoint, mxnet_params
from symbols import create_model


class Unit(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(4)
        self.conv1 = nn.Conv2d(4, 4, 3, bias=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1_unit1 = Unit()
        self.fc1 = nn.Linear(4, 2)


def test_mxnet_names_follow_module_paths_and_batchnorm_names():
    assert checkpoint.mxnet_names(Net()) == {
        "stage1_unit1.bn1.weight": "arg:stage1_unit1_bn1_gamma",
        "stage1_unit1.bn1.bias": "arg:stage1_unit1_bn1_beta",
        "stage1_unit1.bn1.running_mean": "aux:stage1_unit1_bn1_moving_mean",
        "stage1_unit1.bn1.running_var": "aux:stage1_unit1_bn1_moving_var",
        "stage1_unit1.conv1.weight": "arg:stage1_unit1_conv1_weight",
        "fc1.weight": "arg:fc1_weight",
        "fc1.bias": "arg:fc1_bias",
    }


def test_params_round_trip(tmp_path):
    torch.manual_seed(0)
    net = Net()
    net.stage1_unit1.bn1.running_mean.uniform_()
    prefix = str(tmp_path / "sub" / "net")
    path = checkpoint.save_params(prefix, 3, net)
    assert path.endswith("net-0003.params")
    arrays = mxnet_params.load(path)  # a plain MXNet NDArray list file
    assert "aux:stage1_unit1_bn1_moving_mean" in arrays and "arg:fc1_weight" in arrays
    fresh = Net()
    checkpoint.load_params(fresh, prefix, 3)
    for (name, a), b in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    assert not list(tmp_path.glob("sub/*.tmp")), "temporary files left behind"


def test_load_lists_every_problem_by_name(tmp_path):
    arrays = checkpoint.to_mxnet_arrays(Net())
    del arrays["arg:fc1_bias"]
    arrays["arg:fc1_weight"] = np.zeros((3, 3), np.float32)
    arrays["arg:extra_weight"] = np.zeros(1, np.float32)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load_mxnet_arrays(Net(), arrays, "x.params")
    message = str(err.value)
    assert "missing: fc1_bias" in message and "unexpected: extra_weight" in message
    assert "fc1_weight (3, 3) (network wants (2, 4))" in message


def test_symbol_json_rebuilds_network(tmp_path):
    prefix = str(tmp_path / "m")
    checkpoint.save_symbol(prefix, "lenet", {"num_classes": 7, "batch_size": 3})
    doc = checkpoint.load_symbol(prefix)
    net = create_model(doc["network"], **doc["kwargs"])
    assert net.fullyconnected1.out_features == 7
    assert json.load(open(prefix + "-symbol.json"))["network"] == "lenet"


def test_interrupted_write_keeps_old_file(tmp_path):
    path = str(tmp_path / "f.bin")
    checkpoint.atomic_write(path, lambda f: f.write(b"old"))

    def crash(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(path, crash)
    assert open(path, "rb").read() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_corrupt_states_is_clear_error(tmp_path):
    prefix = str(tmp_path / "m")
    open(checkpoint.states_path(prefix, 1), "wb").write(b"not a torch file")
    with pytest.raises(checkpoint.CheckpointError, match="m-0001.states cannot be read"):
        checkpoint.load_states(prefix, 1)
