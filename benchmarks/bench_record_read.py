"""Reading speed of the record pipeline (common/data.py) against MXNet's ImageRecordIter.

    python benchmarks/bench_record_read.py                    # packs Imagenette val first (--images)
    python benchmarks/bench_record_read.py --rec /tmp/imagenette/val.rec --epochs 5

Reads Imagenette's validation images (3,925 JPEGs, 224 px) from a .rec file with 2 worker processes,
random crop 224 + random mirror, batches of 128 uint8 images, as training does. MXNet 1.9.1's
ImageRecordIter with 2 threads and the same augmentation reads about 1,100 images/sec on the reference
2-core machine. The first epoch (worker start-up) is not timed; the median epoch is reported.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_im2rec import IMAGENETTE_VAL, pack_imagenette  # noqa: E402
from common import data  # noqa: E402
from common.cli import ArgumentParser, run_main  # noqa: E402
from common.datasets import dataset_folder  # noqa: E402
from common.dist import DistInfo  # noqa: E402

MXNET_RATE = 1100


def read_rate(rec: str, epochs: int, threads: int, batch_size: int) -> list[float]:
    """Images/sec of each timed epoch."""
    parser = ArgumentParser()  # the training scripts' parser, which applies presets such as --data-aug-level
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    args = parser.parse_args(["--data-train", rec, "--data-nthreads", str(threads), "--random-crop", "1",
                              "--random-mirror", "1", "--image-shape", "3,224,224"])
    args.seed, args.batch_size = 0, batch_size
    train, _ = data.get_rec_iter(args, DistInfo())
    rates = []
    for epoch in range(epochs + 1):
        train.set_epoch(epoch)
        start, count = time.perf_counter(), 0
        for images, _ in train:
            count += len(images)
        if epoch:  # epoch 0 starts the workers
            rates.append(count / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rec",
                        help="a packed Imagenette val.rec (default: pack --images in a temporary folder)")
    parser.add_argument("--images", help="Imagenette's val folder, to pack without --rec "
                                         "(default: $IMAGECLS_DATASETS/imagenette-224/val)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs; the median is reported")
    parser.add_argument("--threads", type=int, default=2, help="worker processes (--data-nthreads)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rec = args.rec or pack_imagenette(dataset_folder(args.images, IMAGENETTE_VAL, "--images"), tmp)[0]
        rates = read_rate(rec, args.epochs, args.threads, args.batch_size)
    print(f"epochs (images/sec): {', '.join(f'{r:.0f}' for r in rates)}")
    print(f"record read, {args.threads} workers, random crop 224 + mirror: {statistics.median(rates):.0f} "
          f"images/sec (median of {args.epochs} epochs)   MXNet ImageRecordIter: {MXNET_RATE} images/sec")


if __name__ == "__main__":
    run_main(main)
