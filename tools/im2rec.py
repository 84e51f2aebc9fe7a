"""Make image lists (.lst) and pack images into RecordIO files (.rec + .idx), as MXNet's tools/im2rec.py.

    # 1. list the images of a folder of class folders (shuffled; 'prefix.lst', or _train/_val/_test lists),
    #    and name the classes in synset.txt beside the lists (line i: the folder of label i)
    python tools/im2rec.py --list --recursive data/caltech data/101_ObjectCategories
    # 2. pack every list starting with the prefix into '<list name>.rec' and '.idx' beside it
    python tools/im2rec.py --num-thread 2 --resize 256 --quality 95 data/caltech data/101_ObjectCategories

Same options, list splitting, labels, shuffle and output bytes as MXNet's im2rec (docs/formats.md section 5),
records in list order whatever --num-thread. Files that cannot be read or decoded are skipped with a
warning and counted in the summary; malformed list lines are reported with their line number.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.augment import crop_box, cut  # noqa: E402
from common.labels import beside, write_class_names  # noqa: E402
from common.recordio import IndexedRecordWriter, IRHeader, pack, pack_img  # noqa: E402


class ListItem(NamedTuple):
    index: int
    path: str  # relative to root
    labels: tuple[float, ...]


# --- list mode -----------------------------------------------------------------------------------------

def list_images(root: str, recursive: bool, exts: Iterable[str]) -> tuple[list[ListItem], dict[str, int]]:
    """Images under `root` with a lower-cased extension in `exts`, and the {folder: label} map.

    Without `recursive`: the files directly in root, sorted, label 0. With it: os.walk (following links)
    with folders and files sorted; a folder gets the next label when its first image is met."""
    exts = set(exts)
    items, labels = [], {}
    if recursive:
        for folder, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if os.path.splitext(name)[1].lower() in exts and os.path.isfile(path):
                    label = labels.setdefault(folder, len(labels))
                    items.append(ListItem(len(items), os.path.relpath(path, root), (float(label),)))
    else:
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if os.path.splitext(name)[1].lower() in exts and os.path.isfile(path):
                items.append(ListItem(len(items), os.path.relpath(path, root), (0.0,)))
    return items, labels


def write_list(path: str, items: Iterable[ListItem]) -> None:
    """'index<TAB>label<TAB>...<TAB>path' per line, labels as '%f' like MXNet."""
    with open(path, "w") as f:
        for item in items:
            f.write(f"{item.index}\t" + "".join(f"{label:f}\t" for label in item.labels) + f"{item.path}\n")


def split_lists(prefix: str, items: list[ListItem], chunks: int, train_ratio: float,
                test_ratio: float) -> dict[str, list[ListItem]]:
    """{list file: items}: `chunks` chunks ('_i' suffixes when more than one), each split into
    test / train / val by the ratios (MXNet's make_list)."""
    chunk_size = -(-len(items) // chunks)
    lists = {}
    for i in range(chunks):
        chunk = items[i * chunk_size:(i + 1) * chunk_size]
        name = prefix + (f"_{i}" if chunks > 1 else "")
        sep, sep_test = int(chunk_size * train_ratio), int(chunk_size * test_ratio)
        if train_ratio == 1.0:
            lists[name + ".lst"] = chunk
            continue
        if test_ratio:
            lists[name + "_test.lst"] = chunk[:sep_test]
        if train_ratio + test_ratio < 1.0:
            lists[name + "_val.lst"] = chunk[sep_test + sep:]
        lists[name + "_train.lst"] = chunk[sep_test:sep_test + sep]
    return lists


def make_lists(args: argparse.Namespace) -> None:
    items, labels = list_images(args.root, args.recursive, args.exts)
    for folder, label in labels.items():
        print(os.path.relpath(folder, args.root), label)
    if args.recursive:
        names_path = beside(args.prefix)
        write_class_names(names_path, [os.path.relpath(folder, args.root) for folder in labels])
        print(f"Wrote {names_path}: {len(labels)} class names, line i naming label i")
    if args.shuffle:
        random.seed(100)
        random.shuffle(items)
    lists = split_lists(args.prefix, items, args.chunks, args.train_ratio, args.test_ratio)
    for path, chunk in lists.items():
        write_list(path, chunk)
        print(f"Wrote {path}: {len(chunk)} images")


# --- record mode ---------------------------------------------------------------------------------------

def read_list(path: str) -> tuple[list[ListItem], list[str]]:
    """Items of a .lst file and one message per malformed line (skipped), naming its line number."""
    items, problems = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = [field.strip() for field in line.strip().split("\t")]
            if len(fields) < 3:
                problems.append(f"{path}: line {number}: expected index<TAB>label<TAB>path, "
                                f"got {len(fields)} field(s); skipped")
                continue
            try:
                items.append(ListItem(int(fields[0]), fields[-1], tuple(float(v) for v in fields[1:-1])))
            except ValueError:
                problems.append(f"{path}: line {number}: index must be an integer and labels numbers, "
                                f"got {line.strip()!r}; skipped")
    return items, problems


class Encoder:
    """Turns one list item into a record payload (or None and the reason), like MXNet's image_encode."""

    def __init__(self, args: argparse.Namespace):
        self.root, self.pass_through, self.pack_label = args.root, args.pass_through, args.pack_label
        self.color, self.center_crop, self.resize = args.color, args.center_crop, args.resize
        self.quality, self.encoding = args.quality, args.encoding

    def __call__(self, item: ListItem) -> tuple[bytes | None, str]:
        path = os.path.join(self.root, item.path)
        label = list(item.labels) if self.pack_label and len(item.labels) > 1 else item.labels[0]
        header = IRHeader(0, label, item.index, 0)
        if self.pass_through:
            try:
                with open(path, "rb") as f:
                    return pack(header, f.read()), ""
            except OSError as e:
                return None, f"cannot read {path}: {e.strerror}"
        img = cv2.imread(path, self.color)
        if img is None:
            reason = "no such file" if not os.path.exists(path) else "not an image OpenCV can read"
            return None, f"cannot read {path}: {reason}"
        if self.center_crop:
            img = center_square(img)
        if self.resize:
            img = resize_short_edge(img, self.resize)
        try:
            return pack_img(header, img, quality=self.quality, img_fmt=self.encoding), ""
        except (ValueError, cv2.error) as e:
            return None, f"cannot encode {path}: {str(e).strip().splitlines()[-1]}"


def center_square(img):
    """The centred square of side min(h, w); the margin on the long side is (long - short) // 2."""
    side = min(img.shape[:2])
    return cut(img, crop_box(*img.shape[:2], side, side, None))


def resize_short_edge(img, size: int):
    """Resize (bilinear, up or down) so that the short edge is `size`:
    h > w gives (w, h) = (size, h * size // w), else (w * size // h, size)."""
    h, w = img.shape[:2]
    new_size = (size, h * size // w) if h > w else (w * size // h, size)
    return cv2.resize(img, new_size)


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """fn over items on `workers` threads (OpenCV releases the GIL), results in input order, a bounded
    number in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 8 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def pack_list(lst_path: str, working_dir: str, args: argparse.Namespace) -> tuple[int, int]:
    """Pack the images of one .lst into '<name>.rec' + '<name>.idx' in working_dir; (packed, skipped)."""
    items, problems = read_list(lst_path)
    for message in problems:
        print(f"warning: {message}", file=sys.stderr)
    name = os.path.splitext(os.path.basename(lst_path))[0]
    rec_path, idx_path = os.path.join(working_dir, name + ".rec"), os.path.join(working_dir, name + ".idx")
    print(f"Creating .rec file from {lst_path} in {working_dir}")
    packed = skipped = 0
    start = time.time()
    with IndexedRecordWriter(idx_path, rec_path) as writer, \
            tqdm(total=len(items), unit="img", disable=None, desc=name) as bar:
        for item, (payload, reason) in zip(items, ordered_map(Encoder(args), items, args.num_thread)):
            if payload is None:
                skipped += 1
                bar.write(f"warning: {lst_path}: skipped image {item.index} ({reason})", file=sys.stderr)
            else:
                writer.write_idx(item.index, payload)
                packed += 1
            bar.update()
    seconds = time.time() - start
    print(f"{rec_path}: {packed} images packed, {skipped} skipped (unreadable), "
          f"{len(problems)} bad list lines, {seconds:.1f} s, {packed / max(seconds, 1e-9):.0f} images/sec")
    return packed, skipped


def find_lists(prefix: str) -> tuple[str, list[str]]:
    """(working folder, the .lst files in it whose path starts with prefix), as MXNet's im2rec."""
    working_dir = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    names = sorted(os.listdir(working_dir)) if os.path.isdir(working_dir) else []
    paths = [os.path.join(working_dir, n) for n in names]
    return working_dir, [p for p in paths
                         if p.startswith(prefix) and p.endswith(".lst") and os.path.isfile(p)]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Create an image list or make a record database by reading from an image list",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, add_help=add_help)
    parser.add_argument("prefix", help="prefix of input/output lst and rec files.")
    parser.add_argument("root", help="path to folder containing images.")
    lists = parser.add_argument_group("Options for creating image lists")
    lists.add_argument("--list", action="store_true",
                       help="create image list(s) by traversing root and write <prefix>.lst; otherwise read "
                            "the lists starting with <prefix> and write <list>.rec and <list>.idx")
    lists.add_argument("--exts", nargs="+", default=[".jpeg", ".jpg", ".png"],
                       help="list of acceptable image extensions.")
    lists.add_argument("--chunks", type=int, default=1, help="number of chunks.")
    lists.add_argument("--train-ratio", type=float, default=1.0, help="Ratio of images to use for training.")
    lists.add_argument("--test-ratio", type=float, default=0, help="Ratio of images to use for testing.")
    lists.add_argument("--recursive", action="store_true",
                       help="recursively walk through subdirs and assign an unique label to images in each "
                            "folder (and write synset.txt beside the lists: line i is the folder of label i). "
                            "Otherwise only include images in the root folder and give them label 0.")
    lists.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                       help="do not randomize the image order in <prefix>.lst")
    records = parser.add_argument_group("Options for creating database")
    records.add_argument("--pass-through", action="store_true",
                         help="whether to skip transformation and save image as is")
    records.add_argument("--resize", type=int, default=0,
                         help="resize the shorter edge of image to the newsize, original images will be "
                              "packed by default.")
    records.add_argument("--center-crop", action="store_true",
                         help="specify whether to crop the center image to make it rectangular.")
    records.add_argument("--quality", type=int, default=95,
                         help="JPEG quality for encoding, 1-100; or PNG compression for encoding, 0-9 "
                              "(larger values act as 9, as in MXNet: the default means 9 for .png)")
    records.add_argument("--num-thread", type=int, default=1,
                         help="number of threads to use for encoding; records keep the list order")
    records.add_argument("--color", type=int, default=1, choices=[-1, 0, 1],
                         help="1: colour (any transparency is dropped); 0: grayscale; -1: as stored, alpha "
                              "channel included")
    records.add_argument("--encoding", type=str, default=".jpg", choices=[".jpg", ".png"],
                         help="specify the encoding of the images.")
    records.add_argument("--pack-label", action="store_true",
                         help="pack every label column of the list into the record, not only the first "
                              "(multi-label: class numbers padded with -1; train with --label-width N)")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not os.path.isdir(args.root):
        parser.error(f"root {args.root} is not a folder")
    if args.list and not os.path.isdir(os.path.dirname(os.path.abspath(args.prefix))):
        parser.error(f"the folder of prefix {args.prefix} does not exist")
    if args.chunks < 1:
        parser.error("--chunks must be at least 1")
    ratios = (args.train_ratio, args.test_ratio)
    if not (min(ratios) >= 0 and sum(ratios) <= 1):
        parser.error("--train-ratio and --test-ratio must lie in [0, 1] and add up to at most 1")
    if args.num_thread < 1:
        parser.error("--num-thread must be at least 1")
    if args.resize < 0:
        parser.error("--resize must be a positive edge length (0: keep the size)")
    if args.encoding == ".jpg" and not 0 <= args.quality <= 100:
        parser.error(f"--quality {args.quality} is outside 0-100 for .jpg")
    if args.quality < 0:
        parser.error(f"--quality {args.quality} must not be negative")


def main(args: argparse.Namespace) -> int:
    """List or pack as the options say; returns the number of images skipped (or listed)."""
    args.prefix, args.root = os.path.abspath(args.prefix), os.path.abspath(args.root)
    if args.list:
        make_lists(args)
        return 0
    working_dir, lists = find_lists(args.prefix)
    if not lists:
        raise SystemExit(f"im2rec: error: no .lst file starting with {args.prefix} "
                         "(create one with --list)")
    total_skipped = 0
    for lst_path in lists:
        total_skipped += pack_list(lst_path, working_dir, args)[1]
    return total_skipped


if __name__ == "__main__":
    parser = get_args_parser()
    arguments = parser.parse_args()
    check_args(parser, arguments)
    main(arguments)
