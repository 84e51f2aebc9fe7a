"""train_imagenet.py on record files, timing how long each training step waited for its batch: whether the
decoding processes (--data-nthreads) keep up with the device. Used by benchmarks/gpu_check.sh.

    python benchmarks/gpu_check_loader.py --data-train gpu_data/imagenette.rec \\
        --use-imagenet-data-augmentation 1 --data-nthreads 8 --gpus 0 --batch-size 256 --dtype bfloat16 \\
        --num-epochs 4 --disp-batches 5

Takes train_imagenet.py's options and trains as it does (its Speedometer lines give the speed), through a
loader that times each wait of the training loop for the next batch. Each epoch's first batch is left out:
it waits for the decoding processes to start on the epoch, as the Speedometer leaves it out too. Prints
`gpu_check {"steps": N, "waited_steps": S, "waited_time": T}`: the share S of those steps that waited longer
than 5 ms (a batch decoded ahead is handed over in well under that), and the share T of the time from each
epoch's first batch to its end spent waiting.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Iterator

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train_imagenet  # noqa: E402
from common import cli, data, fit  # noqa: E402
from common.dist import DistInfo  # noqa: E402
from symbols import create_model  # noqa: E402

WAITED = 0.005  # seconds


class TimedBatches:
    """A loader of common/data.py whose iteration records each wait for a batch but the epoch's first
    (`waits`, seconds) and the time from each epoch's first batch to its end (`elapsed`)."""

    def __init__(self, batches: data.Batches):
        self.batches, self.mean, self.std = batches, batches.mean, batches.std
        self.waits: list[float] = []
        self.elapsed = 0.0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.batches.set_epoch(epoch, start)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches, first = iter(self.batches), None
        while True:
            asked = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            if first is None:
                first = time.perf_counter()
            else:
                self.waits.append(time.perf_counter() - asked)
            yield batch
        if first is not None:
            self.elapsed += time.perf_counter() - first


class TimedRecords:
    """The loader factory of train_imagenet.py (`data.get_rec_iter`) with timed training batches; keeps them
    in `timed` (training runs in this process: one device)."""

    def __init__(self):
        self.timed: list[TimedBatches] = []

    def __call__(self, args: argparse.Namespace, info: DistInfo) -> tuple[TimedBatches, data.Batches | None]:
        train, val = data.get_rec_iter(args, info)
        self.timed.append(TimedBatches(train))
        return self.timed[-1], val


def main(args: argparse.Namespace) -> None:
    if args.benchmark or "," in args.gpus:
        raise cli.UserError("gpu_check_loader.py times record files read by one process: no --benchmark 1, "
                            "one GPU at most")
    loader = TimedRecords()
    fit.fit(args, create_model(args.network, **vars(args)), loader)
    waits = [w for timed in loader.timed for w in timed.waits]
    elapsed = sum(timed.elapsed for timed in loader.timed)
    print("gpu_check " + json.dumps({"steps": len(waits),
                                     "waited_steps": sum(w > WAITED for w in waits) / max(1, len(waits)),
                                     "waited_time": sum(waits) / elapsed if elapsed else 0.0}), flush=True)


if __name__ == "__main__":
    parser = train_imagenet.get_args_parser()
    cli.run_main(lambda: main(parser.parse_args()))
