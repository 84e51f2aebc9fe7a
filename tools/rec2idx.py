"""Rebuild the index (.idx) of a RecordIO file, as MXNet's tools/rec2idx.py: keys 0, 1, 2, ... in file order.

    python tools/rec2idx.py data/train.rec            # writes data/train.idx
    python tools/rec2idx.py data/train.rec other.idx
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.recordio import RecordIOError, RecordReader, write_index  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Create an index file from a .rec file", add_help=add_help)
    parser.add_argument("record", help="path to the .rec file")
    parser.add_argument("index", nargs="?", help="path of the index file to write (default: the .rec's "
                                                 "name with .idx)")
    return parser


def main(args: argparse.Namespace) -> int:
    """Write the index; returns the number of records."""
    index_path = args.index or os.path.splitext(args.record)[0] + ".idx"
    with RecordReader(args.record) as reader:
        offsets = reader.scan_offsets()
    write_index(index_path, dict(enumerate(offsets)))
    print(f"Wrote {index_path}: {len(offsets)} records")
    return len(offsets)


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except RecordIOError as e:
        raise SystemExit(f"rec2idx: error: {e}") from None
