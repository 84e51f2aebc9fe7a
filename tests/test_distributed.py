"""Several training processes on this CPU (gloo), started by tools/launch.py as on several machines; what
a collective does when a peer stops responding or dies."""
import pickle
import time

import pytest
import torch
import torch.distributed as tdist

from common import checkpoint, dist, mxnet_params
from common.cli import UserError
from common.dist import DistInfo, DistTimeoutError, check_gpus
from conftest import run_script

COMMON = ("--network", "mlp", "--batch-size", "32", "--num-epochs", "1", "--lr", "0.1", "--disp-batches", "5")


def test_two_processes_match_one_with_the_same_global_batch(fake_mnist, tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    single = run_script("train_mnist.py", "--data-dir", str(fake_mnist), *COMMON, "--model-prefix", one)
    assert single.returncode == 0, single.stderr
    both = run_script("tools/launch.py", "-n", "2", "--launcher", "local", "python", "train_mnist.py",
                      "--data-dir", str(fake_mnist), *COMMON, "--model-prefix", two, "--kv-store", "dist_sync")
    assert both.returncode == 0, both.stdout + both.stderr
    a = mxnet_params.load(checkpoint.params_path(one, 1))
    b = mxnet_params.load(checkpoint.params_path(two, 1))  # written by rank 0 after checking all ranks agree
    for name in a:
        torch.testing.assert_close(torch.from_numpy(b[name]), torch.from_numpy(a[name]), rtol=1e-4, atol=1e-5)
    accuracy = [line.rsplit("=", 1)[1] for line in (single.stderr + both.stdout + both.stderr).splitlines()
                if "Validation-accuracy" in line]
    assert len(accuracy) == 2 and abs(float(accuracy[0]) - float(accuracy[1])) < 0.01, accuracy
    assert "Node[0]" in both.stdout + both.stderr


def test_dist_kv_store_without_launcher_is_one_line_error(fake_mnist):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--kv-store", "dist_sync")
    assert result.returncode == 2 and "start it with tools/launch.py" in result.stderr.strip().splitlines()[-1]


def missing_gpu() -> tuple[tuple[str, str], str]:
    """(--gpus option, its error) for a GPU this machine lacks: any without CUDA, else one past the last."""
    if not torch.cuda.is_available():
        return ("--gpus", "0,1"), "asked for a GPU but this machine has none"
    count = torch.cuda.device_count()
    return ("--gpus", f"0,{count}"), f"asks for GPU {count} but this machine has {count} (0-{count - 1})"


@pytest.mark.parametrize("options, message", [
    (("--kv-store", "dist_async"), "synchronous"),
    missing_gpu(),
])
def test_bad_combinations_are_one_line_errors(fake_mnist, options, message):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), *options)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("count, ids, message", [
    (0, [0, 1], "--gpus 0,1 asked for a GPU but this machine has none (use --gpus '' to train on the CPU)"),
    (2, [0, 2], "--gpus asks for GPU 2 but this machine has 2 (0-1)"),
    (1, [1, 0], "--gpus asks for GPU 1 but this machine has 1 (0-0)"),
])
def test_missing_gpu_messages_with_and_without_cuda(monkeypatch, count, ids, message):
    """Both messages on any machine: CUDA's answers are faked."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(UserError) as err:
        check_gpus(ids)
    assert str(err.value) == message
    check_gpus(list(range(count)))  # the GPUs it has are fine


def test_batch_smaller_than_processes_is_one_line_error(fake_mnist):
    result = run_script("tools/launch.py", "-n", "2", "--launcher", "local", "python", "train_mnist.py",
                        "--data-dir", str(fake_mnist), "--batch-size", "1", "--kv-store", "dist_sync")
    assert result.returncode != 0
    assert "--batch-size 1 is smaller than the 2 processes" in result.stdout + result.stderr


# --- a peer that stops responding or dies

# Two processes all-reduce under dist.collective with --dist-timeout 2 s; rank 1 stops itself (SIGSTOP)
# first. Run with tools/launch.py.
STOPPED_PEER = """
import os, signal, torch
from common import cli, dist
def worker(info):
    if info.rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    with dist.collective("the test all-reduce", info):
        dist.all_reduce_sum(torch.ones(1), info)
cli.run_main(lambda: dist.run("", "dist_sync", 2, worker, timeout=2))
"""


@pytest.mark.parametrize("error, timeout, waited", [
    (RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4501. This is "
                  "typically caused by a remote worker crashing."), 20.0, "--dist-timeout 20 s"),
    (tdist.DistBackendError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv "
                            "operation to complete"), 2.5, "--dist-timeout 2.5 s"),
    (RuntimeError("Connection reset by peer"), None, "torch's default timeout"),
])
def test_collective_names_itself_when_a_peer_is_lost(error, timeout, waited):
    with pytest.raises(DistTimeoutError) as caught:
        with dist.collective("the gradient all-reduce", DistInfo(rank=1, world_size=2, timeout=timeout)):
            raise error
    assert str(caught.value) == (f"rank 1: the gradient all-reduce got no answer from a peer within {waited} "
                                 "(a process stopped responding or died)")
    assert isinstance(caught.value, UserError) and caught.value.__cause__ is error


@pytest.mark.parametrize("error", [ValueError("timed out"),
                                   RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x3)")])
def test_collective_lets_other_errors_through(error):
    with pytest.raises(type(error)) as caught:
        with dist.collective("the metric all-reduce", DistInfo(rank=0, world_size=2, timeout=20.0)):
            raise error
    assert caught.value is error


def test_dist_info_with_timeout_is_picklable():
    """The processes started per GPU receive it pickled."""
    info = DistInfo(rank=1, world_size=2, timeout=20.0)
    assert pickle.loads(pickle.dumps(info)) == info


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_dist_timeout_must_be_positive(timeout):
    with pytest.raises(UserError, match="--dist-timeout .* must be a positive number of seconds"):
        dist.run("", "local", 2, lambda info: None, timeout=timeout)


def test_stopped_peer_fails_the_collective_within_the_timeout():
    """dist.run's timeout reaches the process group: rank 0 gives up on the stopped rank 1 after 2 s with
    one line, and tools/launch.py then stops rank 1."""
    start = time.monotonic()
    result = run_script("tools/launch.py", "-n", "2", "--launcher", "local", "python", "-c", STOPPED_PEER,
                        timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("[localhost 0] -c: error: rank 0: the test all-reduce got no answer from a peer within "
            "--dist-timeout 2 s (a process stopped responding or died)") in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 40
