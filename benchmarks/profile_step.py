"""Where a training step's time goes: the real loop (common/fit.py's train_one_epoch) under cProfile.

    python benchmarks/profile_step.py                          # MNIST MLP, batch 64, 3 epochs
    python benchmarks/profile_step.py --network lenet --epochs 1

Trains `train_mnist.py`'s network on the embedded MNIST and prints, per batch, the time of each part of the
loop: fetching the batch, normalising it, forward (with the loss), backward, zero_grad, the optimizer step,
the metric bookkeeping, the lr schedule, and the rest of the loop's own Python. cProfile adds its own cost
to every Python call, so the parts written in Python look somewhat larger than they are; the first line,
timed without the profiler, is the true time per batch.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import train_mnist  # noqa: E402
from common import fit  # noqa: E402
from common.cli import run_main  # noqa: E402

# The parts of the loop, as (label, the function's file suffix and name in cProfile's table).
PARTS = [
    ("fetch the batch", "common/data.py", "__iter__"),
    ("normalise", "common/data.py", "__call__"),
    ("forward", "torch/nn/modules/module.py", "_wrapped_call_impl"),
    ("loss", "common/fit.py", "training_loss"),
    ("backward", "torch/_tensor.py", "backward"),
    ("zero_grad", "torch/_compile.py", "inner"),
    ("optimizer step", "torch/amp/grad_scaler.py", "step"),
    ("metrics (Meter.update)", "common/metrics.py", "update"),
    ("lr schedule", "common/fit.py", "learning_rate"),
]


def main(args: argparse.Namespace) -> None:
    argv = ["--network", args.network, "--num-epochs", str(args.epochs), "--disp-batches", "100000"]
    train_args = train_mnist.get_args_parser().parse_args(argv)
    loop_time = 0.0
    train_one_epoch = fit.train_one_epoch

    def timed(*a, **kw):
        nonlocal loop_time
        tic = time.perf_counter()
        try:
            return train_one_epoch(*a, **kw)
        finally:
            loop_time += time.perf_counter() - tic

    fit.train_one_epoch = timed
    train_mnist.main(train_args)
    fit.train_one_epoch = train_one_epoch
    batches = args.epochs * -(-60000 // train_args.batch_size)
    print(f"\n{args.network}, batch {train_args.batch_size}: {loop_time / batches * 1e3:.3f} ms per batch in "
          f"train_one_epoch without the profiler ({train_args.batch_size * batches / loop_time:,.0f} samples/sec)")

    profile = cProfile.Profile()
    profile.runcall(train_mnist.main, train_args)
    stats = pstats.Stats(profile)
    loop = next(k for k in stats.stats if k[0].endswith("common/fit.py") and k[2] == "train_one_epoch")
    callees = {k: v for k, v in stats.stats.items() if loop in v[4]}  # functions the loop itself calls
    total = stats.stats[loop][3]
    print(f"\nunder cProfile, per batch ({batches} batches):\n| part | ms | share |\n|---|---|---|")
    accounted = 0.0
    for label, path, name in PARTS:
        spent = sum(v[4][loop][3] for k, v in callees.items() if k[0].endswith(path) and k[2] == name)
        accounted += spent
        print(f"| {label} | {spent / batches * 1e3:.3f} | {spent / total:.0%} |")
    print(f"| the rest of the loop | {(total - accounted) / batches * 1e3:.3f} | {(total - accounted) / total:.0%} |")
    print(f"| train_one_epoch | {total / batches * 1e3:.3f} | 100% |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="mlp", choices=("mlp", "lenet"))
    parser.add_argument("--epochs", type=int, default=3)
    run_main(lambda: main(parser.parse_args()))
