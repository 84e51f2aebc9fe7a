import argparse
import math
import re

import pytest
import torch

import train_mnist
from common import checkpoint, fit
from conftest import MNIST, needs_mnist, run_script, write_idx

LOG_PREFIX = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} Node\[0\] "


def mnist_args(data_dir, *extra: str) -> argparse.Namespace:
    return train_mnist.get_args_parser().parse_args(["--data-dir", str(data_dir), *extra])


def schedule_args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fit.add_fit_args(parser)
    args = parser.parse_args([])
    vars(args).update(kw)
    return args


def test_lr_steps_at_epoch_boundaries():
    args = schedule_args(lr=0.1, lr_factor=0.1, lr_step_epochs="2,3", num_epochs=4)
    lrs = [fit.learning_rate(args, step, steps_per_epoch=10) for step in range(40)]
    assert lrs[0] == lrs[19] == 0.1
    assert lrs[20] == pytest.approx(0.01) and lrs[29] == pytest.approx(0.01)
    assert lrs[30] == pytest.approx(0.001)


def test_lr_pow2_and_warmup():
    args = schedule_args(lr=1.0, lr_step_epochs="pow2", num_epochs=2, warmup_epochs=0)
    assert fit.learning_rate(args, 0, 10) == 1.0
    assert fit.learning_rate(args, 10, 10) == pytest.approx(0.25)
    warm = schedule_args(lr=1.0, lr_step_epochs="", warmup_epochs=1, num_epochs=3)
    assert [fit.learning_rate(warm, s, 4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_default_initializer_is_xavier_gaussian_in_magnitude_2():
    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("fc", torch.nn.Linear(400, 300))
    fit.initialize(net, "default", "mlp")
    assert net.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert net.fc.bias.abs().sum() == 0


def test_weight_decay_only_on_weights_and_gammas():
    net = torch.nn.Sequential()
    net.add_module("conv", torch.nn.Conv2d(3, 4, 3))
    net.add_module("bn", torch.nn.BatchNorm2d(4))
    opt = fit.build_optimizer(schedule_args(wd=0.5), net)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert decayed == {id(net.conv.weight), id(net.bn.weight)}
    assert opt.param_groups[1]["weight_decay"] == 0.0


def test_log_lines_are_mxnet_format(fake_mnist):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--num-epochs", "1", "--disp-batches", "4",
                        "--top-k", "5", "--loss", "ce")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    batch = [line for line in lines if "Batch [" in line]
    assert re.fullmatch(LOG_PREFIX + r"Epoch\[0\] Batch \[0-4\]\tSpeed: \d+\.\d\d samples/sec\t"
                        r"accuracy=\d\.\d{6}\ttop_k_accuracy_5=\d\.\d{6}\tcross-entropy=\d+\.\d{6}", batch[0])
    assert re.search(r"Batch \[4-8\]\t", batch[1])
    for pattern in (r"Epoch\[0\] Train-accuracy=\d\.\d{6}", r"Epoch\[0\] Time cost=\d+\.\d{3}",
                    r"Epoch\[0\] Validation-accuracy=\d\.\d{6}", r"Epoch\[0\] Validation-top_k_accuracy_5=\d\.\d{6}"):
        assert any(re.fullmatch(LOG_PREFIX + pattern, line) for line in lines), pattern


def test_learns_fake_mnist_and_saves_checkpoint(fake_mnist, tmp_path):
    prefix = tmp_path / "ck" / "mnist"
    result = train_mnist.main(mnist_args(fake_mnist, "--network", "lenet", "--num-epochs", "2",
                                         "--model-prefix", str(prefix), "--save-period", "1"))
    assert result["validation-accuracy"] > 0.9
    for suffix in ("-symbol.json", "-0001.params", "-0001.states", "-0002.params", "-0002.states"):
        assert (tmp_path / "ck" / f"mnist{suffix}").exists(), suffix


def test_resume_continues_exactly(fake_mnist, tmp_path):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    common = ("--network", "mlp", "--lr-step-epochs", "1", "--lr", "0.1", "--batch-size", "32")
    train_mnist.main(mnist_args(fake_mnist, *common, "--num-epochs", "2", "--model-prefix", whole))
    train_mnist.main(mnist_args(fake_mnist, *common, "--num-epochs", "1", "--model-prefix", split))
    train_mnist.main(mnist_args(fake_mnist, *common, "--num-epochs", "2", "--model-prefix", split,
                                "--load-epoch", "1"))
    a = open(checkpoint.params_path(whole, 2), "rb").read()
    b = open(checkpoint.params_path(split, 2), "rb").read()
    assert a == b, "1 + 1 epochs with a resume must give the same weights as 2 epochs"


def test_resume_with_the_recipe_options_continues_exactly(fake_mnist, tmp_path):
    """Mixing draws, label smoothing and the weight average continue as if nothing had stopped."""
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    common = ("--network", "mlp", "--lr-step-epochs", "cosine", "--lr", "0.1", "--batch-size", "32",
              "--label-smoothing", "0.1", "--mixup", "0.4", "--cutmix", "1", "--ema-decay", "0.9")
    train_mnist.main(mnist_args(fake_mnist, *common, "--num-epochs", "3", "--model-prefix", whole))
    train_mnist.main(mnist_args(fake_mnist, *common, "--num-epochs", "3", "--model-prefix", split))
    for f in tmp_path.glob("split-*000[23].*"):  # as if stopped after epoch 1
        f.unlink()
    train_mnist.main(mnist_args(fake_mnist, *common, "--num-epochs", "3", "--model-prefix", split,
                                "--load-epoch", "1"))
    for prefix in ("", "-ema"):
        a = open(checkpoint.params_path(whole + prefix, 3), "rb").read()
        b = open(checkpoint.params_path(split + prefix, 3), "rb").read()
        assert a == b, f"{prefix or 'raw'} weights differ after a resume"
    assert open(checkpoint.params_path(whole, 3), "rb").read() != open(
        checkpoint.params_path(whole + "-ema", 3), "rb").read()


def test_recipe_options_off_change_nothing(fake_mnist, tmp_path):
    plain, off = str(tmp_path / "plain"), str(tmp_path / "off")
    common = ("--network", "mlp", "--num-epochs", "1", "--batch-size", "32")
    train_mnist.main(mnist_args(fake_mnist, *common, "--model-prefix", plain))
    train_mnist.main(mnist_args(fake_mnist, *common, "--model-prefix", off, "--label-smoothing", "0", "--mixup", "0",
                                "--cutmix", "0", "--ema-decay", "0", "--sync-bn", "1", "--mixup-off-epochs", "3"))
    assert open(checkpoint.params_path(plain, 1), "rb").read() == open(checkpoint.params_path(off, 1), "rb").read()
    assert not (tmp_path / "off-ema-0001.params").exists()


def test_nan_loss_stops_with_epoch_and_batch(fake_mnist):
    with pytest.raises(fit.FitError, match=r"NaN or infinite at epoch 0, batch \d+"):
        train_mnist.main(mnist_args(fake_mnist, "--lr", "1e30", "--num-epochs", "1"))


def test_test_io_reports_reading_speed(fake_mnist):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--test-io", "1", "--disp-batches", "2")
    assert result.returncode == 0, result.stderr
    assert re.search(LOG_PREFIX + r"Batch \[1\]\tSpeed: \d+\.\d\d samples/sec", result.stderr)
    assert "Epoch[" not in result.stderr


@needs_mnist
def test_real_mnist_one_epoch():
    result = train_mnist.main(mnist_args(MNIST, "--num-epochs", "1"))
    assert result["validation-accuracy"] >= 0.95


@needs_mnist
def test_real_mnist_lenet_one_epoch_with_decaying_lr():
    # at a constant lr the last batches of an epoch move validation accuracy by +-0.5%; a linear decay
    # over the one epoch settles it (seeds 0-9: 0.9859-0.9895)
    result = train_mnist.main(mnist_args(MNIST, "--network", "lenet", "--num-epochs", "1",
                                         "--lr-step-epochs", "pow1"))
    assert result["validation-accuracy"] >= 0.983


def one_line_error(result, *fragments: str) -> None:
    """The run fails with exactly one `error:` line, last, and no traceback (log lines may precede it)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_truncated_gz_is_one_line_error(fake_mnist):
    path = fake_mnist / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    one_line_error(run_script("train_mnist.py", "--data-dir", str(fake_mnist)),
                   "train-images-idx3-ubyte.gz", "not a complete gzip file")


def test_wrong_magic_is_one_line_error(fake_mnist):
    import numpy as np
    write_idx(str(fake_mnist / "train-labels-idx1-ubyte.gz"), np.zeros((640, 2), np.uint8))
    one_line_error(run_script("train_mnist.py", "--data-dir", str(fake_mnist)),
                   "train-labels-idx1-ubyte.gz", "wrong IDX magic")


def test_missing_file_offline_names_url_and_path(fake_mnist):
    (fake_mnist / "t10k-images-idx3-ubyte.gz").unlink()
    one_line_error(run_script("train_mnist.py", "--data-dir", str(fake_mnist)),
                   "cannot download t10k-images-idx3-ubyte.gz", "https://", str(fake_mnist / "t10k-images"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_without_gpu_is_one_line_error(fake_mnist):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--gpus", "0")
    one_line_error(result, "asked for a GPU but this machine has none")
    assert result.returncode == 2


@pytest.mark.parametrize("option, value, message", [
    ("--network", "nosuchnet", "unknown network 'nosuchnet'"),
    ("--batch-size", "-5", "--batch-size must be positive"),
    ("--lr-step-epochs", "ten", "--lr-step-epochs 'ten'"),
])
def test_bad_options_are_one_line_errors(fake_mnist, option, value, message):
    one_line_error(run_script("train_mnist.py", "--data-dir", str(fake_mnist), option, value), message)


def test_label_outside_num_classes_is_one_line_error(fake_mnist):
    one_line_error(run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--num-classes", "5"),
                   "outside --num-classes 5")


def test_killed_run_leaves_whole_metrics_lines_and_resume_appends(fake_mnist, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    prefix = str(tmp_path / "m")
    metrics = prefix + "-metrics.jsonl"
    command = [sys.executable, "train_mnist.py", "--data-dir", str(fake_mnist), "--disp-batches", "1",
               "--batch-size", "8", "--num-epochs", "50", "--model-prefix", prefix]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(prefix + "-0001.params") and
                                          os.path.getsize(metrics) > 20_000):
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    lines = open(metrics).read().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert {"batch", "epoch"} <= {r["kind"] for r in records}
    train_mnist.main(mnist_args(fake_mnist, "--batch-size", "8", "--num-epochs", "2", "--model-prefix", prefix,
                                "--load-epoch", "1", "--disp-batches", "40"))
    resumed = [json.loads(line) for line in open(metrics).read().splitlines()]
    assert resumed[:len(records)] == records and resumed[-1] == {**resumed[-1], "kind": "epoch", "epoch": 1}
