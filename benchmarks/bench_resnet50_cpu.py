"""Training speed of resnet-50 on the CPU against MXNet 1.9.1, on synthetic 224x224 data.

    python benchmarks/bench_resnet50_cpu.py                      # batch 32, both memory formats
    python benchmarks/bench_resnet50_cpu.py --iterations 10 --memory-format channels_last --threads 1

Each timed iteration is one SGD step (forward, cross-entropy, backward, update with MXNet's defaults:
momentum 0.9, wd 1e-4) on a batch of random images, after `--warmup` untimed steps. Reports the median
iteration as images/sec next to MXNet 1.9.1's 3.8 images/sec measured on this 2-core machine
(`train_imagenet.py --benchmark 1 --network resnet --num-layers 50 --batch-size 32 --gpus ''`).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import symbols  # noqa: E402

MXNET_IMAGES_PER_SEC = 3.8


def images_per_sec(memory_format: torch.memory_format, batch_size: int, iterations: int, warmup: int,
                   dtype: torch.dtype, compile: bool) -> float:
    torch.manual_seed(0)
    model = symbols.create_model("resnet", 1000, num_layers=50, image_shape="3,224,224").train()
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    forward = torch.compile(model) if compile else model
    images = torch.randn(batch_size, 3, 224, 224).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 1000, (batch_size,))
    seconds = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = F.cross_entropy(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return batch_size / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=3, help="timed steps per memory format")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--memory-format", choices=["both", "contiguous", "channels_last"], default="both")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (0: PyTorch's default, one per core)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16 runs the model under CPU autocast (MXNet's figure is float32)")
    parser.add_argument("--compile", type=int, default=0, choices=[0, 1],
                        help="1 compiles the model with torch.compile (warm-up steps include compiling)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    if args.memory_format != "both":
        formats = {args.memory_format: formats[args.memory_format]}

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; resnet-50 training in {args.dtype}"
          f"{' compiled' if args.compile else ''}, batch {args.batch_size}, "
          f"median of {args.iterations} steps after {args.warmup} warm-up")
    results = {}
    for name, memory_format in formats.items():
        results[name] = images_per_sec(memory_format, args.batch_size, args.iterations, args.warmup,
                                       getattr(torch, args.dtype), bool(args.compile))
        print(f"{name:>14}: {results[name]:.2f} images/sec")
    best = max(results, key=results.get)
    print(f"best ({best}): {results[best]:.2f} images/sec; MXNet 1.9.1: {MXNET_IMAGES_PER_SEC} images/sec "
          f"({results[best] / MXNET_IMAGES_PER_SEC:.2f}x)")


if __name__ == "__main__":
    main()
