import argparse
import hashlib
import json
import logging
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import train_mnist
from common import checkpoint, fit, mxnet_params
from conftest import run_script
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


# --- the .params/.states pair

def training_state(step: int) -> dict:
    return {"epoch": 2, "global_step": step, "optimizer": {"state": {}, "param_groups": []},
            "scaler": {}, "rng": torch.get_rng_state()}


def seeded_net(seed: int) -> Net:
    torch.manual_seed(seed)
    return Net()


def test_pair_states_hold_the_digest_of_their_params(tmp_path):
    net = seeded_net(0)
    prefix, alone = str(tmp_path / "pair"), str(tmp_path / "alone")
    path = checkpoint.save_checkpoint(prefix, 2, net, training_state(7))
    assert path == checkpoint.params_path(prefix, 2)
    params = open(path, "rb").read()
    # the .params bytes are MXNet's NDArray list, exactly those written without a .states
    assert params == open(checkpoint.save_params(alone, 2, net), "rb").read()
    assert params == mxnet_params.dumps(checkpoint.to_mxnet_arrays(net))
    states = checkpoint.load_states(prefix, 2)
    assert states["global_step"] == 7 and states["epoch"] == 2
    assert states[checkpoint.PARAMS_DIGEST] == hashlib.sha256(params).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone-0002.params", "pair-0002.params",
                                                          "pair-0002.states"]


def kill_after_first_file(monkeypatch):
    """Make the second atomic write of a save die as a kill would, once the first file is in place."""
    real, written = checkpoint.atomic_write, []

    def write(path, contents):
        if written:
            raise KeyboardInterrupt(f"killed before {path} was written")
        real(path, contents)
        written.append(path)

    monkeypatch.setattr(checkpoint, "atomic_write", write)
    return written


def restore_args(prefix: str, epoch: int) -> argparse.Namespace:
    return argparse.Namespace(model_prefix=prefix, load_epoch=epoch)


def test_save_killed_over_an_older_pair_is_a_clear_error_on_resume(tmp_path, monkeypatch):
    """A run saving epoch 2 over the files of an earlier run with the same prefix is killed between the two
    writes: resuming from epoch 2 says the pair does not belong together instead of mixing them."""
    prefix = str(tmp_path / "m")
    checkpoint.save_checkpoint(prefix, 2, seeded_net(0), training_state(100))  # the earlier run
    kill_after_first_file(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(prefix, 2, seeded_net(1), training_state(200))
    monkeypatch.undo()
    with pytest.raises(checkpoint.CheckpointError) as err:
        fit.restore(restore_args(prefix, 2), seeded_net(2), checkpoint.Position(2))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{prefix}-0002.states was saved with other weights than {prefix}-0002.params")
    assert "delete m-0002.states to continue from these weights with a fresh optimizer" in message
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


def test_save_killed_between_the_files_never_leaves_params_without_states(tmp_path, monkeypatch, caplog):
    """The .states goes first: a .params without its .states is never ours half-saved, so the fresh
    optimizer that such a .params resumes with (an MXNet checkpoint) never replaces a lost exact state."""
    prefix = str(tmp_path / "m")
    written = kill_after_first_file(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(prefix, 1, seeded_net(0), training_state(20))
    monkeypatch.undo()
    assert written == [checkpoint.states_path(prefix, 1)]
    assert not os.path.exists(checkpoint.params_path(prefix, 1))
    with pytest.raises(checkpoint.CheckpointError, match="m-0001.params not found"):
        fit.restore(restore_args(prefix, 1), seeded_net(0), checkpoint.Position(1))


def test_resume_with_a_whole_pair_or_params_alone(tmp_path, caplog):
    prefix, weights = str(tmp_path / "m"), seeded_net(0)
    checkpoint.save_checkpoint(prefix, 3, weights, training_state(30))
    resumed = seeded_net(1)
    assert fit.restore(restore_args(prefix, 3), resumed, checkpoint.Position(3))["global_step"] == 30
    for a, b in zip(weights.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    os.unlink(checkpoint.states_path(prefix, 3))  # weights alone, as MXNet's: a fresh optimizer, said
    with caplog.at_level(logging.WARNING):
        assert fit.restore(restore_args(prefix, 3), seeded_net(1), checkpoint.Position(3)) is None
    assert f"no optimizer state {prefix}-0003.states: continuing with a fresh optimizer" in caplog.text


def test_states_without_a_digest_are_still_read(tmp_path):
    """A .states written before the digest was stored resumes as it did."""
    prefix = str(tmp_path / "m")
    checkpoint.save_params(prefix, 1, seeded_net(0))
    checkpoint.save_states(prefix, 1, training_state(5))
    assert checkpoint.load_states(prefix, 1)["global_step"] == 5


def test_mismatched_pair_is_one_line_error_of_the_script(fake_mnist, tmp_path):
    prefix = str(tmp_path / "mlp")
    train_mnist.main(train_mnist.get_args_parser().parse_args([
        "--data-dir", str(fake_mnist), "--num-epochs", "1", "--batch-size", "64", "--model-prefix", prefix]))
    torch.manual_seed(1)
    checkpoint.save_params(prefix, 1, create_model("mlp", 10))  # other weights, as a half-done later save
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--model-prefix", prefix,
                        "--load-epoch", "1", "--num-epochs", "2", "--batch-size", "64")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"train_mnist.py: error: {prefix}-0001.states was saved with other weights than {prefix}-0001.params")
