"""Prepare CIFAR-10 as record files for train_cifar10.py.

    python data/cifar10.py                      # download the official archive, write data/cifar10_{train,val}.rec
    python data/cifar10.py --train-folder ~/datasets/cifar10/train --val-folder ~/datasets/cifar10/test

The official binary archive (plain bytes: nothing in it is unpickled) is checked against its published md5.
Images are stored as lossless PNG, so training sees the original pixels; the class names go to synset.txt
beside the records. A folder of class folders
(`airplane/ ... truck/`, labels in sorted order) is packed through tools/im2rec.py instead.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile

import numpy as np
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.cli import DataError  # noqa: E402
from common.download import DownloadError, download  # noqa: E402
from common.labels import CLASS_NAMES_FILE, parse_class_names, write_class_names  # noqa: E402
from common.recordio import IndexedRecordWriter, IRHeader, pack_img  # noqa: E402

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
TRAIN_FILES = [f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["cifar-10-batches-bin/test_batch.bin"]
META_FILE = "cifar-10-batches-bin/batches.meta.txt"
RECORD = 1 + 3 * 32 * 32  # label byte, then the R, G and B planes


def read_batches(archive: str, members: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) RGB uint8 and labels (N,) from the binary archive's batch files."""
    chunks = []
    with tarfile.open(archive, "r:gz") as tar:
        for name in members:
            f = tar.extractfile(name)
            if f is None:
                raise DataError(f"{archive}: {name} is missing")
            raw = np.frombuffer(f.read(), np.uint8)
            if raw.size % RECORD:
                raise DataError(f"{archive}: {name} is not a whole number of {RECORD}-byte records")
            chunks.append(raw.reshape(-1, RECORD))
    rows = np.concatenate(chunks)
    return rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rows[:, 0].astype(np.int64)


def write_rec(prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """`prefix.rec` + `prefix.idx`, one PNG record per image, keys and ids 0..N-1 in data set order; written
    under temporary names and renamed at the end, so an interrupted run leaves no half file."""
    with IndexedRecordWriter(prefix + ".idx.tmp", prefix + ".rec.tmp") as writer:
        for i, (image, label) in enumerate(tqdm(zip(images, labels), total=len(labels), desc=os.path.basename(prefix),
                                                unit="img", disable=None)):
            header = IRHeader(0, float(label), i, 0)
            writer.write_idx(i, pack_img(header, np.ascontiguousarray(image[:, :, ::-1]), quality=3, img_fmt=".png"))
    os.replace(prefix + ".rec.tmp", prefix + ".rec")
    os.replace(prefix + ".idx.tmp", prefix + ".idx")


def pack_folder(folder: str, prefix: str) -> None:
    """Pack a folder of class folders with im2rec (list, then records; PNG files are kept as they are)."""
    im2rec = os.path.join(ROOT, "tools", "im2rec.py")
    for extra in (["--list", "--recursive", "--no-shuffle"], ["--pass-through", "--num-thread", "2"]):
        subprocess.run([sys.executable, im2rec, *extra, prefix, folder], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "data"), help="where the .rec files go")
    parser.add_argument("--train-folder", help="pack this folder of class folders instead of downloading")
    parser.add_argument("--val-folder", help="with --train-folder: the validation folder of class folders")
    args = parser.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    train_prefix = os.path.join(args.data_dir, "cifar10_train")
    val_prefix = os.path.join(args.data_dir, "cifar10_val")
    if args.train_folder:
        pack_folder(args.train_folder, train_prefix)
        if args.val_folder:
            pack_folder(args.val_folder, val_prefix)
        return
    archive = os.path.join(args.data_dir, "cifar-10-binary.tar.gz")
    if not os.path.exists(archive):
        try:
            download(URL, archive, md5=MD5)
        except DownloadError as e:
            sys.exit(f"cifar10.py: error: {e}")
    for members, prefix in ((TRAIN_FILES, train_prefix), (TEST_FILES, val_prefix)):
        write_rec(prefix, *read_batches(archive, members))
    write_class_names(os.path.join(args.data_dir, CLASS_NAMES_FILE), read_class_names_member(archive))


def read_class_names_member(archive: str) -> list[str]:
    """The archive's class names (batches.meta.txt: one per line, label order)."""
    with tarfile.open(archive, "r:gz") as tar:
        return parse_class_names(tar.extractfile(META_FILE).read().decode())


if __name__ == "__main__":
    main()
