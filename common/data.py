"""Data: the loaders that turn MNIST files, record files or synthetic data into batches (all of the
`Batches` contract below), their options, and the `Normalizer` that makes model input of them on the device.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import os
import struct
import zlib
from typing import Callable, Iterator, NamedTuple, Protocol, Sequence

import cv2
import numpy as np
import torch
import torch.utils.data

from common import cli
from common.augment import EvalPreset, TrainPreset
from common.cli import DataError, UserError, parse_image_shape
from common.dist import DistInfo, data_threads
from common.download import download
from common.recordio import RecordIOError, RecordReader, read_index, unpack

log = logging.getLogger(__name__)


class Batches(Protocol):
    """What every loader is. Iterating gives this process's `(images, labels)` batches of one epoch: uint8
    NCHW images (0-255) and int64 class labels, on the CPU: one per image (N,), or for multi-label data
    (--label-width W > 1) W per image (N, W), each image's classes padded with -1. `len()` is the number of batches: for training,
    the same in every process, batch by batch of the same size (DDP pairs their collectives); a
    validation shard may be a batch shorter, since evaluation reduces only once, at the end.
    `set_epoch(epoch, start)` picks the epoch's order, a function of (seed, epoch, rank) only, so a resumed
    run sees the same data, and the batch it starts from: a run resumed in the middle of an epoch skips the
    batches done before without reading them (`len()` still counts them). `mean` and `std` (0-255 scale, one value per channel) are what the
    `Normalizer` applies."""
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def set_epoch(self, epoch: int, start: int = 0) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


# What a training script hands to `fit`: (options, this process) -> (training batches, validation or None).
LoaderFactory = Callable[[argparse.Namespace, DistInfo], "tuple[Batches, Batches | None]"]


class Normalizer:
    """uint8 batches to the device, then `(x - mean) / std` there, in the memory format the model uses."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device):
        scale = 1.0 / torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        shift = -torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1) * scale
        self.scale, self.device = scale, device
        self.shift = shift if shift.any() else None  # MNIST's [0, 1] scaling has no shift

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        images = images.float().mul_(self.scale)
        return images if self.shift is None else images.add_(self.shift)


class TensorBatches:
    """Batches straight from in-memory tensors: one index gather per batch, no per-sample Python work.

    Training (`shuffle`): each epoch draws a permutation from `seed` and the epoch number (so a resumed run
    sees the same order); rank r of `world_size` takes every world_size-th position of it, so shards are
    disjoint and complete. A shard one sample short of the others repeats its own first sample (wrapping
    around, as ShardSampler does), so that every process runs the same number of batches of the same sizes
    and the processes' collectives pair up. The last batch may be partial (the same in every process), as
    MXNet's NDArrayIter shows every sample; one process thus sees exactly the permutation, in batches.
    Validation: rank r takes samples r, r + world_size, ... in order, each sample counted once; `len()` is
    this process's own number of batches (evaluation has no collective per batch, as with RecordBatches)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool,
                 mean: Sequence[float], std: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError("images must be a uint8 NCHW tensor")
        if len(labels) < world_size:
            raise DataError(f"{len(labels)} samples cannot be shared by {world_size} processes")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _shard_size(self) -> int:
        n = len(self.labels)
        return -(-n // self.world_size) if self.shuffle else len(range(self.rank, n, self.world_size))

    def _indices(self) -> torch.Tensor:
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(self.rank, n, self.world_size)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        shard = order[self.rank::self.world_size]
        return torch.cat((shard, shard[:self._shard_size() - len(shard)]))  # short by at most one sample

    def __len__(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self._indices().split(self.batch_size)[self.start:]:
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)


# --- MNIST ---------------------------------------------------------------------------------------------

# The MNIST files the repository carries (data/mnist/README.md): the default of train_mnist.py.
EMBEDDED_MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist")
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {  # name -> (IDX magic, sha256 of the original gz file)
    "train-images-idx3-ubyte.gz": (2051, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (2049, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (2051, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (2049, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}


def read_idx(path: str, expected_magic: int, sha256: str | None = None, remedy: str = "") -> np.ndarray:
    """Read a gzip-compressed IDX file (MNIST's format) into a uint8 array, checking magic and size, and the
    sha256 of the file when given (`remedy` then says what to do about a damaged file)."""
    try:
        with open(path, "rb") as f:
            compressed = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    if sha256 is not None and (digest := hashlib.sha256(compressed).hexdigest()) != sha256:
        raise DataError(f"{path}: damaged (sha256 {digest}, expected {sha256}); {remedy}")
    try:
        raw = gzip.decompress(compressed)
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


RESTORE_EMBEDDED = "restore it (git checkout -- data/mnist) or give --data-dir"


def mnist_file(data_dir: str | None, name: str) -> str:
    """Path of MNIST file `name`: in `data_dir`, downloaded first if it is not there; with `data_dir` None,
    the copy the repository carries (EMBEDDED_MNIST), whose sha256 `load_mnist` checks at every read."""
    if data_dir is None:
        path = os.path.join(EMBEDDED_MNIST, name)
        if not os.path.exists(path):
            raise DataError(f"{path}: missing from this copy of the repository; {RESTORE_EMBEDDED}")
        return path
    path = os.path.join(data_dir, name)
    if not os.path.exists(path):
        download([m + name for m in MNIST_MIRRORS], path, sha256=MNIST_FILES[name][1])
    return path


def load_mnist(data_dir: str | None, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (N,1,28,28 uint8) and labels (N int64) from the four IDX gz files in `data_dir` (None:
    the embedded copy). Downloads are checked against the published checksums; files already in a
    `data_dir` are checked for structure only (gzip CRC, IDX magic and sizes), so same-format sets such as
    Fashion-MNIST work too."""
    split = "train" if train else "t10k"
    image_name, label_name = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
    arrays = []
    for name in (image_name, label_name):
        magic, sha256 = MNIST_FILES[name]
        check = sha256 if data_dir is None else None  # the embedded copy; downloads were checked as they came
        arrays.append(read_idx(mnist_file(data_dir, name), magic, check, RESTORE_EMBEDDED))
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{data_dir or EMBEDDED_MNIST}: {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def get_mnist_iter(args, dist: DistInfo) -> tuple[TensorBatches, TensorBatches]:
    """Training and validation batches of MNIST, pixels scaled to [0, 1] as MXNet's example does."""
    train_x, train_y = load_mnist(args.data_dir, train=True)
    val_x, val_y = load_mnist(args.data_dir, train=False)
    for labels, split in ((train_y, "train"), (val_y, "t10k")):
        if len(labels) and int(labels.max()) >= args.num_classes:
            path = os.path.join(args.data_dir or EMBEDDED_MNIST, f"{split}-labels-idx1-ubyte.gz")
            raise DataError(f"{path}: label {int(labels.max())} is outside --num-classes {args.num_classes}")
    if args.num_examples and args.num_examples < len(train_y):
        train_x, train_y = train_x[:args.num_examples], train_y[:args.num_examples]
    batch = rank_batch_size(args.batch_size, dist)
    common = dict(mean=(0.0,), std=(255.0,), seed=args.seed, rank=dist.rank, world_size=dist.world_size)
    return (TensorBatches(train_x, train_y, batch, shuffle=True, **common),
            TensorBatches(val_x, val_y, batch, shuffle=False, **common))


# --- image record files (.rec) -------------------------------------------------------------------------

def add_data_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """MXNet's data options (example/image-classification/common/data.py), same names and defaults."""
    data = parser.add_argument_group("Data", "the input images")
    data.add_argument("--data-train", type=str, help="the training data: a .rec file or a folder of them")
    data.add_argument("--data-train-idx", type=str, default="",
                      help="the index of the training data (default: the .idx beside the .rec; "
                           "without one the .rec is scanned)")
    data.add_argument("--data-val", type=str, help="the validation data: a .rec file or a folder of them")
    data.add_argument("--data-val-idx", type=str, default="", help="the index of the validation data")
    data.add_argument("--rgb-mean", type=str, default="123.68,116.779,103.939",
                      help="a tuple of size 3 for the mean rgb")
    data.add_argument("--rgb-std", type=str, default="1,1,1", help="a tuple of size 3 for the std rgb")
    data.add_argument("--pad-size", type=int, default=0, help="padding the input image")
    data.add_argument("--fill-value", type=int, default=127,
                      help="Set the padding pixels value to fill_value")
    data.add_argument("--image-shape", type=str, default="3,224,224",
                      help="the image shape feed into the network, e.g. (3,224,224)")
    data.add_argument("--num-classes", type=int, help="the number of classes")
    data.add_argument("--label-width", type=int, default=1,
                      help="labels per image. 1: one class per image (a record holding several gives its first). "
                           "N > 1: multi-label; each record holds up to N class numbers (a .lst's label columns, "
                           "padded with -1; tools/im2rec.py --pack-label), trained with binary cross-entropy and "
                           "reported as mAP")
    data.add_argument("--class-names", type=str, metavar="FILE",
                      help="the class names, one per line, line i naming class i (default: synset.txt beside "
                           "--data-train, as tools/im2rec.py --list writes it); saved as PREFIX-synset.txt")
    data.add_argument("--num-examples", type=int, help="the number of training examples")
    data.add_argument("--data-nthreads", type=int, default=None,
                      help="number of worker processes for data decoding (0: decode in the training process). "
                           "Default: 4 on the CPU (MXNet's); with --gpus, this machine's cores shared by the GPU "
                           "processes, at most 12 each")
    data.add_argument("--benchmark", type=int, default=0,
                      help="if 1, then feed the network with synthetic data")
    return data


# --data-aug-level presets (docs/formats.md section 8.5); each level adds to the ones below it.
AUG_LEVELS = {
    1: dict(random_crop=1, random_mirror=1),
    2: dict(max_random_h=36, max_random_s=50, max_random_l=50),
    3: dict(max_random_rotate_angle=10, max_random_shear_ratio=0.1, max_random_aspect_ratio=0.25),
}


def aug_level_settings(level: int) -> dict:
    """The values `--data-aug-level level` gives every option the levels cover: those of levels 1 to
    `level`, and 0 (off) for the rest, so that level 0 means no augmentation."""
    return {key: value if lvl <= level else 0 for lvl, settings in AUG_LEVELS.items()
            for key, value in settings.items()}


def set_data_aug_level(parser: argparse.ArgumentParser, level: int) -> None:
    """For scripts: make `level`'s augmentations the defaults (MXNet's data.set_data_aug_level)."""
    parser.set_defaults(**aug_level_settings(level))


def add_data_aug_args(parser: cli.ArgumentParser) -> argparse._ArgumentGroup:
    """MXNet's augmentation options (ImageRecordIter's), same names and defaults, plus --data-aug-level.
    The parser must be a `cli.ArgumentParser`, which applies the level whatever the order of the options."""
    if not isinstance(parser, cli.ArgumentParser):
        raise TypeError("--data-aug-level needs a common.cli.ArgumentParser to apply its preset")
    aug = parser.add_argument_group("Image augmentations", "applied in this order, see common/augment.py")
    aug.add_argument("--random-crop", type=int, default=0, help="if or not randomly crop the image")
    aug.add_argument("--random-mirror", type=int, default=0, help="if or not randomly flip horizontally")
    aug.add_argument("--max-random-h", type=int, default=0, help="max change of hue, whose range is [0, 180]")
    aug.add_argument("--max-random-s", type=int, default=0,
                     help="max change of saturation, whose range is [0, 255]")
    aug.add_argument("--max-random-l", type=int, default=0,
                     help="max change of intensity, whose range is [0, 255]")
    aug.add_argument("--min-random-aspect-ratio", type=float, default=None,
                     help="min value of aspect ratio, whose value is either None or a positive value.")
    aug.add_argument("--max-random-aspect-ratio", type=float, default=0,
                     help="max value of aspect ratio. If min_random_aspect_ratio is None, the aspect ratio "
                          "range is [1-max_random_aspect_ratio, 1+max_random_aspect_ratio], otherwise it is "
                          "[min_random_aspect_ratio, max_random_aspect_ratio].")
    aug.add_argument("--max-random-rotate-angle", type=int, default=0,
                     help="max angle to rotate, whose range is [0, 360]")
    aug.add_argument("--max-random-shear-ratio", type=float, default=0,
                     help="max ratio to shear, whose range is [0, 1]")
    aug.add_argument("--max-random-scale", type=float, default=1, help="max ratio to scale")
    aug.add_argument("--min-random-scale", type=float, default=1,
                     help="min ratio to scale, should >= img_size/input_shape. otherwise use --pad-size")
    aug.add_argument("--max-random-area", type=float, default=1,
                     help="max area to crop in random resized crop, whose range is [0, 1]")
    aug.add_argument("--min-random-area", type=float, default=1,
                     help="min area to crop in random resized crop, whose range is [0, 1]")
    aug.add_argument("--min-crop-size", type=int, default=-1,
                     help="Crop both width and height into a random size in [min_crop_size, max_crop_size]")
    aug.add_argument("--max-crop-size", type=int, default=-1,
                     help="Crop both width and height into a random size in [min_crop_size, max_crop_size]")
    aug.add_argument("--brightness", type=float, default=0,
                     help="brightness jittering, whose range is [0, 1]")
    aug.add_argument("--contrast", type=float, default=0, help="contrast jittering, whose range is [0, 1]")
    aug.add_argument("--saturation", type=float, default=0,
                     help="saturation jittering, whose range is [0, 1]")
    aug.add_argument("--pca-noise", type=float, default=0, help="pca noise, whose range is [0, 1]")
    aug.add_argument("--random-resized-crop", type=int, default=0, help="whether to use random resized crop")
    aug.add_argument("--data-aug-level", type=int, choices=range(4), action=cli.PresetAction,
                     settings=aug_level_settings,
                     help="preset: 0 = no augmentation; 1 = random crop + mirror; 2 = plus h/s/l 36/50/50; "
                          "3 = plus rotate 10, shear 0.1, aspect 0.25 (options given explicitly override it, "
                          "wherever they stand)")
    return aug


def parse_channel_values(text: str, option: str, channels: int) -> tuple[float, ...]:
    """'123.68,116.779,103.939' -> one value per channel (a 1-channel shape takes the first of three)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (channels, 3):
        raise DataError(f"{option} '{text}': expected {channels} comma-separated numbers")
    return values[:channels]


class RecordFiles:
    """The records of one or more `.rec` files: where each starts (file number, byte offset), taken from
    the `.idx` files or, without one, by scanning the `.rec`. Readers are opened lazily in each process."""

    def __init__(self, rec_paths: list[str], file_ids: np.ndarray, offsets: np.ndarray):
        self.rec_paths, self.file_ids, self.offsets = rec_paths, file_ids, offsets
        self._readers: dict[int, RecordReader] = {}

    @classmethod
    def open(cls, path: str, idx_path: str = "") -> RecordFiles:
        """`path`: a .rec file (index `idx_path`, else the .idx beside it) or a folder of .rec files."""
        if os.path.isdir(path):
            if idx_path:
                raise DataError(f"{path} is a folder: an index can only be given for a single .rec file")
            recs = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".rec"))
            if not recs:
                raise DataError(f"{path}: folder holds no .rec files")
        elif os.path.isfile(path):
            recs = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        file_ids, offsets = [], []
        for number, rec in enumerate(recs):
            idx = idx_path or os.path.splitext(rec)[0] + ".idx"
            with RecordReader(rec) as reader:
                if os.path.exists(idx):
                    found = list(read_index(idx, reader.size).values())
                elif idx_path:
                    raise DataError(f"{idx_path}: index file not found")
                else:
                    log.info("%s has no index %s: scanning it (tools/rec2idx.py writes one)", rec, idx)
                    found = reader.scan_offsets()
            file_ids.append(np.full(len(found), number, np.int32))
            offsets.append(np.array(found, np.int64))
        files = cls(recs, np.concatenate(file_ids), np.concatenate(offsets))
        if len(files) == 0:
            raise DataError(f"{path}: holds no records")
        return files

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict:  # open file descriptors stay in the process that opened them
        return {**self.__dict__, "_readers": {}}

    def read(self, position: int) -> tuple[str, int, bytes]:
        """(file, byte offset, record payload) of record number `position`."""
        number, offset = int(self.file_ids[position]), int(self.offsets[position])
        reader = self._readers.get(number)
        if reader is None:
            reader = self._readers[number] = RecordReader(self.rec_paths[number])
        return reader.path, offset, reader.read_at(offset)


class RecordKeys(NamedTuple):
    """Which records a batch holds: their numbers in the files' order and their image ids (the `.lst` index)."""
    positions: torch.Tensor
    ids: torch.Tensor


def _keys(positions: np.ndarray, ids: np.ndarray) -> RecordKeys:
    return RecordKeys(torch.from_numpy(positions), torch.from_numpy(ids))


class _Batch(NamedTuple):
    images: torch.Tensor
    labels: torch.Tensor
    keys: RecordKeys
    skipped: list[str]  # one warning per image that did not decode
    error: str | None   # a fatal problem (bad record or label), raised as DataError by the loader


class _BatchDecoder(torch.utils.data.Dataset):
    """Turns a task (batch seed, record positions) into a batch; runs in the DataLoader's workers."""

    def __init__(self, files: RecordFiles, preset, shape: tuple[int, int, int], num_classes: int | None,
                 label_width: int = 1):
        self.files, self.preset, self.shape, self.num_classes = files, preset, shape, num_classes
        self.label_width = label_width

    def _record(self, position: int) -> tuple[str, int, list[int], bytes]:
        """(where, image id, labels, image bytes) of a record; errors name the file and the byte offset. With
        label width 1 the labels are the first of the record's; wider, all of them, padded with -1."""
        path, offset, record = self.files.read(position)
        try:
            header, data = unpack(record)
        except RecordIOError as e:
            raise DataError(f"{path}: record at byte {offset}: {e}") from None
        where = f"{path}: record at byte {offset} (image id {header.id})"
        found = [float(header.label)] if header.flag == 0 else [float(v) for v in header.label]
        if self.label_width == 1:
            found = found[:1]
        else:
            found = [label for label in found if label != -1]  # the padding of a list's label columns
            if len(found) > self.label_width:
                raise DataError(f"{where}: {len(found)} labels do not fit --label-width {self.label_width}")
        for label in found:
            if self.num_classes is not None and not (label.is_integer() and 0 <= label < self.num_classes):
                raise DataError(f"{where}: label {label:g} is outside 0..{self.num_classes - 1} "
                                f"(--num-classes {self.num_classes})")
            if not (label.is_integer() and label >= 0):
                raise DataError(f"{where}: label {label:g} is not a class number (0, 1, 2, ...)")
        labels = [int(label) for label in found]
        return where, header.id, labels + [-1] * (self.label_width - len(labels)), data

    def __getitem__(self, task: tuple[tuple[int, ...], np.ndarray]) -> _Batch:
        seed, positions = task
        rng = np.random.default_rng(seed)
        images = torch.empty((len(positions), *self.shape), dtype=torch.uint8)
        if torch.utils.data.get_worker_info() is not None:
            images.share_memory_()  # decode straight into the memory the batch is handed over in
        pixels = images.numpy()
        labels = np.empty((len(positions), self.label_width), dtype=np.int64)
        record_positions, ids = np.empty(len(positions), np.int64), np.empty(len(positions), np.int64)
        skipped, n = [], 0
        for position in positions:
            try:
                where, image_id, label, data = self._record(position)
            except DataError as e:  # RecordIOError too
                return _Batch(images[:0], torch.from_numpy(labels[:0]), _keys(record_positions[:0], ids[:0]),
                              skipped, str(e))
            img = self.preset(data, rng)
            if img is None:
                skipped.append(f"{where}: image does not decode, skipped")
                continue
            if img.shape[:2] != self.shape[1:]:  # cv2.split below would then write elsewhere, silently
                raise AssertionError(f"{where}: augmentation returned {img.shape}, expected {self.shape}")
            if self.shape[0] == 3:  # BGR HWC -> RGB CHW: OpenCV writes the planes in place, 5x numpy's speed
                cv2.split(img, [pixels[n, 2], pixels[n, 1], pixels[n, 0]])
            else:
                pixels[n, 0] = img[:, :, 0]
            labels[n] = label
            record_positions[n], ids[n] = position, image_id
            n += 1
        labels = torch.from_numpy(np.ascontiguousarray(labels[:n, 0] if self.label_width == 1 else labels[:n]))
        return _Batch(images[:n], labels, _keys(record_positions[:n], ids[:n]), skipped, None)


class ShardSampler(torch.utils.data.Sampler):
    """This rank's batches of record positions for the current epoch, as (augmentation seed, positions).

    Training: all records permuted with (seed, epoch); rank r of world_size takes every world_size-th
    record of that order, so shards are disjoint and together complete. Every batch is full and every
    rank runs the same number of them: a shard is filled up by wrapping around to its start, as MXNet's
    round_batch does. Validation: file order and a partial last batch. The augmentation seed of a batch
    depends on (seed, epoch, rank, batch number) only, so images do not depend on the worker count."""

    def __init__(self, num_records: int, batch_size: int, *, train: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        self.num_records, self.batch_size, self.train = num_records, batch_size, train
        self.seed, self.rank, self.world_size = seed % 2**32, rank, world_size
        self.epoch, self.start = 0, 0  # the epoch, and the batch it starts from

    def shard(self) -> np.ndarray:
        """This rank's record positions for the current epoch, in reading order."""
        if not self.train:
            return np.arange(self.rank, self.num_records, self.world_size)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_records)
        return np.resize(order[self.rank::self.world_size], len(self) * self.batch_size)

    def __len__(self) -> int:
        n, world = self.num_records, self.world_size
        per_rank = -(-n // world) if self.train else len(range(self.rank, n, world))
        return -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        shard = self.shard()
        for i in range(self.start, len(self)):
            yield (self.seed, self.epoch, self.rank, i), shard[i * self.batch_size:(i + 1) * self.batch_size]


class RecordBatches:
    """Batches decoded from record files by `num_workers` processes (the loader protocol of this module),
    in the order of a ShardSampler. Images that do not decode are skipped with a warning and counted in
    `num_skipped`; a bad record or label raises DataError. With `label_width` N > 1 the labels of a batch
    are (batch, N): each image's class numbers, padded with -1 (multi-label records)."""

    def __init__(self, files: RecordFiles, preset, shape: tuple[int, int, int], batch_size: int, *,
                 train: bool, mean: Sequence[float], std: Sequence[float], seed: int = 0, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, pin_memory: bool = False,
                 num_classes: int | None = None, label_width: int = 1):
        if len(files) < world_size:
            raise DataError(f"{files.rec_paths[0]}: {len(files)} records cannot be shared by "
                            f"{world_size} processes")
        self.mean, self.std = tuple(mean), tuple(std)
        self.sampler = ShardSampler(len(files), batch_size, train=train, seed=seed, rank=rank,
                                    world_size=world_size)
        self.num_skipped = 0
        # No cv2.setNumThreads in the workers: after a fork it deadlocks once the parent has used OpenCV's
        # thread pool. And nothing here may point back at self, or the workers outlive the loader.
        self._loader = torch.utils.data.DataLoader(
            _BatchDecoder(files, preset, shape, num_classes, label_width), batch_size=None, sampler=self.sampler,
            num_workers=num_workers, persistent_workers=num_workers > 0, pin_memory=pin_memory)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.sampler.epoch, self.sampler.start = epoch, start

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, _ in self.with_keys():
            yield images, labels

    def with_keys(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, RecordKeys]]:
        """The batches with the keys of their records (what a per-image prediction file names)."""
        for batch in self._loader:
            if batch.error:
                raise DataError(batch.error)
            for message in batch.skipped:
                log.warning(message)
            self.num_skipped += len(batch.skipped)
            if len(batch.labels):
                yield batch.images, batch.labels, batch.keys


def build_train_preset(args, shape: tuple[int, int, int]) -> TrainPreset:
    """The training augmentation that the options in `args` (add_data_aug_args) ask for."""
    try:
        return TrainPreset(
            height=shape[1], width=shape[2], channels=shape[0], rand_crop=bool(args.random_crop),
            rand_mirror=bool(args.random_mirror), max_rotate_angle=args.max_random_rotate_angle,
            max_shear_ratio=args.max_random_shear_ratio, min_random_scale=args.min_random_scale,
            max_random_scale=args.max_random_scale, max_aspect_ratio=args.max_random_aspect_ratio,
            min_aspect_ratio=args.min_random_aspect_ratio, pad=args.pad_size, fill_value=args.fill_value,
            random_resized_crop=bool(args.random_resized_crop), min_random_area=args.min_random_area,
            max_random_area=args.max_random_area, min_crop_size=args.min_crop_size,
            max_crop_size=args.max_crop_size, brightness=args.brightness, contrast=args.contrast,
            saturation=args.saturation, random_h=args.max_random_h, random_s=args.max_random_s,
            random_l=args.max_random_l, pca_noise=args.pca_noise)
    except UserError as e:
        raise DataError(f"augmentation options: {e}") from None


def get_rec_iter(args, dist: DistInfo) -> tuple[RecordBatches | SyntheticBatches, RecordBatches | None]:
    """Training and validation (None without --data-val) batches from record files, or synthetic batches
    with --benchmark 1. Each rank reads its shard; `args.batch_size` is shared by the ranks."""
    if args.benchmark:
        return get_synthetic_iter(args, dist)
    if not args.data_train:
        raise DataError("--data-train is required: a .rec file or a folder of them (or --benchmark 1)")
    for option, path, way_out in (("--data-train", args.data_train, ""),
                                  ("--data-val", args.data_val, ", or --data-val '' to train without validation")):
        if path and not os.path.exists(path):
            raise DataError(f"{option} {path}: no such file or folder; give {option} FILE{way_out}")
    shape = parse_image_shape(args.image_shape)
    mean, std = channel_mean_std(args, shape[0])
    batch = rank_batch_size(args.batch_size, dist)
    threads = data_threads(args.data_nthreads, getattr(args, "gpus", ""))  # benchmarks' parsers have no --gpus
    # --num-examples does not cut the data: as in MXNet it only tells the training loop the epoch size
    train_files = RecordFiles.open(args.data_train, args.data_train_idx)
    train = RecordBatches(train_files, build_train_preset(args, shape), shape, batch, train=True, mean=mean, std=std,
                          seed=args.seed, rank=dist.rank, world_size=dist.world_size, num_workers=threads,
                          pin_memory=dist.device.type == "cuda", num_classes=args.num_classes,
                          label_width=args.label_width)
    if not args.data_val:
        return train, None
    return train, validation_batches(args.data_val, shape, batch, dist, idx_path=args.data_val_idx, mean=mean,
                                     std=std, num_workers=threads, num_classes=args.num_classes,
                                     label_width=args.label_width)


def channel_mean_std(args: argparse.Namespace, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """--rgb-mean and --rgb-std, one value per channel."""
    return (parse_channel_values(args.rgb_mean, "--rgb-mean", channels),
            parse_channel_values(args.rgb_std, "--rgb-std", channels))


def rank_batch_size(batch_size: int, dist: DistInfo) -> int:
    """Each process's share of the global --batch-size."""
    return max(1, batch_size // dist.world_size)


def validation_batches(path: str, shape: tuple[int, int, int], batch_size: int, dist: DistInfo, *,
                       mean: Sequence[float], std: Sequence[float], num_workers: int, idx_path: str = "",
                       num_classes: int | None = None, limit: int | None = None,
                       label_width: int = 1) -> RecordBatches:
    """This rank's share of the records of `path` (the first `limit` only, when given), in file order, with
    the centred crop every validation and scoring run uses."""
    files = RecordFiles.open(path, idx_path)
    if limit:
        files = RecordFiles(files.rec_paths, files.file_ids[:limit], files.offsets[:limit])
    preset = EvalPreset(height=shape[1], width=shape[2], channels=shape[0])
    return RecordBatches(files, preset, shape, batch_size, train=False, mean=mean, std=std, rank=dist.rank,
                         world_size=dist.world_size, num_workers=num_workers,
                         pin_memory=dist.device.type == "cuda", num_classes=num_classes, label_width=label_width)


class SyntheticBatches:
    """`--benchmark 1`: one random uint8 batch of --image-shape, served `num_batches` times per epoch, so
    that the measured speed is the network's alone."""

    def __init__(self, shape: tuple[int, int, int], batch_size: int, num_classes: int, *,
                 mean: Sequence[float], std: Sequence[float], num_batches: int, seed: int = 0,
                 pin_memory: bool = False, label_width: int = 1):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (batch_size, *shape), dtype=torch.uint8, generator=generator)
        self.labels = torch.randint(0, num_classes, (batch_size,) if label_width == 1 else (batch_size, label_width),
                                    generator=generator)
        if pin_memory:
            self.images, self.labels = self.images.pin_memory(), self.labels.pin_memory()
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_batches, self.start = num_batches, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.start = start

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(self.start, self.num_batches):
            yield self.images, self.labels


def get_synthetic_iter(args, dist: DistInfo) -> tuple[SyntheticBatches, None]:
    """Synthetic training batches of --image-shape and --num-classes; no files are read. An epoch is
    --num-examples / --batch-size batches (rounded down), as MXNet's SyntheticDataIter."""
    if not args.num_classes:
        raise DataError("--benchmark 1 needs --num-classes")
    if not args.num_examples or args.num_examples < args.batch_size:
        raise DataError(f"--benchmark 1 runs --num-examples / --batch-size batches an epoch: --num-examples "
                        f"{args.num_examples} must be at least --batch-size {args.batch_size}")
    shape = parse_image_shape(args.image_shape)
    mean, std = channel_mean_std(args, shape[0])
    train = SyntheticBatches(shape, rank_batch_size(args.batch_size, dist), args.num_classes, mean=mean, std=std,
                             num_batches=args.num_examples // args.batch_size, seed=args.seed,
                             pin_memory=dist.device.type == "cuda", label_width=args.label_width)
    return train, None
