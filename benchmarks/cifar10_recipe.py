"""The fast CIFAR-10 recipe, end to end: pack, train resnet-20, score both test copies, draw the curve.

    python benchmarks/cifar10_recipe.py --out /tmp/recipe                 # 30 epochs: about half an hour on 2 CPU cores
    python benchmarks/cifar10_recipe.py --out /tmp/recipe --seed 1 --num-epochs 30
    python benchmarks/cifar10_recipe.py --out /tmp/recipe -- --dtype float32   # options after -- win

Packs `$IMAGECLS_DATASETS/cifar10` (or --datasets) with tools/im2rec.py: the 50,000 training PNGs, the
1,000 lossless test PNGs (validation during training) and the 10,000 JPEG test images (kept as they are),
unless OUT already holds them. Then runs `train_cifar10.py` with RECIPE below, scores the last epoch's
weights and their moving average (`OUT/resnet20-ema`) with `score.py` on both test copies, plots the log
with tools/plot_log.py (`OUT/curve.png`), and prints a Markdown table of the four accuracies.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.cli import UserError, run_main  # noqa: E402
from common.datasets import dataset_folder  # noqa: E402

# The recipe the README documents, apart from data and file options.
RECIPE = ["--network", "resnet", "--num-layers", "20", "--batch-size", "128", "--lr", "0.1",
          "--warmup-epochs", "1", "--lr-step-epochs", "cosine", "--optimizer", "nag", "--wd", "5e-4",
          "--label-smoothing", "0.1", "--ema-decay", "0.999", "--dtype", "bfloat16", "--data-nthreads", "2"]
CIFAR_NORMALISATION = ["--rgb-mean", "125.307,122.961,113.8575", "--rgb-std", "62.9932,62.0887,66.7048"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", help="folder holding cifar10/ (default: $IMAGECLS_DATASETS)")
    parser.add_argument("--out", required=True, help="where the record files, checkpoints, log and curve go")
    parser.add_argument("--num-epochs", type=int, default=30, help="epochs to train")
    parser.add_argument("--seed", type=int, default=0, help="the training seed")
    parser.add_argument("extra", nargs="*", help="after --: more options for train_cifar10.py")
    return parser


def run(*command: str) -> str:
    """Run a Python script from the repository root and return its output; UserError if it fails."""
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"{' '.join(command[:2])} failed:\n{result.stderr[-2000:]}")
    return result.stdout + result.stderr


def pack(folder: str, prefix: str) -> str:
    """`prefix.rec` from a folder of class folders (labels in sorted folder order), unless it exists."""
    if not os.path.exists(prefix + ".rec"):
        run("tools/im2rec.py", "--list", "--recursive", "--no-shuffle", prefix, folder)
        run("tools/im2rec.py", "--pass-through", "--num-thread", "2", prefix, folder)
    return prefix + ".rec"


def score(prefix: str, epoch: int, rec: str) -> float:
    output = run("score.py", "--model", prefix, "--load-epoch", str(epoch), "--data-val", rec, "--gpus", "",
                 "--image-shape", "3,32,32", "--data-nthreads", "2", *CIFAR_NORMALISATION)
    return float(re.findall(r"\('accuracy', ([0-9.]+)\)", output)[-1])


def main(args: argparse.Namespace) -> None:
    cifar = dataset_folder(args.datasets and os.path.join(args.datasets, "cifar10"), "cifar10", "--datasets")
    os.makedirs(args.out, exist_ok=True)
    train_rec = pack(os.path.join(cifar, "train"), os.path.join(args.out, "cifar10_train"))
    test_rec = pack(os.path.join(cifar, "test"), os.path.join(args.out, "cifar10_test1000"))
    jpeg_rec = pack(os.path.join(cifar, "test_jpg"), os.path.join(args.out, "cifar10_test_jpg"))
    prefix, log = os.path.join(args.out, "resnet20"), os.path.join(args.out, "train.log")
    command = ["train_cifar10.py", *RECIPE, "--num-epochs", str(args.num_epochs), "--seed", str(args.seed),
               "--data-train", train_rec, "--data-val", test_rec, "--model-prefix", prefix, *args.extra]
    print("python " + " ".join(command), flush=True)
    with open(log, "w") as f:  # the log as it grows: tail -f OUT/train.log
        if subprocess.run([sys.executable, *command], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise UserError(f"training failed: see {log}")
    run("tools/plot_log.py", log, "-o", os.path.join(args.out, "curve.png"),
        "--title", f"resnet-20, CIFAR-10 recipe, {args.num_epochs} epochs, seed {args.seed}")
    print("| weights | 1,000 lossless test images | 10,000 JPEG test images |\n|---|---|---|")
    for name, weights in (("raw", prefix), ("EMA", prefix + "-ema")):
        print(f"| {name} | {score(weights, args.num_epochs, test_rec):.4f} "
              f"| {score(weights, args.num_epochs, jpeg_rec):.4f} |", flush=True)


if __name__ == "__main__":
    run_main(lambda: main(get_args_parser().parse_args()))
