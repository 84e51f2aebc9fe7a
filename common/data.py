"""Data loading: every loader here yields `(images, labels)` batches of uint8 NCHW images and int64
labels, and carries the per-channel `mean` and `std` (0-255 scale) that `common/fit.py` applies on the
device. Loaders also have `set_epoch(epoch)` (a fresh shuffle per epoch, reproducible from the seed) and
`len()` in batches, and read only their shard (`rank`, `world_size`) of the data.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Iterator, Sequence

import numpy as np
import torch

from common.dist import DistInfo
from common.download import DownloadError, download


class DataError(ValueError):
    """Bad or missing input data; the message names the file."""


class TensorBatches:
    """Batches straight from in-memory tensors: one index gather per batch, no per-sample Python work.

    Each epoch draws a permutation from `seed` and the epoch number (so a resumed run sees the same order);
    rank r of `world_size` takes every world_size-th position of it, so shards are disjoint and complete.
    The last partial batch is kept, as MXNet's NDArrayIter(last_batch_handle='pad') shows every sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool,
                 mean: Sequence[float], std: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError("images must be a uint8 NCHW tensor")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(n)
        return order[self.rank::self.world_size]

    def __len__(self) -> int:
        per_rank = -(-len(self.labels) // self.world_size)
        return -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self._indices().split(self.batch_size):
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)


# --- MNIST ---------------------------------------------------------------------------------------------

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {  # name -> (IDX magic, sha256 of the original gz file)
    "train-images-idx3-ubyte.gz": (2051, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (2049, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (2051, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (2049, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}


def read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Read a gzip-compressed IDX file (MNIST's format) into a uint8 array, checking magic and size."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a complete gzip file ({e})") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        raise DataError(f"{path}: wrong IDX magic {magic} (expected {expected_magic}); is this the right file?")
    ndim = magic & 0xFF
    dims = (count, *struct.unpack(f">{ndim - 1}I", raw[8:4 + 4 * ndim])) if ndim > 1 else (count,)
    header = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path}: holds {len(raw) - header} bytes of data, its header announces {expected}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def mnist_file(data_dir: str, name: str) -> str:
    """Path of MNIST file `name` in `data_dir`, downloading it first if it is not there."""
    path = os.path.join(data_dir, name)
    if not os.path.exists(path):
        try:
            download([m + name for m in MNIST_MIRRORS], path, sha256=MNIST_FILES[name][1])
        except DownloadError as e:
            raise DataError(str(e)) from None
    return path


def load_mnist(data_dir: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (N,1,28,28 uint8) and labels (N int64) from the four IDX gz files in `data_dir`.
    Downloads are checked against the published checksums; files already there are checked for structure
    only (gzip CRC, IDX magic and sizes), so same-format sets such as Fashion-MNIST work too."""
    split = "train" if train else "t10k"
    image_name, label_name = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
    arrays = []
    for name in (image_name, label_name):
        path = mnist_file(data_dir, name)
        arrays.append(read_idx(path, MNIST_FILES[name][0]))
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{data_dir}: {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def get_mnist_iter(args, dist: DistInfo) -> tuple[TensorBatches, TensorBatches]:
    """Training and validation batches of MNIST, pixels scaled to [0, 1] as MXNet's example does."""
    train_x, train_y = load_mnist(args.data_dir, train=True)
    val_x, val_y = load_mnist(args.data_dir, train=False)
    for labels, split in ((train_y, "train"), (val_y, "t10k")):
        if len(labels) and int(labels.max()) >= args.num_classes:
            raise DataError(f"{os.path.join(args.data_dir, split + '-labels-idx1-ubyte.gz')}: label "
                            f"{int(labels.max())} is outside --num-classes {args.num_classes}")
    if args.num_examples and args.num_examples < len(train_y):
        train_x, train_y = train_x[:args.num_examples], train_y[:args.num_examples]
    batch = args.batch_size // dist.world_size
    common = dict(mean=(0.0,), std=(255.0,), seed=args.seed, rank=dist.rank, world_size=dist.world_size)
    return (TensorBatches(train_x, train_y, batch, shuffle=True, **common),
            TensorBatches(val_x, val_y, batch, shuffle=False, **common))
