"""What --checkpoint-interval costs: training speed with and without it, and the time of one checkpoint.

    python benchmarks/bench_checkpoint_interval.py                      # 3 rounds of 3 MLP epochs each way
    python benchmarks/bench_checkpoint_interval.py --rounds 5 --intervals 0,10,0.05

1. `train_mnist.py` (MLP, batch 64: the step with the least work, so any per-step cost shows most) with
   `--model-prefix` and each `--checkpoint-interval` of --intervals (minutes; 0 = off, 10 = the suggested
   value), alternating, --rounds times; the speed of a run is the median of its Speedometer lines.
2. What the loop adds per step with an interval set: `Interruptions.poll`, timed over 100,000 calls,
   and its share of the MLP's step (the run-to-run noise of step 1 on a shared machine is larger than it).
3. One mid-epoch checkpoint of resnet-50 with its SGD momentum (what a 10-minute interval writes on an
   ImageNet run), timed, and its share of a 10-minute interval.

Prints a Markdown table `| --checkpoint-interval | round | samples/sec | vs off |` with a median row per
interval, then the poll line and the resnet-50 line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_mnist import median_speed  # noqa: E402
from common.cli import run_main  # noqa: E402


def mlp_speed(interval: str, epochs: int, folder: str) -> float:
    prefix = os.path.join(folder, f"mlp-{interval}")
    command = [sys.executable, "train_mnist.py", "--num-epochs", str(epochs), "--model-prefix", prefix,
               "--checkpoint-interval", interval]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return median_speed(out.stdout + out.stderr)


def poll_seconds(calls: int = 100_000) -> float:
    """The time of one `Interruptions.poll` in a process alone, with a 10-minute interval."""
    from common.dist import DistInfo
    from common.interrupt import Interruptions
    interruptions = Interruptions(10, DistInfo(), agree_every=20)
    tic = time.perf_counter()
    for step in range(calls):
        interruptions.poll(step)
    return (time.perf_counter() - tic) / calls


def resnet50_checkpoint_seconds(folder: str) -> float:
    """The time to write a mid-epoch checkpoint of resnet-50 with SGD momentum buffers."""
    import torch
    from common import checkpoint
    from symbols import create_model
    model = create_model("resnet", 1000, num_layers=50, image_shape="3,224,224")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates the momentum buffers
    states = {"epoch": 3, "batch": 1000, "optimizer": optimizer.state_dict(), "rng": [{"cpu": torch.get_rng_state()}]}
    tic = time.perf_counter()
    checkpoint.save_checkpoint(os.path.join(folder, "r50"), 3, model, states, batch=1000)
    return time.perf_counter() - tic


def main(args: argparse.Namespace) -> None:
    intervals = args.intervals.split(",")
    with tempfile.TemporaryDirectory() as folder:
        speeds: dict[str, list[float]] = {interval: [] for interval in intervals}
        print("| --checkpoint-interval | round | samples/sec | vs off |\n|---|---|---|---|")
        for run in range(1, args.rounds + 1):
            for interval in intervals:
                speeds[interval].append(mlp_speed(interval, args.epochs, folder))
                print(f"| {interval} | {run} | {speeds[interval][-1]:,.0f} | "
                      f"{speeds[interval][-1] / speeds[intervals[0]][-1]:.3f} |", flush=True)
        for interval in intervals:
            median = statistics.median(speeds[interval])
            print(f"| {interval} | median | {median:,.0f} | {median / statistics.median(speeds[intervals[0]]):.3f} |")
        seconds = resnet50_checkpoint_seconds(folder)
    poll = poll_seconds()
    step = 64 / statistics.median(speeds[intervals[0]])
    print(f"\nInterruptions.poll: {poll * 1e6:.2f} us per step, {poll / step:.2%} of the MLP's {step * 1e3:.3f} ms step")
    print(f"resnet-50 mid-epoch checkpoint (weights, momentum, states): {seconds:.2f} s, "
          f"{seconds / 600:.2%} of a 10-minute interval")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--intervals", default="0,10", help="minutes, the first one the baseline (0: off)")
    run_main(lambda: main(parser.parse_args()))
