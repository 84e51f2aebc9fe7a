"""The peer of `train_imagenet.py --benchmark 1` in benchmarks/gpu_check.sh: timm's resnet50 trained by a bare
loop on one synthetic batch, as a user of timm would write it.

    python benchmarks/gpu_check_timm.py --device cuda --batch-size 256 --image-size 224 --dtype bfloat16

Each step does what a step of the suite does: the pinned uint8 batch copied to the device, made channels_last
float and normalised there, forward under autocast in --dtype, cross-entropy, backward, SGD with momentum
and weight decay; cuDNN benchmarks its algorithms, as in the suite's GPU processes. The speed is that of
--steps steps after --warmup, timed with the device synchronised. Prints one line
`gpu_check {"images_per_sec": N}`, or `gpu_check {"skipped": "timm not importable"}` without timm.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    return parser


def images_per_sec(args: argparse.Namespace, model: nn.Module) -> float:
    """Training speed of `model` (1000 classes) by the bare loop."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.backends.cudnn.benchmark = True
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8)
    labels = torch.randint(0, 1000, (args.batch_size,))
    if device.type == "cuda":
        images, labels = images.pin_memory(), labels.pin_memory()
    mean = torch.tensor([123.68, 116.779, 103.939], device=device).view(1, 3, 1, 1)
    std = torch.tensor([58.393, 57.12, 57.375], device=device).view(1, 3, 1, 1)

    def step() -> None:
        x = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last).float()
        y = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.cross_entropy(model((x - mean) / std).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    return args.steps * args.batch_size / (time.perf_counter() - start)


def main() -> None:
    args = get_args_parser().parse_args()
    try:
        import timm
    except ImportError:
        result = {"skipped": "timm not importable"}
    else:
        result = {"images_per_sec": images_per_sec(args, timm.create_model("resnet50", num_classes=1000))}
    print("gpu_check " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
