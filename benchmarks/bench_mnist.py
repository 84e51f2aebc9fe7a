"""Training speed on MNIST, as the logged samples/sec, against MXNet 1.9.1 on the same 2-core machine.

    python benchmarks/bench_mnist.py [--data-dir ../shared/datasets/mnist] [--epochs 1]

Runs `train_mnist.py` for each network with MXNet's defaults (batch 64) for a few epochs and prints the
median of the Speedometer lines (the first window of each epoch excluded, as it includes start-up). Later
epochs matter: a CPU loop that lets weights decay into denormal floats slows down from the second epoch.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MXNET_SAMPLES_PER_SEC = {"mlp": 65000, "lenet": 2900}  # MXNet 1.9.1, measured on this machine kind


def measure(network: str, data_dir: str, epochs: int) -> float:
    out = subprocess.run([sys.executable, "train_mnist.py", "--network", network, "--data-dir", data_dir,
                          "--num-epochs", str(epochs)], cwd=ROOT, capture_output=True, text=True, check=True)
    speeds = [float(m.group(2)) for m in re.finditer(r"Batch \[(\d+)-\d+\]\tSpeed: ([\d.]+)", out.stderr)
              if m.group(1) != "0"]
    return statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "datasets", "mnist"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--networks", default="mlp,lenet")
    args = parser.parse_args()
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print("| network | samples/sec | MXNet 1.9.1 | ratio |\n|---|---|---|---|")
    for network in args.networks.split(","):
        speed = measure(network, args.data_dir, args.epochs)
        mx = MXNET_SAMPLES_PER_SEC[network]
        print(f"| {network} | {speed:,.0f} | {mx:,} | {speed / mx:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
