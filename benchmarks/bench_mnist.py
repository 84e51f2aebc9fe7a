"""Training speed on MNIST, as the logged samples/sec, against MXNet 1.9.1 on the same 2-core machine.

    python benchmarks/bench_mnist.py [--data-dir DIR] [--epochs 3]   # default DIR: $IMAGECLS_DATASETS/mnist
    python benchmarks/bench_mnist.py --mxnet-python /tmp/mxvenv/bin/python --rounds 3

Runs `train_mnist.py` for each network with MXNet's defaults (batch 64) for a few epochs and prints the
median of the Speedometer lines (the first window of each epoch excluded, as it includes start-up). Later
epochs matter: a CPU loop that lets weights decay into denormal floats slows down from the second epoch.

With --mxnet-python (a virtualenv with `mxnet==1.9.1 "numpy<1.24"`), MXNet's own example runs too, written
out below as its train_mnist.py does it (NDArrayIter over the gz files scaled to [0, 1], Module.fit with
SGD lr 0.05, momentum 0.9, wd 1e-4, Xavier, Speedometer every 100 batches), alternating with ours for
--rounds rounds so both see the same machine; without it, ours is compared with the issue's figures.
"""
import argparse
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.cli import run_main  # noqa: E402
from common.datasets import dataset_folder  # noqa: E402
from common.metrics_log import parse_speedometer_line  # noqa: E402

MXNET_SAMPLES_PER_SEC = {"mlp": 65000, "lenet": 2900}  # MXNet 1.9.1 on this machine kind, as the issue gives

MXNET_SCRIPT = r'''
import gzip, logging, os, struct, sys
import numpy as np
import mxnet as mx
logging.basicConfig(level=logging.INFO, format="%(message)s")
network, data_dir, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def read(split):
    with gzip.open(os.path.join(data_dir, split + "-labels-idx1-ubyte.gz")) as f:
        f.read(8); labels = np.frombuffer(f.read(), dtype=np.uint8).astype(np.float32)
    with gzip.open(os.path.join(data_dir, split + "-images-idx3-ubyte.gz")) as f:
        f.read(16); images = np.frombuffer(f.read(), dtype=np.uint8).reshape(-1, 1, 28, 28)
    return images.astype(np.float32) / 255, labels
x = mx.sym.Variable("data")
if network == "mlp":
    x = mx.sym.Flatten(x)
    for i, hidden in enumerate((128, 64)):
        x = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=hidden, name=f"fc{i + 1}"), act_type="relu")
    x = mx.sym.FullyConnected(x, num_hidden=10, name="fc3")
else:
    for filters in (20, 50):
        x = mx.sym.Activation(mx.sym.Convolution(x, kernel=(5, 5), num_filter=filters), act_type="tanh")
        x = mx.sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2))
    x = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=500), act_type="tanh")
    x = mx.sym.FullyConnected(x, num_hidden=10)
module = mx.mod.Module(mx.sym.SoftmaxOutput(x, name="softmax"), context=mx.cpu())
module.fit(mx.io.NDArrayIter(*read("train"), 64, shuffle=True), eval_data=mx.io.NDArrayIter(*read("t10k"), 64),
           num_epoch=epochs, optimizer="sgd", optimizer_params={"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-4},
           initializer=mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2),
           batch_end_callback=mx.callback.Speedometer(64, 100))
'''


def median_speed(log: str) -> float:
    """The median Speedometer speed in a training log, leaving out each epoch's first window (start-up)."""
    speeds = [speed.samples_per_sec for line in log.splitlines()
              if (speed := parse_speedometer_line(line)) and speed.first_batch]
    if not speeds:
        raise SystemExit(f"no speed lines in the output:\n{log[-2000:]}")
    return statistics.median(speeds)


def measure(network: str, data_dir: str, epochs: int, mxnet_python: str | None = None) -> float:
    command = ([mxnet_python, "-c", MXNET_SCRIPT, network, data_dir, str(epochs)] if mxnet_python else
               [sys.executable, "train_mnist.py", "--network", network, "--data-dir", data_dir, "--num-epochs", str(epochs)])
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return median_speed(out.stdout + out.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="MNIST's four .gz files (default: $IMAGECLS_DATASETS/mnist)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--networks", default="mlp,lenet")
    parser.add_argument("--mxnet-python", help="a Python with MXNet 1.9.1: measure MXNet here too")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each, alternating ours and MXNet's")
    args = parser.parse_args()
    args.data_dir = dataset_folder(args.data_dir, "mnist", "--data-dir")
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    mx_label = "MXNet 1.9.1 (measured)" if args.mxnet_python else "MXNet 1.9.1 (issue)"
    print(f"| network | round | samples/sec | {mx_label} | ratio |\n|---|---|---|---|---|")
    for network in args.networks.split(","):
        ours, theirs = [], []
        for run in range(1, args.rounds + 1):
            ours.append(measure(network, args.data_dir, args.epochs))
            theirs.append(measure(network, args.data_dir, args.epochs, args.mxnet_python) if args.mxnet_python
                          else MXNET_SAMPLES_PER_SEC[network])
            print(f"| {network} | {run} | {ours[-1]:,.0f} | {theirs[-1]:,.0f} | {ours[-1] / theirs[-1]:.2f}x |", flush=True)
        if args.rounds > 1:
            speed, mx = statistics.median(ours), statistics.median(theirs)
            print(f"| {network} | median | {speed:,.0f} | {mx:,.0f} | {speed / mx:.2f}x |", flush=True)


if __name__ == "__main__":
    run_main(main)
