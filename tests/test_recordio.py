"""RecordIO against the bytes MXNet writes (docs/formats.md sections 1-3), and every malformed-file error."""
import os
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

from common.recordio import (MAGIC_BYTES, IndexedRecordReader, IndexedRecordWriter, IRHeader, RecordIOError,
                             RecordReader, RecordWriter, pack, pack_img, read_index, unpack, unpack_img)

# docs/formats.md section 1: payload "AAAA" + magic + "BBBBBB", as MXNet writes it.
ESCAPED_PAYLOAD = b"AAAA" + MAGIC_BYTES + b"BBBBBB"
ESCAPED_RECORD = bytes.fromhex("0A23D7CE 04000020 41414141 0A23D7CE 06000060 424242424242 0000")
# docs/formats.md section 3: label 3.0, id 7, image bytes "XY".
IMAGE_PAYLOAD = bytes.fromhex("00000000 00004040 0700000000000000 0000000000000000 5859")


def write_records(path, payloads):
    with RecordWriter(str(path)) as writer:
        return [writer.write(p) for p in payloads]


def test_escaped_magic_is_written_as_mxnet_does(tmp_path):
    write_records(tmp_path / "a.rec", [ESCAPED_PAYLOAD])
    assert (tmp_path / "a.rec").read_bytes() == ESCAPED_RECORD


def test_mxnet_escaped_record_reads_back(tmp_path):
    (tmp_path / "a.rec").write_bytes(ESCAPED_RECORD)
    assert list(RecordReader(str(tmp_path / "a.rec"))) == [ESCAPED_PAYLOAD]


def test_plain_record_layout(tmp_path):
    write_records(tmp_path / "a.rec", [b"hello"])
    assert (tmp_path / "a.rec").read_bytes() == bytes.fromhex("0A23D7CE 05000000") + b"hello\0\0\0"


@pytest.mark.parametrize("payload", [
    b"", b"x", b"abcd", b"abcdefg",
    MAGIC_BYTES,                                  # magic only: two empty parts
    MAGIC_BYTES + b"tail",                        # magic at offset 0
    b"head" + MAGIC_BYTES,                        # magic at the end
    b"a" + MAGIC_BYTES + b"bcd",                  # unaligned: stays in the payload
    MAGIC_BYTES * 3 + b"12" + MAGIC_BYTES + b"z",  # several parts, one unaligned magic
])
def test_roundtrip_with_and_without_escaping(tmp_path, payload):
    payloads = [payload, b"next record", payload]
    offsets = write_records(tmp_path / "a.rec", payloads)
    reader = RecordReader(str(tmp_path / "a.rec"))
    assert list(reader) == payloads
    assert [reader.read_at(o) for o in offsets] == payloads
    assert reader.scan_offsets() == offsets
    assert reader.size % 4 == 0


def test_unaligned_magic_gives_one_physical_record(tmp_path):
    write_records(tmp_path / "a.rec", [b"ab" + MAGIC_BYTES + b"cd"])
    raw = (tmp_path / "a.rec").read_bytes()
    assert struct.unpack_from("<I", raw, 4)[0] == 8  # cflag 0, length 8
    assert len(raw) == 16


def test_random_payloads_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    payloads = [rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes() for _ in range(50)]
    for _ in range(20):  # many aligned and unaligned magic words
        payloads.append(bytes(rng.integers(0, 3, 64, dtype=np.uint8)).replace(b"\x01", MAGIC_BYTES))
    write_records(tmp_path / "a.rec", payloads)
    assert list(RecordReader(str(tmp_path / "a.rec"))) == payloads


def test_record_length_limit(tmp_path):
    too_long = np.zeros(2**29, np.uint8)  # never touched, so never really allocated
    with RecordWriter(str(tmp_path / "a.rec")) as writer, pytest.raises(RecordIOError, match=r"2\*\*29"):
        writer.write(too_long)


def test_index_written_like_mxnet_and_read_by_key(tmp_path):
    idx, rec = str(tmp_path / "a.idx"), str(tmp_path / "a.rec")
    with IndexedRecordWriter(idx, rec) as writer:
        for key, payload in [(394, b"first"), (7, ESCAPED_PAYLOAD), (1145, b"")]:
            writer.write_idx(key, payload)
    assert (tmp_path / "a.idx").read_text() == "394\t0\n7\t16\n1145\t44\n"
    reader = IndexedRecordReader(idx, rec)
    assert reader.keys == [394, 7, 1145]
    assert reader.read_idx(7) == ESCAPED_PAYLOAD
    assert reader.read_idx(1145) == b""
    with pytest.raises(RecordIOError, match="key 8"):
        reader.read_idx(8)


def test_reading_without_index_scans_the_file(tmp_path):
    rec = str(tmp_path / "a.rec")
    offsets = write_records(rec, [b"a", ESCAPED_PAYLOAD, b"ccc"])
    reader = IndexedRecordReader(None, rec)
    assert reader.index == {0: offsets[0], 1: offsets[1], 2: offsets[2]}
    assert reader.read_idx(1) == ESCAPED_PAYLOAD


# --- errors name the file and the byte offset ----------------------------------------------------------

def test_wrong_magic(tmp_path):
    rec = tmp_path / "a.rec"
    write_records(rec, [b"abcd", b"efgh"])
    raw = bytearray(rec.read_bytes())
    raw[12:16] = b"JUNK"
    rec.write_bytes(bytes(raw))
    reader = RecordReader(str(rec))
    with pytest.raises(RecordIOError, match=rf"{rec}: byte 12: expected the record magic"):
        list(reader)
    with pytest.raises(RecordIOError, match="byte 12"):
        reader.scan_offsets()


def test_wrong_offset_is_a_wrong_magic(tmp_path):
    write_records(tmp_path / "a.rec", [b"abcdefgh"])
    with pytest.raises(RecordIOError, match="byte 4: expected the record magic"):
        RecordReader(str(tmp_path / "a.rec")).read_at(4)


@pytest.mark.parametrize("keep, what", [(3, "record header is truncated"),
                                        (14, "record of 8 bytes is truncated")])
def test_truncated_record(tmp_path, keep, what):
    rec = tmp_path / "a.rec"
    write_records(rec, [b"abcdefgh"])
    rec.write_bytes(rec.read_bytes()[:keep])
    with pytest.raises(RecordIOError, match=rf"{rec}: byte \d+: {what}"):
        list(RecordReader(str(rec)))
    with pytest.raises(RecordIOError, match="truncated"):
        RecordReader(str(rec)).scan_offsets()


def test_missing_continuation_part(tmp_path):
    rec = tmp_path / "a.rec"
    write_records(rec, [ESCAPED_PAYLOAD])
    rec.write_bytes(rec.read_bytes()[:12])  # first part (cflag 1) only
    with pytest.raises(RecordIOError, match="truncated"):
        list(RecordReader(str(rec)))


def test_stray_continuation_part(tmp_path):
    rec = tmp_path / "a.rec"
    rec.write_bytes(ESCAPED_RECORD[12:])  # the last part (cflag 3) alone
    with pytest.raises(RecordIOError, match="byte 0: record part with cflag 3"):
        list(RecordReader(str(rec)))


def test_index_past_the_end(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    write_records(rec, [b"abcd"])
    idx.write_text("0\t0\n1\t4096\n")
    with pytest.raises(RecordIOError, match=rf"{idx}: line 2: key 1 points to byte 4096, past the end"):
        IndexedRecordReader(str(idx), str(rec))


def test_malformed_index_line(tmp_path):
    idx = tmp_path / "a.idx"
    idx.write_text("0\t0\nnonsense\n")
    with pytest.raises(RecordIOError, match=rf"{idx}: line 2"):
        read_index(str(idx))


def test_duplicate_index_key_is_an_error_naming_both_lines(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    offsets = write_records(rec, [b"one", b"two", b"three"])
    idx.write_text(f"5\t{offsets[0]}\n\n6\t{offsets[1]}\n5\t{offsets[2]}\n")  # key 5 twice: a record lost
    message = rf"{idx}: line 4: key 5 appears a second time \(first on line 1\)"
    with pytest.raises(RecordIOError, match=message):
        read_index(str(idx))
    with pytest.raises(RecordIOError, match=message):
        IndexedRecordReader(str(idx), str(rec))


def test_missing_files(tmp_path):
    with pytest.raises(RecordIOError, match="file not found"):
        RecordReader(str(tmp_path / "none.rec"))
    write_records(tmp_path / "a.rec", [b"x"])
    with pytest.raises(RecordIOError, match="none.idx: file not found"):
        IndexedRecordReader(str(tmp_path / "none.idx"), str(tmp_path / "a.rec"))


# --- image record header -------------------------------------------------------------------------------

def test_irheader_matches_mxnet_bytes():
    assert pack(IRHeader(0, 3.0, 7, 0), b"XY") == IMAGE_PAYLOAD
    header, data = unpack(IMAGE_PAYLOAD)
    assert header == IRHeader(0, 3.0, 7, 0) and data == b"XY"


def test_multi_label_header():
    payload = pack(IRHeader(0, [1.5, 2.0, -3.0], 42, 0), b"img")
    flag, label, id_, id2 = struct.unpack_from("<IfQQ", payload)
    assert (flag, label, id_, id2) == (3, 0.0, 42, 0)
    assert np.frombuffer(payload, "<f4", 3, 24).tolist() == [1.5, 2.0, -3.0]
    header, data = unpack(payload)
    assert header.flag == 3 and header.label.tolist() == [1.5, 2.0, -3.0] and data == b"img"


def test_short_payload_is_an_error():
    with pytest.raises(RecordIOError, match="shorter than the 24-byte image header"):
        unpack(b"abc")
    with pytest.raises(RecordIOError, match="too short for its 5 labels"):
        unpack(struct.pack("<IfQQ", 5, 0, 0, 0) + b"1234")


def test_pack_img_uses_opencv_encoding():
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    jpg = pack_img(IRHeader(0, 1.0, 3, 0), img, quality=80, img_fmt=".jpg")
    assert jpg[24:] == cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    png = pack_img(IRHeader(0, 1.0, 3, 0), img, quality=3, img_fmt=".png")
    assert png[24:] == cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])[1].tobytes()
    header, decoded = unpack_img(png)
    assert header == IRHeader(0, 1.0, 3, 0) and np.array_equal(decoded, img)
    assert unpack_img(pack(IRHeader(0, 0.0, 0, 0), b"not an image"))[1] is None
    with pytest.raises(ValueError, match="expected .jpg or .png"):
        pack_img(IRHeader(0, 0.0, 0, 0), img, img_fmt=".bmp")


# --- tools/rec2idx.py ----------------------------------------------------------------------------------

def rec2idx(*argv):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "rec2idx.py")
    return subprocess.run([sys.executable, script, *map(str, argv)], capture_output=True, text=True)


def test_rec2idx_rebuilds_the_index(tmp_path):
    idx, rec = tmp_path / "a.idx", tmp_path / "a.rec"
    with IndexedRecordWriter(str(idx), str(rec)) as writer:
        for key, payload in enumerate([b"a", ESCAPED_PAYLOAD, b"", b"last"]):
            writer.write_idx(key, payload)
    expected = idx.read_text()
    idx.unlink()
    done = rec2idx(rec)
    assert done.returncode == 0 and "4 records" in done.stdout
    assert idx.read_text() == expected
    assert rec2idx(rec, tmp_path / "other.idx").returncode == 0
    assert (tmp_path / "other.idx").read_text() == expected
    rec.write_bytes(rec.read_bytes()[:-3])
    broken = rec2idx(rec)
    assert broken.returncode == 1 and "truncated" in broken.stderr and "Traceback" not in broken.stderr
