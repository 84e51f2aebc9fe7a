import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from common.metrics_log import MetricsLog
from common.plotting import Panel, Series, save_line_plots

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MXNET_LOG = os.path.join(REPO, "tests", "data", "mxnet-mnist.log")
BLUE, ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's C0 and C1: the first and second run


def plot_log(*args):
    return subprocess.run([sys.executable, "tools/plot_log.py", *args], cwd=REPO, capture_output=True,
                          text=True)


def has_colour(path, rgb):
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return bool((np.abs(pixels.astype(int) - rgb).sum(axis=1) < 30).any())


@pytest.fixture
def second_run(tmp_path):
    path = str(tmp_path / "pytorch-metrics.jsonl")
    with MetricsLog(path) as log:
        for epoch in range(5):
            accuracy = 0.9 + 0.015 * epoch
            log.log_batch(epoch, 19, 40000.0 + 500 * epoch, 0.05, {"accuracy": accuracy - 0.01}, elapsed=1.0)
            log.log_epoch(epoch, 40000.0, 0.05, {"accuracy": accuracy}, {"accuracy": accuracy + 0.005},
                          elapsed=1.5)
    return path


def test_two_runs_make_a_png_of_the_expected_size(tmp_path, second_run):
    out = tmp_path / "curves.png"
    result = plot_log(MXNET_LOG, second_run, "-o", str(out), "--labels", "mxnet,pytorch",
                      "--title", "MNIST mlp")
    assert (result.returncode, result.stderr) == (0, "")
    with Image.open(out) as image:
        assert (image.format, image.size) == ("PNG", (1500, 400))
    assert has_colour(out, BLUE) and has_colour(out, ORANGE)

    result = plot_log(MXNET_LOG, second_run, "-o", str(out), "--dpi", "50")
    assert result.returncode == 0
    with Image.open(out) as image:
        assert image.size == (750, 200)


def test_speedup_plot_with_the_same_helper(tmp_path):
    gpus = [1, 2, 4, 8]
    out = str(tmp_path / "speedup.png")
    speedup = Panel("ResNet-50 speedup", "GPUs", "speedup over 1 GPU", integer_x=True, y_from_zero=True,
                    series=[Series("measured", gpus, [1.0, 1.9, 3.6, 6.8]),
                            Series("ideal (linear)", gpus, gpus, linestyle="--", marker="")])
    save_line_plots([speedup, Panel("Empty", "x", "y")], out)
    with Image.open(out) as image:
        assert image.size == (1000, 400)
    assert has_colour(out, BLUE) and has_colour(out, ORANGE)


@pytest.mark.parametrize("args, code, message", [
    (["missing.log"], 1, "plot_log.py: error: missing.log: no such file"),
    ([MXNET_LOG, "--metric", "top1"], 1, "plot_log.py: error: no metric 'top1' in"),
    ([MXNET_LOG, "--labels", "a,b"], 2, "plot_log.py: error: --labels names 2 runs but 1 LOGFILEs are given"),
    ([MXNET_LOG, "--dpi", "0"], 2, "plot_log.py: error: --dpi must be a positive number"),
    ([MXNET_LOG, "-o", "curves.xyz"], 1, "plot_log.py: error: cannot write curves.xyz: Format 'xyz' is not"),
])
def test_user_mistakes_get_one_line(tmp_path, args, code, message):
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "plot_log.py"), *args], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "curves.xyz")
