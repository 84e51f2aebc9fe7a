"""The processes `--gpus 0,1,...` starts, one per GPU (common/dist.py), each training a few
DistributedDataParallel steps of resnet-20 over NCCL and running the collectives a checkpoint runs; and the
GPU defaults those processes train with. Used by benchmarks/gpu_check.sh.

    python benchmarks/gpu_check_spawn.py            # one process per visible GPU, NCCL
    python benchmarks/gpu_check_spawn.py --cpu      # two CPU processes, gloo

dist.run spawns processes only for two GPUs or more; this starts what each of those processes runs
(`dist._spawned`) for every GPU there is, so that one GPU runs it too. Prints
`gpu_check {"backend": ..., "processes": N, "cudnn_benchmark": ..., "tf32_matmul": ..., "tf32_conv": ...}`
with what rank 0 found in its process.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import dist, fit  # noqa: E402
from common.cli import UserError, run_main  # noqa: E402
from common.dist import DistInfo  # noqa: E402
from symbols import create_model  # noqa: E402


def train_steps(info: DistInfo, steps: int, batch_size: int) -> dict:
    """What each process runs: `steps` DDP steps on random CIFAR-sized batches, an all-reduce, the replica
    check and gather of a checkpoint; returns the process group's backend and size and the GPU defaults."""
    model = create_model("resnet", 10, num_layers=20, image_shape="3,32,32")
    model.to(info.device, memory_format=torch.channels_last)
    ddp = DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(info.rank)
    for _ in range(steps):
        images = torch.randn(batch_size, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 10, (batch_size,), generator=generator).to(info.device)
        loss = F.cross_entropy(ddp(images.to(info.device, memory_format=torch.channels_last)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    processes = torch.ones(1, device=info.device)
    tdist.all_reduce(processes)  # dist.all_reduce_sum skips a group of one
    fit.check_replicas_agree(model, info)
    if dist.gather_objects(info.rank, info) != list(range(info.world_size)):
        raise RuntimeError("gather_objects returned the ranks out of order")
    return {"backend": tdist.get_backend(), "processes": int(processes.item()),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_conv": torch.backends.cudnn.allow_tf32}


def main(args: argparse.Namespace) -> None:
    gpus = [] if args.cpu else list(range(torch.cuda.device_count()))
    if not args.cpu and not gpus:
        raise UserError("no GPU visible: use --cpu")
    processes = len(gpus) or 2
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(dist.free_port())
    results = mp.get_context("spawn").SimpleQueue()
    worker = functools.partial(train_steps, steps=args.steps, batch_size=args.batch_size)
    mp.spawn(dist._spawned, args=(0, processes, gpus, worker, 120, results), nprocs=processes)
    print("gpu_check " + json.dumps(results.get()), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="two CPU processes over gloo instead of the GPUs")
    parser.add_argument("--steps", type=int, default=20, help="training steps in each process")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step in each process")
    run_main(lambda: main(parser.parse_args()))
