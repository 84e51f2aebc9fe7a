"""Packing speed of tools/im2rec.py against MXNet's, on Imagenette's validation images (3,925 JPEGs).

    python benchmarks/bench_im2rec.py               # median of 3 runs
    python benchmarks/bench_im2rec.py --runs 5 --keep /tmp/imagenette   # keep val.lst/.rec/.idx

The images are $IMAGECLS_DATASETS/imagenette-224/val, or --images. MXNet 1.9.1's `im2rec.py --quality 95
--num-thread 2` packs them in about 6.1 s (640 images/sec) on the reference 2-core machine. The images are
listed first (not timed), then packed as a user would run it.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from common.cli import run_main  # noqa: E402
from common.datasets import dataset_folder  # noqa: E402

IMAGENETTE_VAL = "imagenette-224/val"  # under $IMAGECLS_DATASETS
MXNET_SECONDS, MXNET_RATE = 6.1, 640


def im2rec(*argv: str) -> str:
    done = subprocess.run([sys.executable, os.path.join(REPO, "tools", "im2rec.py"), *argv],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"im2rec failed:\n{done.stderr}")
    return done.stdout


def pack_imagenette(images: str, out_dir: str, num_thread: int = 2, quality: int = 95) -> tuple[str, float]:
    """List and pack the Imagenette val folder `images` into out_dir/val.rec; (rec path, seconds the packing
    took)."""
    prefix = os.path.join(out_dir, "val")
    im2rec("--list", "--recursive", prefix, images)
    start = time.perf_counter()
    im2rec("--quality", str(quality), "--num-thread", str(num_thread), prefix, images)
    return prefix + ".rec", time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="packing runs; the median is reported")
    parser.add_argument("--num-thread", type=int, default=2)
    parser.add_argument("--keep", help="folder to pack into and keep (default: a temporary folder)")
    parser.add_argument("--images",
                        help="Imagenette's val folder (default: $IMAGECLS_DATASETS/imagenette-224/val)")
    args = parser.parse_args()
    images = dataset_folder(args.images, IMAGENETTE_VAL, "--images")
    count = sum(len(files) for _, _, files in os.walk(images))
    seconds = []
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            seconds.append(pack_imagenette(images, args.keep or tmp, args.num_thread)[1])
    median = statistics.median(seconds)
    import cv2  # noqa: E402  (only for the version line)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python "
          f"{platform.python_version()}, OpenCV {cv2.__version__}")
    print(f"runs (s): {', '.join(f'{s:.2f}' for s in seconds)}")
    print(f"im2rec --quality 95 --num-thread {args.num_thread}: {count} images in {median:.2f} s "
          f"({count / median:.0f} images/sec, median of {args.runs})   "
          f"MXNet: {MXNET_SECONDS} s ({MXNET_RATE} images/sec)")


if __name__ == "__main__":
    run_main(main)
