"""Build a multi-label data set: 2x2 mosaics of Imagenette images, packed for training with --label-width 4.

    python data/imagenette_mosaic.py              # 2000 train / 500 val mosaics in data/imagenette-mosaic
    python data/imagenette_mosaic.py --source ~/imagenette2/train --num-train 20000 --output /data/mosaic

Each mosaic tiles 4 source images, each cut to its centred square and resized to --tile-size (default 112,
so mosaics are 224x224). A mosaic first draws how many distinct classes it shows, k, uniformly from 1-4,
then k distinct classes; each of them fills one tile, the 4 - k tiles left take classes drawn from those k,
and the tiles are placed in a random order. So a quarter of the mosaics have each label count, and a class
is in a quarter of the mosaics: chance-level mAP is about 0.25 (random scores on the default validation set:
0.253 on average over 1,000 draws, 0.243-0.264 for 90% of them), against 1.0 for a perfect model. The labels
of a mosaic are its sorted distinct class numbers, padded with -1 to 4 columns.

Train and validation mosaics come from disjoint source images: each class's images are shuffled (by
--seed) and split 80/20. Within a mosaic no source image repeats (while a class has enough images); across
mosaics they do, as 4 tiles per mosaic soon use up a small source. The same --seed gives the same bytes
(with the same OpenCV), and the validation set does not depend on --num-train.

Writes into --output:

    images/train/NNNNNN.jpg, images/val/NNNNNN.jpg   the mosaics (JPEG at --quality)
    mosaic_train.lst, mosaic_val.lst                 im2rec lists: index, 4 label columns, path under images/
    mosaic_train_tiles.tsv, mosaic_val_tiles.tsv     the source image of each tile (index, then the 4 tiles'
                                                     paths under --source, in reading order: top left,
                                                     top right, bottom left, bottom right)
    mosaic_train.rec/.idx, mosaic_val.rec/.idx       the lists packed by tools/im2rec.py --pack-label
                                                     --pass-through (IRHeader flag 4: docs/formats.md)
    synset.txt                                       line i: class i's folder (WordNet id) and name

Classes are the source's class folders in sorted order, numbered as tools/im2rec.py --list --recursive
numbers them.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common import cli  # noqa: E402
from common.cli import DataError, UserError  # noqa: E402
from common.datasets import dataset_folder  # noqa: E402
from common.labels import CLASS_NAMES_FILE, write_class_names  # noqa: E402
from tools import im2rec  # noqa: E402

TILES = 4  # 2x2; also the label width
VAL_SHARE = 0.2
IMAGENETTE_NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck",
    "n03425413": "gas pump", "n03445777": "golf ball", "n03888257": "parachute",
}


class Mosaic(NamedTuple):
    """One mosaic: its index and the (class, source path under --source) of its tiles in reading order."""
    index: int
    tiles: tuple[tuple[int, str], ...]

    @property
    def labels(self) -> tuple[float, ...]:
        """The sorted distinct classes, padded with -1 to TILES labels."""
        classes = sorted({label for label, _ in self.tiles})
        return tuple(float(c) for c in classes + [-1] * (TILES - len(classes)))


def find_classes(source: str) -> tuple[list[str], list[list[str]]]:
    """(class folder names, each class's image paths under `source`, sorted), labelled as im2rec's
    --list --recursive labels them."""
    items, folders = im2rec.list_images(source, True, im2rec.get_args_parser().get_default("exts"))
    images: dict[int, list[str]] = defaultdict(list)
    for item in items:
        images[int(item.labels[0])].append(item.path)
    names = [os.path.relpath(folder, source) for folder in folders]
    if len(names) < TILES:
        raise DataError(f"{source}: {len(names)} class folder(s) with images; a mosaic of {TILES} classes "
                        f"needs at least {TILES}")
    for label, name in enumerate(names):
        if len(images[label]) < 2:
            raise DataError(f"{os.path.join(source, name)}: {len(images[label])} image(s); each class needs "
                            "at least 2, one for training and one for validation")
    return names, [sorted(images[label]) for label in range(len(names))]


def split_sources(images: list[list[str]], rng: np.random.Generator) -> tuple[list[list[str]], ...]:
    """(train, val) image paths per class: each class shuffled, VAL_SHARE of it (at least 1) to val."""
    train, val = [], []
    for paths in images:
        paths = [paths[i] for i in rng.permutation(len(paths))]
        cut = len(paths) - max(1, round(VAL_SHARE * len(paths)))
        train.append(paths[:cut])
        val.append(paths[cut:])
    return train, val


def plan_mosaics(pools: list[list[str]], count: int, rng: np.random.Generator) -> list[Mosaic]:
    """`count` mosaics from the per-class image pools (see the module docstring for the draws)."""
    mosaics = []
    for index in range(count):
        k = int(rng.integers(1, TILES + 1))
        classes = rng.choice(len(pools), k, replace=False)
        tile_classes = rng.permutation(np.concatenate([classes, rng.choice(classes, TILES - k)]))
        tiles: list = [None] * TILES
        for label in classes:
            where = np.flatnonzero(tile_classes == label)
            pool = pools[label]
            picks = rng.choice(len(pool), len(where), replace=len(where) > len(pool))
            for position, pick in zip(where, picks):
                tiles[position] = (int(label), pool[pick])
        mosaics.append(Mosaic(index, tuple(tiles)))
    return mosaics


def render(mosaic: Mosaic, source: str, tile_size: int) -> np.ndarray:
    """The mosaic as a BGR image of 2 x 2 tiles of tile_size pixels."""
    side = TILES // 2
    canvas = np.empty((side * tile_size, side * tile_size, 3), np.uint8)
    for position, (_, path) in enumerate(mosaic.tiles):
        img = cv2.imread(os.path.join(source, path), cv2.IMREAD_COLOR)  # gray sources become 3 channels
        if img is None:
            raise DataError(f"{os.path.join(source, path)}: not an image OpenCV can read")
        tile = cv2.resize(im2rec.center_square(img), (tile_size, tile_size), interpolation=cv2.INTER_AREA)
        row, column = divmod(position, side)
        canvas[row * tile_size:(row + 1) * tile_size, column * tile_size:(column + 1) * tile_size] = tile
    return canvas


def write_split(name: str, mosaics: list[Mosaic], args: argparse.Namespace) -> None:
    """The mosaics' JPEGs, `mosaic_<name>.lst`, `mosaic_<name>_tiles.tsv`, and the packed .rec/.idx."""
    images = os.path.join(args.output, "images")
    os.makedirs(os.path.join(images, name), exist_ok=True)
    items = []
    for mosaic in tqdm(mosaics, desc=f"mosaic {name}", unit="img", disable=None):
        path = f"{name}/{mosaic.index:06d}.jpg"
        if not cv2.imwrite(os.path.join(images, path), render(mosaic, args.source, args.tile_size),
                           [cv2.IMWRITE_JPEG_QUALITY, args.quality]):
            raise DataError(f"{os.path.join(images, path)}: OpenCV could not write it")
        items.append(im2rec.ListItem(mosaic.index, path, mosaic.labels))
    prefix = os.path.join(args.output, f"mosaic_{name}")
    im2rec.write_list(prefix + ".lst", items)
    with open(prefix + "_tiles.tsv", "w") as f:
        f.writelines("\t".join([str(m.index), *(path for _, path in m.tiles)]) + "\n" for m in mosaics)
    pack_args = im2rec.get_args_parser().parse_args(["--pack-label", "--pass-through", prefix, images])
    packed, skipped = im2rec.pack_list(prefix + ".lst", args.output, pack_args)
    if skipped:
        raise DataError(f"{prefix}.lst: im2rec skipped {skipped} of {packed + skipped} mosaics")


def get_args_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Each mosaic shows 1-4 classes (a quarter of the mosaics each); "
                                       "labels are the sorted classes padded with -1 to 4. Train and val "
                                       "mosaics use disjoint source images (80/20 per class). Chance-level "
                                       "mAP is about 0.25. Train with --label-width 4.")
    parser.add_argument("--source", help="folder of class folders of images (default: "
                                         "$IMAGECLS_DATASETS/imagenette-224/val)")
    parser.add_argument("--output", default=os.path.join(ROOT, "data", "imagenette-mosaic"),
                        help="where the mosaics, lists, records and synset.txt go")
    parser.add_argument("--num-train", type=int, default=2000, help="number of training mosaics")
    parser.add_argument("--num-val", type=int, default=500, help="number of validation mosaics")
    parser.add_argument("--tile-size", type=int, default=112,
                        help="side of each tile in pixels; a mosaic is twice that on each side")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split and the draws: same seed, same files")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the mosaics, 1-100")
    return parser


def main(args: argparse.Namespace) -> None:
    for option, value, low in (("--num-train", args.num_train, 1), ("--num-val", args.num_val, 1),
                               ("--tile-size", args.tile_size, 1), ("--quality", args.quality, 1)):
        if value < low:
            raise UserError(f"{option} {value}: must be at least {low}")
    if args.quality > 100:
        raise UserError(f"--quality {args.quality}: must be at most 100")
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: must not be negative")
    args.source = os.path.abspath(dataset_folder(args.source, "imagenette-224/val", "--source"))
    args.output = os.path.abspath(args.output)
    names, images = find_classes(args.source)
    train_pools, val_pools = split_sources(images, np.random.default_rng([args.seed, 0]))
    os.makedirs(args.output, exist_ok=True)
    write_class_names(os.path.join(args.output, CLASS_NAMES_FILE),
                      [" ".join(filter(None, (name, IMAGENETTE_NAMES.get(name)))) for name in names])
    for number, (name, pools, count) in enumerate((("train", train_pools, args.num_train),
                                                   ("val", val_pools, args.num_val)), 1):
        # a stream per split, so that the validation mosaics do not depend on --num-train
        write_split(name, plan_mosaics(pools, count, np.random.default_rng([args.seed, number])), args)


if __name__ == "__main__":
    cli.run_main(lambda: main(get_args_parser().parse_args()))
