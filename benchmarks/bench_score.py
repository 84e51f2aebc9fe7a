"""Scoring speed on the CPU: ResNet-50, batch 32, images/sec of our score.py against MXNet 1.9.1's scorer
(ImageRecordIter + Module.forward, as its score.py) on the same `.rec` and the same checkpoint.

    python benchmarks/bench_score.py --mxnet-python /tmp/mxvenv/bin/python   # see benchmarks/README.md
    python benchmarks/bench_score.py --runs 5 --ours "" --ours "--dtype bfloat16"

The .rec holds N Imagenette images (--images, by default $IMAGECLS_DATASETS/imagenette-224/val) packed by
tools/im2rec.py --resize 256 (as MXNet's imagenet1k-val.sh does); both sides decode with --data-nthreads
threads/processes and score the centred 224x224 crop. The checkpoint is an MXNet ResNet-50 with random
weights (speed does not depend on them), written by MXNet and imported by score.py. Each --ours is one
configuration of our score.py: its extra options, after any NAME=VALUE environment variables (default: one,
score.py's defaults). Each run is a process of its own, MXNet's and each of ours alternating, the order
reversed every other round. Two speeds per run: the scoring loop's (what score.py logs; MXNet's from its
first batch to its last) and the end-to-end one (the images over the whole process's wall time: imports,
loading and preparing the network, decoding workers starting). Prints every run, then a table of medians
and how often each scorer's top-1 class is that of the first of ours, with how many classes it predicted:
random weights make no classifier (ResNet-50's saturate on a class or few), so agreement here only catches
gross errors; checks/ and tests/test_inference.py check the numerics.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMAGENETTE_VAL = "imagenette-224/val"  # under $IMAGECLS_DATASETS
CHECKPOINT = "resnet-50"  # in the working folder, epoch 0
MXNET = "MXNet 1.9.1"


def mxnet_checkpoint(folder: str, batch_size: int) -> None:
    """Runs under MXNet's Python: writes the randomly initialised ResNet-50 checkpoint."""
    import mxnet as mx
    sys.path.insert(0, ROOT)
    from checks.mxnet_graphs import get_symbol

    module = mx.mod.Module(get_symbol("resnet", 50), context=mx.cpu())
    module.bind(data_shapes=[("data", (batch_size, 3, 224, 224))],
                label_shapes=[("softmax_label", (batch_size,))], for_training=False)
    module.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    module.save_checkpoint(os.path.join(folder, CHECKPOINT), 0)


def mxnet_score(folder: str, rec: str, batch_size: int, threads: int) -> None:
    """Runs under MXNet's Python: scores the .rec once with the checkpoint, as MXNet's score.py does; prints
    the loop's speed and writes each image's most likely class to folder/mxnet-top1.txt."""
    import mxnet as mx

    module = mx.mod.Module.load(os.path.join(folder, CHECKPOINT), 0, context=mx.cpu())
    module.bind(data_shapes=[("data", (batch_size, 3, 224, 224))],
                label_shapes=[("softmax_label", (batch_size,))], for_training=False)
    data = mx.io.ImageRecordIter(path_imgrec=rec, label_width=1, preprocess_threads=threads,
                                 batch_size=batch_size, data_shape=(3, 224, 224), rand_crop=False,
                                 rand_mirror=False)
    metric = mx.metric.create("acc")
    tic, num, top1 = time.time(), 0, []
    for batch in data:
        module.forward(batch, is_train=False)
        module.update_metric(metric, batch.label)
        scores = module.get_outputs()[0].asnumpy()
        top1.append(scores[:batch_size - batch.pad].argmax(1))
        num += batch_size - batch.pad
    print(f"mxnet images/sec: {num / (time.time() - tic):.2f}", flush=True)
    np.savetxt(os.path.join(folder, "mxnet-top1.txt"), np.concatenate(top1), fmt="%d")


def pack_records(imagenette: str, folder: str, num_images: int) -> str:
    """The first num_images / 10 images of each Imagenette class packed into folder/val.rec; returns it."""
    from common.datasets import link_subset  # here: the MXNet side runs this file without our packages
    images = link_subset(imagenette, -(-num_images // 10), os.path.join(folder, "images"))
    prefix = os.path.join(folder, "val")
    for extra in (["--list", "--recursive"], ["--resize", "256", "--quality", "90"]):
        subprocess.run([sys.executable, "tools/im2rec.py", *extra, prefix, images], cwd=ROOT, check=True,
                       capture_output=True)
    return prefix + ".rec"


def read_top1(csv_path: str) -> np.ndarray:
    """The most likely class of each image in a score.py --predictions file (class numbers: the checkpoint
    has no class names)."""
    return np.loadtxt(csv_path, delimiter=",", skiprows=1, usecols=2, dtype=np.int64, ndmin=1)


def parse_configuration(text: str) -> tuple[dict[str, str], list[str]]:
    """An --ours value: its leading NAME=VALUE words as environment variables, the rest as score.py
    options."""
    words = shlex.split(text)
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def timed(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run `command` from the repository root with `env` added to the environment; returns it and its wall
    time in seconds. A failure stops the benchmark with the command's error output."""
    tic = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    elapsed = time.perf_counter() - tic
    if done.returncode:
        sys.exit(f"{shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    return done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="score.py speed against MXNet 1.9.1")
    parser.add_argument("--mxnet-python", default="/tmp/mxvenv/bin/python")
    parser.add_argument("--num-images", type=int, default=1280,
                        help="images scored per run (enough that start-up does not decide the speed)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-nthreads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="runs of each scorer, alternating")
    parser.add_argument("--ours", action="append",
                        help="one configuration of our score.py (repeatable): NAME=VALUE environment "
                             "variables, then score.py options, e.g. '--dtype bfloat16'; default: one, "
                             "score.py's defaults")
    parser.add_argument("--images",
                        help="Imagenette's val folder (default: $IMAGECLS_DATASETS/imagenette-224/val)")
    # internal: `checkpoint FOLDER` or `score FOLDER REC`, run under MXNet's Python
    parser.add_argument("--mxnet-side", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mxnet_side:
        if args.mxnet_side[0] == "checkpoint":
            mxnet_checkpoint(args.mxnet_side[1], args.batch_size)
        else:
            mxnet_score(*args.mxnet_side[1:], args.batch_size, args.data_nthreads)
        return
    sys.path.insert(0, ROOT)  # not at the top: the MXNet side runs this file under MXNet's Python
    from common.cli import UserError
    from common.datasets import dataset_folder
    try:
        imagenette = dataset_folder(args.images, IMAGENETTE_VAL, "--images")
    except UserError as e:
        parser.error(str(e))
    with tempfile.TemporaryDirectory() as folder:
        # the records in a folder of their own: im2rec's synset.txt (10 classes) must not sit beside the
        # 1000-class checkpoint, where score.py would take it for the checkpoint's class names
        os.makedirs(os.path.join(folder, "rec"))
        rec = pack_records(imagenette, os.path.join(folder, "rec"), args.num_images)
        common = ["--batch-size", str(args.batch_size), "--data-nthreads", str(args.data_nthreads)]
        mxnet = [args.mxnet_python, os.path.abspath(__file__), *common, "--mxnet-side"]
        timed([*mxnet, "checkpoint", folder], {})
        # name -> (command, environment, its top-1 file)
        scorers = {MXNET: ([*mxnet, "score", folder, rec], {}, os.path.join(folder, "mxnet-top1.txt"))}
        for i, text in enumerate(args.ours or [""]):
            env, options = parse_configuration(text)
            predictions = os.path.join(folder, f"ours{i}.csv")
            scorers[f"ours {text}".strip()] = (
                [sys.executable, "score.py", "--model", os.path.join(folder, CHECKPOINT), "--load-epoch", "0",
                 "--data-val", rec, "--gpus", "", *common, "--predictions", predictions, *options],
                env, predictions)
        loop, end_to_end, top1 = run_rounds(scorers, args.runs)
    import torch
    print(f"ResNet-50, batch {args.batch_size}, {len(top1[MXNET])} images, {args.data_nthreads} decoding "
          f"workers, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"medians of {args.runs} alternated runs")
    reference = list(scorers)[1]
    print(f"| scorer | loop images/sec | vs MXNet | end-to-end images/sec | vs MXNet | top-1 = {reference} "
          "| loop runs |")
    print("|---|---|---|---|---|---|---|")
    for name in scorers:
        speed, total = np.median(loop[name]), np.median(end_to_end[name])
        print(f"| {name} | {speed:.2f} | {speed / np.median(loop[MXNET]):.2f}x | {total:.2f} "
              f"| {total / np.median(end_to_end[MXNET]):.2f}x "
              f"| {np.mean(top1[name] == top1[reference]):.2%} ({len(np.unique(top1[name]))} classes) "
              f"| {loop[name]} |")


def run_rounds(scorers: dict[str, tuple[list[str], dict[str, str], str]], runs: int
               ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, np.ndarray]]:
    """Run every scorer `runs` times, alternating, the order reversed every other round; print each run.
    Returns each scorer's loop speeds, end-to-end speeds and the top-1 classes of its last run."""
    loop = {name: [] for name in scorers}
    end_to_end = {name: [] for name in scorers}
    top1 = {}
    for round_ in range(runs):
        for name in (list(scorers) if round_ % 2 == 0 else list(scorers)[::-1]):
            command, env, top1_file = scorers[name]
            done, elapsed = timed(command, env)
            if name == MXNET:
                speed = float(re.search(r"mxnet images/sec: ([\d.]+)", done.stdout).group(1))
                top1[name] = np.loadtxt(top1_file, dtype=np.int64, ndmin=1)
            else:
                speed = float(re.search(r"Finished with ([\d.]+) images per second", done.stderr).group(1))
                top1[name] = read_top1(top1_file)
            loop[name].append(round(speed, 2))
            end_to_end[name].append(round(len(top1[name]) / elapsed, 2))
            print(f"  round {round_ + 1} {name}: {speed:.2f} images/sec in the loop, "
                  f"{end_to_end[name][-1]:.2f} end to end ({elapsed:.1f} s)", flush=True)
    return loop, end_to_end, top1


if __name__ == "__main__":
    main()
