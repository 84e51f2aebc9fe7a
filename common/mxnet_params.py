"""MXNet's NDArray list file (`prefix-NNNN.params`), read and written in pure NumPy.

Layout (all little-endian; see docs/formats.md section 6.2):
list magic 0x112, reserved 0, N arrays, then N names ("arg:<param>" / "aux:<param>").
Reading never executes anything from the file.
"""
from __future__ import annotations

import math
import struct
from typing import BinaryIO

import numpy as np

from common.cli import UserError

LIST_MAGIC = 0x112
ARRAY_MAGIC = 0xF993FAC9
ARRAY_MAGIC_NP_SHAPE = 0xF993FACA  # numpy-shape semantics, same layout

# MXNet type_flag -> numpy dtype. bfloat16 (12) has no numpy dtype: it is read as raw uint16.
TYPE_FLAGS = {
    0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"),
    4: np.dtype("<i4"), 5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?"), 12: np.dtype("<u2"),
}
BFLOAT16 = 12
_FLAG_OF = {dtype: flag for flag, dtype in TYPE_FLAGS.items() if flag != BFLOAT16}  # what the writer accepts


class ParamsFormatError(UserError):
    """The file is not a valid MXNet NDArray list; the message names the file and byte offset."""


class _Reader:
    def __init__(self, buf: bytes, path: str):
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ParamsFormatError(
                f"{self.path}: truncated at byte {self.pos} while reading {what} "
                f"(needs {n} bytes, file has {len(self.buf) - self.pos} left)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def loads(buf: bytes, path: str = "<bytes>") -> dict[str, np.ndarray]:
    """Parse an NDArray list into {name: array}; bfloat16 arrays are widened to float32."""
    r = _Reader(buf, path)
    magic, _reserved = r.unpack("<QQ", "list header")
    if magic != LIST_MAGIC:
        raise ParamsFormatError(f"{path}: not an MXNet .params file (magic 0x{magic:x} at byte 0, expected 0x112)")
    (count,) = r.unpack("<Q", "array count")
    arrays = []
    for i in range(count):
        start = r.pos
        (amagic,) = r.unpack("<I", f"array {i} magic")
        if amagic not in (ARRAY_MAGIC, ARRAY_MAGIC_NP_SHAPE):
            raise ParamsFormatError(f"{path}: bad array magic 0x{amagic:08x} at byte {start} (array {i})")
        (stype,) = r.unpack("<i", f"array {i} storage type")
        if stype != 0:
            raise ParamsFormatError(f"{path}: array {i} at byte {start} is sparse (stype {stype}); not supported")
        (ndim,) = r.unpack("<i", f"array {i} ndim")
        if ndim < 0 or ndim > 32:
            raise ParamsFormatError(f"{path}: array {i} at byte {start} has ndim {ndim}")
        shape = r.unpack(f"<{ndim}q", f"array {i} shape") if ndim else ()
        if any(d < 0 for d in shape):
            raise ParamsFormatError(f"{path}: array {i} at byte {start} has shape {shape}, with a negative "
                                    "dimension: the file is damaged")
        if ndim == 0:
            arrays.append(np.zeros((0,), np.float32))
            continue
        r.unpack("<ii", f"array {i} context")
        (flag,) = r.unpack("<i", f"array {i} type flag")
        if flag not in TYPE_FLAGS:
            raise ParamsFormatError(f"{path}: array {i} at byte {start} has unknown type flag {flag}")
        dtype = TYPE_FLAGS[flag]
        size = math.prod(shape) * dtype.itemsize  # Python integers: a hostile shape cannot overflow
        if size > len(r.buf) - r.pos:
            raise ParamsFormatError(f"{path}: truncated at byte {r.pos} while reading array {i} data: its shape "
                                    f"{shape} of {dtype.name} needs {size} bytes, the file has "
                                    f"{len(r.buf) - r.pos} left")
        data = np.frombuffer(r.take(size, f"array {i} data"), dtype=dtype).reshape(shape)
        arrays.append(bf16_to_float32(data) if flag == BFLOAT16 else data.copy())
    (name_count,) = r.unpack("<Q", "name count")
    if name_count not in (0, count):
        raise ParamsFormatError(f"{path}: {count} arrays but {name_count} names")
    names = []
    for i in range(name_count):
        (length,) = r.unpack("<Q", f"name {i} length")
        names.append(r.take(length, f"name {i}").decode("utf-8"))
    if not names:
        names = [str(i) for i in range(count)]
    return dict(zip(names, arrays))


def bf16_to_float32(raw: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (read as uint16) to float32 exactly."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def load(path: str) -> dict[str, np.ndarray]:
    """Read `path` into {name: array}; bfloat16 arrays are widened to float32."""
    with open(path, "rb") as f:
        return loads(f.read(), path)


def dumps(arrays: dict[str, np.ndarray]) -> bytes:
    out = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dtype not in _FLAG_OF:
            raise TypeError(f"{name}: dtype {a.dtype} has no MXNet type flag")
        out.append(struct.pack("<Iii", ARRAY_MAGIC, 0, a.ndim))
        out.append(struct.pack(f"<{a.ndim}q", *a.shape))
        out.append(struct.pack("<iii", 1, 0, _FLAG_OF[dtype]))
        out.append(a.astype(dtype, copy=False).tobytes())
    out.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode("utf-8")
        out.append(struct.pack("<Q", len(encoded)) + encoded)
    return b"".join(out)


def save(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """Write {name: array} to an open binary file (callers handle atomic replacement)."""
    f.write(dumps(arrays))
