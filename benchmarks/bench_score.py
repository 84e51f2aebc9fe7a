"""Scoring speed on the CPU: ResNet-50, batch 32, images/sec of our score.py against MXNet 1.9.1's scorer
(ImageRecordIter + Module.forward, as its score.py) on the same `.rec` and the same checkpoint.

    python benchmarks/bench_score.py --mxnet-python /tmp/mxvenv/bin/python   # see benchmarks/README.md

The .rec holds N Imagenette images (--images, by default $IMAGECLS_DATASETS/imagenette-224/val) packed by
tools/im2rec.py --resize 256 (as MXNet's imagenet1k-val.sh does); both sides decode with --data-nthreads
threads/processes and score the centred 224x224 crop. The checkpoint is an MXNet ResNet-50 with random
weights (speed does not depend on them), written by MXNet and imported by score.py. Prints the median of
--runs runs of each.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMAGENETTE_VAL = "imagenette-224/val"  # under $IMAGECLS_DATASETS


def mxnet_side(folder: str, rec: str, batch_size: int, threads: int, runs: int) -> None:
    """Runs under MXNet's Python: writes the checkpoint, then scores the .rec `runs` times."""
    import mxnet as mx
    sys.path.insert(0, ROOT)
    from checks.mxnet_graphs import get_symbol

    sym = get_symbol("resnet", 50)
    module = mx.mod.Module(sym, context=mx.cpu())
    module.bind(data_shapes=[("data", (batch_size, 3, 224, 224))],
                label_shapes=[("softmax_label", (batch_size,))], for_training=False)
    module.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    module.save_checkpoint(os.path.join(folder, "resnet-50"), 0)
    for _ in range(runs):
        data = mx.io.ImageRecordIter(path_imgrec=rec, label_width=1, preprocess_threads=threads,
                                     batch_size=batch_size, data_shape=(3, 224, 224), rand_crop=False,
                                     rand_mirror=False)
        metric = mx.metric.create("acc")
        tic, num = time.time(), 0
        for batch in data:
            module.forward(batch, is_train=False)
            module.update_metric(metric, batch.label)
            num += batch_size
        print(f"mxnet images/sec: {num / (time.time() - tic):.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="score.py speed against MXNet 1.9.1")
    parser.add_argument("--mxnet-python", default="/tmp/mxvenv/bin/python")
    parser.add_argument("--num-images", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-nthreads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images",
                        help="Imagenette's val folder (default: $IMAGECLS_DATASETS/imagenette-224/val)")
    parser.add_argument("--mxnet-side", nargs=2, help=argparse.SUPPRESS)  # internal: folder, rec
    args = parser.parse_args()
    if args.mxnet_side:
        mxnet_side(*args.mxnet_side, args.batch_size, args.data_nthreads, args.runs)
        return
    sys.path.insert(0, ROOT)  # not at the top: the MXNet side runs this file under MXNet's Python
    from common.cli import UserError
    from common.datasets import dataset_folder
    try:
        imagenette = dataset_folder(args.images, IMAGENETTE_VAL, "--images")
    except UserError as e:
        parser.error(str(e))
    with tempfile.TemporaryDirectory() as folder:
        images = os.path.join(folder, "images")
        per_class = -(-args.num_images // 10)
        for wnid in sorted(os.listdir(imagenette)):
            os.makedirs(os.path.join(images, wnid))
            for name in sorted(os.listdir(os.path.join(imagenette, wnid)))[:per_class]:
                source = os.path.abspath(os.path.join(imagenette, wnid, name))
                os.symlink(source, os.path.join(images, wnid, name))
        prefix = os.path.join(folder, "val")
        for extra in (["--list", "--recursive"], ["--resize", "256", "--quality", "90"]):
            subprocess.run([sys.executable, "tools/im2rec.py", *extra, prefix, images], cwd=ROOT, check=True,
                           capture_output=True)
        rec = prefix + ".rec"
        mxnet = subprocess.run([args.mxnet_python, os.path.abspath(__file__), "--mxnet-side", folder, rec,
                                "--batch-size", str(args.batch_size), "--data-nthreads", str(args.data_nthreads),
                                "--runs", str(args.runs)], capture_output=True, text=True, check=True)
        theirs = [float(v) for v in re.findall(r"mxnet images/sec: ([\d.]+)", mxnet.stdout)]
        ours = []
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, "score.py", "--model", os.path.join(folder, "resnet-50"),
                                   "--load-epoch", "0", "--data-val", rec, "--gpus", "",
                                   "--batch-size", str(args.batch_size), "--data-nthreads", str(args.data_nthreads)],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            ours.append(float(re.search(r"Finished with ([\d.]+) images per second", done.stderr).group(1)))
        import torch
        print(f"ResNet-50, batch {args.batch_size}, {args.num_images} images, {args.data_nthreads} decoding "
              f"workers, {os.cpu_count()} CPUs, torch {torch.__version__}; median of {args.runs} runs")
        print(f"  MXNet 1.9.1 score: {np.median(theirs):8.2f} images/sec  (runs: {theirs})")
        print(f"  our score.py:      {np.median(ours):8.2f} images/sec  (runs: {ours})")


if __name__ == "__main__":
    main()
