"""MXNet RecordIO: `.rec` record files, `.idx` index files and the image record header (IRHeader).

Byte for byte the format of dmlc-core's RecordIO and `mxnet.recordio` (docs/formats.md sections 1-3):

    record  = magic 0xCED7230A | lrec = cflag << 29 | length | payload | zero padding to 4 bytes
    .idx    = "key<TAB>offset<LF>" per record, offset of the record's first magic word
    payload = IRHeader (struct '<IfQQ': flag, label, id, id2) [+ flag float32 labels] + image bytes

A payload that holds the magic word at an offset that is a multiple of 4 is cut there and written as
several physical records (cflag 1 = first, 2 = middle, 3 = last); the reader joins them again.

Every error names the file and the byte offset where the trouble is.
"""
from __future__ import annotations

import numbers
import os
import struct
from typing import Iterator, NamedTuple, Sequence

import cv2
import numpy as np

from common.cli import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_LIMIT = 1 << 29  # a record's length must be below this (29 bits of the length word)
_HEAD = struct.Struct("<II")  # magic, lrec
_IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24


class RecordIOError(DataError):
    """A malformed `.rec` or `.idx` file; the message names the file and the byte offset or line."""


def _padding(length: int) -> int:
    return -length % 4


# --- writing -------------------------------------------------------------------------------------------

class RecordWriter:
    """Writes records to a `.rec` file (truncating it). `write` returns the record's byte offset."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "wb")

    def write(self, payload: bytes) -> int:
        length = len(payload)
        if length >= LENGTH_LIMIT:
            raise RecordIOError(f"{self.path}: a record must be shorter than 2**29 bytes, "
                                f"this one has {length}")
        offset = self._file.tell()
        view = memoryview(payload)
        start = 0  # start of the part not yet written
        cflag = 1
        at = payload.find(MAGIC_BYTES)
        while at != -1:
            if at % 4 == 0:  # only an aligned magic word could be mistaken for a record start
                self._file.write(_HEAD.pack(MAGIC, cflag << 29 | (at - start)))
                self._file.write(view[start:at])
                start, cflag = at + 4, 2
            at = payload.find(MAGIC_BYTES, at + 1)
        last_flag = 3 if start else 0
        self._file.write(_HEAD.pack(MAGIC, last_flag << 29 | (length - start)))
        self._file.write(view[start:])
        self._file.write(b"\0" * _padding(length - start))
        return offset

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IndexedRecordWriter(RecordWriter):
    """Writes a `.rec` file and its `.idx` together: `write_idx(key, payload)` adds "key<TAB>offset"."""

    def __init__(self, idx_path: str, rec_path: str):
        super().__init__(rec_path)
        self.idx_path = idx_path
        self._index = open(idx_path, "w")

    def write_idx(self, key: int, payload: bytes) -> int:
        offset = self.write(payload)
        self._index.write(f"{key}\t{offset}\n")
        return offset

    def close(self) -> None:
        super().close()
        self._index.close()


# --- reading -------------------------------------------------------------------------------------------

class RecordReader:
    """Reads records of a `.rec` file, in order (`read`, iteration) or at a byte offset (`read_at`).

    Positioned reads (`os.pread`) keep `read_at` safe in forked worker processes sharing the descriptor."""

    def __init__(self, path: str):
        self.path = path
        self._fd = -1
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise RecordIOError(f"{path}: file not found") from None
        self.size = os.fstat(self._fd).st_size

    def _read_exact(self, offset: int, count: int, what: str) -> bytes:
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise RecordIOError(f"{self.path}: byte {offset}: {what} is truncated "
                                f"(needs {count} bytes, the file ends at byte {self.size})")
        return data

    def _part(self, offset: int) -> tuple[int, int, int]:
        """(cflag, length, offset of the next physical record) of the physical record at `offset`."""
        magic, lrec = _HEAD.unpack(self._read_exact(offset, 8, "record header"))
        if magic != MAGIC:
            raise RecordIOError(f"{self.path}: byte {offset}: expected the record magic 0x{MAGIC:08X}, "
                                f"found 0x{magic:08X}; not a RecordIO file or a wrong offset")
        length = lrec & (LENGTH_LIMIT - 1)
        return lrec >> 29, length, offset + 8 + length + _padding(length)

    def read_at(self, offset: int) -> bytes:
        """The logical record starting at byte `offset`, its escaped parts joined again."""
        return self._read_record(offset)[0]

    def _read_record(self, offset: int) -> tuple[bytes, int]:
        parts = []
        start = offset
        while True:
            cflag, length, following = self._part(offset)
            expected = (0, 1) if not parts else (2, 3)
            if cflag not in expected:
                raise RecordIOError(f"{self.path}: byte {offset}: record part with cflag {cflag} where "
                                    f"{' or '.join(map(str, expected))} was expected "
                                    f"(record at byte {start})")
            parts.append(self._read_exact(offset + 8, length, f"record of {length} bytes"))
            offset = following
            if cflag in (0, 3):
                return MAGIC_BYTES.join(parts), following

    def record_end(self, offset: int) -> int:
        """Byte offset just after the logical record at `offset`, reading only the part headers."""
        while True:
            cflag, length, following = self._part(offset)
            if following > self.size:
                raise RecordIOError(f"{self.path}: byte {offset}: record of {length} bytes is truncated "
                                    f"(the file ends at byte {self.size})")
            offset = following
            if cflag in (0, 3):
                return offset

    def scan_offsets(self) -> list[int]:
        """Byte offsets of all logical records: an index for a `.rec` file that has no `.idx`."""
        offsets, offset = [], 0
        while offset < self.size:
            offsets.append(offset)
            offset = self.record_end(offset)
        return offsets

    def __iter__(self) -> Iterator[bytes]:
        """Every record in file order."""
        offset = 0
        while offset < self.size:
            record, offset = self._read_record(offset)
            yield record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


def read_index(idx_path: str, rec_size: int | None = None) -> dict[int, int]:
    """{key: byte offset} from a `.idx` file, in file order. With `rec_size`, offsets past the end of the
    `.rec` file are an error; so is a key that appears twice (one of its records would be lost)."""
    index = {}
    try:
        with open(idx_path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                fields = line.split("\t")
                try:
                    key, offset = int(fields[0]), int(fields[1])
                except (ValueError, IndexError):
                    raise RecordIOError(f"{idx_path}: line {number}: expected 'key<TAB>offset', "
                                        f"got {line.rstrip()!r}") from None
                if rec_size is not None and offset + 8 > rec_size:
                    raise RecordIOError(f"{idx_path}: line {number}: key {key} points to byte {offset}, "
                                        f"past the end of the record file ({rec_size} bytes)")
                if key in index:
                    raise RecordIOError(f"{idx_path}: line {number}: key {key} appears a second time (first "
                                        f"on line {_first_line_of(idx_path, key)}); each record needs its own "
                                        "key (tools/rec2idx.py rebuilds the index from the .rec file)")
                index[key] = offset
    except FileNotFoundError:
        raise RecordIOError(f"{idx_path}: file not found") from None
    return index


def _first_line_of(idx_path: str, key: int) -> int:
    """The number of the first line of a `.idx` file that holds `key`; the lines before it must be valid, as
    they are when `read_index` has just read them."""
    with open(idx_path) as f:
        return next(number for number, line in enumerate(f, 1)
                    if line.strip() and int(line.split("\t")[0]) == key)


def write_index(idx_path: str, index: dict[int, int]) -> None:
    with open(idx_path, "w") as f:
        f.writelines(f"{key}\t{offset}\n" for key, offset in index.items())


class IndexedRecordReader(RecordReader):
    """A `.rec` file read by key through its `.idx`; with `idx_path=None` the `.rec` is scanned instead and
    the records get keys 0, 1, 2, ... (as `tools/rec2idx.py` writes them)."""

    def __init__(self, idx_path: str | None, rec_path: str):
        super().__init__(rec_path)
        if idx_path is not None:
            self.index = read_index(idx_path, self.size)
        else:
            self.index = dict(enumerate(self.scan_offsets()))
        self.keys = list(self.index)

    def read_idx(self, key: int) -> bytes:
        try:
            offset = self.index[key]
        except KeyError:
            raise RecordIOError(f"{self.path}: no record with key {key} in its index") from None
        return self.read_at(offset)


# --- image records -------------------------------------------------------------------------------------

class IRHeader(NamedTuple):
    """Header of an image record. `flag` > 0: `label` holds that many float32 labels (an array)."""
    flag: int
    label: float | np.ndarray | Sequence[float]
    id: int
    id2: int


def pack(header: IRHeader, data: bytes) -> bytes:
    """Record payload for `data` (image bytes) behind `header`; a sequence label packs every label
    (flag = their count), a number packs one (flag = 0)."""
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        return struct.pack(_IR_FORMAT, 0, header.label, header.id, header.id2) + data
    labels = np.asarray(header.label, dtype="<f4")
    return struct.pack(_IR_FORMAT, labels.size, 0.0, header.id, header.id2) + labels.tobytes() + data


def unpack(record: bytes) -> tuple[IRHeader, bytes]:
    """(header, image bytes) of a record payload; with flag > 0 the header's label is a float32 array."""
    if len(record) < IR_SIZE:
        raise RecordIOError(f"record of {len(record)} bytes is shorter than the {IR_SIZE}-byte image header")
    header = IRHeader(*struct.unpack_from(_IR_FORMAT, record))
    if header.flag > 0:
        end = IR_SIZE + 4 * header.flag
        if len(record) < end:
            raise RecordIOError(f"record of {len(record)} bytes is too short for its {header.flag} labels")
        header = header._replace(label=np.frombuffer(record, "<f4", header.flag, IR_SIZE))
        return header, record[end:]
    return header, record[IR_SIZE:]


def pack_img(header: IRHeader, img: np.ndarray, quality: int = 95, img_fmt: str = ".jpg") -> bytes:
    """Encode a BGR (or gray) image with OpenCV and pack it; `quality` is the JPEG quality (1-100) or the
    PNG compression level (0-9), as in MXNet."""
    fmt = img_fmt.lower()
    if fmt in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, quality]
    else:
        raise RecordIOError(f"image format {img_fmt!r}: expected .jpg or .png")
    ok, encoded = cv2.imencode(fmt, img, params)
    if not ok:
        raise RecordIOError(f"OpenCV could not encode a {img.shape} {img.dtype} image as {fmt}")
    return pack(header, encoded.tobytes())


def unpack_img(record: bytes, iscolor: int = -1) -> tuple[IRHeader, np.ndarray | None]:
    """(header, decoded image or None when the bytes do not decode); `iscolor` is OpenCV's imread flag."""
    header, data = unpack(record)
    return header, cv2.imdecode(np.frombuffer(data, np.uint8), iscolor)
