"""The record files benchmarks/gpu_check.sh reads, packed here so that they travel with the checkout to a GPU
machine that has no data sets (and no network).

    python benchmarks/gpu_check_data.py                  # gpu_data/ (git-ignored), 40.6 MB
    python benchmarks/gpu_check_data.py --out /tmp/gd --imagenette-per-class 4 --cifar-per-class 20 \\
        --cifar-val-per-class 5 --resize 40             # the tiny set of the --cpu-smoke test

Writes into --out: `imagenette.rec` (Imagenette's validation images, `$IMAGECLS_DATASETS/imagenette-224/val`,
short side resized to --resize and re-encoded at JPEG --quality), `cifar10_train.rec` (the first
--cifar-per-class training PNGs of each class, kept lossless) and `cifar10_val.rec` (the first
--cifar-val-per-class of each class of the 1,000 lossless test PNGs), each with its `.idx`: with the
defaults 3,925, 5,000 and 1,000 images in 26.7, 11.6 and 2.3 MB. Labels follow the sorted class folders.
Everything is packed by tools/im2rec.py, as a user would.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.bench_im2rec import im2rec  # noqa: E402
from common.cli import run_main  # noqa: E402
from common.datasets import dataset_folder, link_subset  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "gpu_data"), help="where the record files go")
    parser.add_argument("--datasets", help="folder holding imagenette-224/ and cifar10/ "
                                           "(default: $IMAGECLS_DATASETS)")
    parser.add_argument("--imagenette-per-class", type=int, help="Imagenette images per class (default: all)")
    parser.add_argument("--resize", type=int, default=160, help="Imagenette's short side, in pixels")
    parser.add_argument("--quality", type=int, default=80, help="Imagenette's JPEG quality")
    parser.add_argument("--cifar-per-class", type=int, default=500, help="CIFAR-10 training images per class")
    parser.add_argument("--cifar-val-per-class", type=int,
                        help="CIFAR-10 test images per class, of the 1,000 lossless ones (default: all)")
    return parser


def pack(classes: str, per_class: int | None, prefix: str, *options: str) -> str:
    """`prefix.rec` and `.idx` from the first `per_class` images of each class folder; returns the .rec.
    The lists (and the class names im2rec writes beside them) stay in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        images = link_subset(classes, per_class, os.path.join(tmp, "images"))
        packed = os.path.join(tmp, os.path.basename(prefix))
        im2rec("--list", "--recursive", packed, images)
        im2rec("--num-thread", "2", *options, packed, images)
        for ext in (".rec", ".idx"):
            shutil.move(packed + ext, prefix + ext)
    return prefix + ".rec"


def main(args: argparse.Namespace) -> None:
    def folder(name: str) -> str:
        return dataset_folder(args.datasets and os.path.join(args.datasets, name), name, "--datasets")

    os.makedirs(args.out, exist_ok=True)
    recs = [pack(folder(source), per_class, os.path.join(args.out, name), *options)
            for source, per_class, name, options in (
                ("imagenette-224/val", args.imagenette_per_class, "imagenette",
                 ("--resize", str(args.resize), "--quality", str(args.quality))),
                ("cifar10/train", args.cifar_per_class, "cifar10_train", ("--pass-through",)),
                ("cifar10/test", args.cifar_val_per_class, "cifar10_val", ("--pass-through",)))]
    total = 0
    for rec in recs:
        size = sum(os.path.getsize(rec[:-4] + ext) for ext in (".rec", ".idx"))
        total += size
        print(f"{rec}: {size / 1e6:.1f} MB")
    print(f"{args.out}: {total / 1e6:.1f} MB in all")


if __name__ == "__main__":
    run_main(lambda: main(get_args_parser().parse_args()))
