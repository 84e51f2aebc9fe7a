import struct

import numpy as np
import pytest

from common import mxnet_params

# docs/formats.md section 6.2: {'arg:w': float32 [[1,2,3],[4,5,6]], 'aux:m': int32 [7]}, as MXNet writes it.
EXAMPLE = bytes.fromhex(
    "1201000000000000" "0000000000000000" "0200000000000000"
    "c9fa93f9" "00000000" "02000000" "0200000000000000" "0300000000000000" "01000000" "00000000" "00000000"
    "0000803f" "00000040" "00004040" "00008040" "0000a040" "0000c040"
    "c9fa93f9" "00000000" "01000000" "0100000000000000" "01000000" "00000000" "04000000" "07000000"
    "0200000000000000" "0500000000000000" + "arg:w".encode().hex() + "0500000000000000" + "aux:m".encode().hex())


def test_reads_mxnet_example():
    arrays = mxnet_params.loads(EXAMPLE)
    assert list(arrays) == ["arg:w", "aux:m"]
    np.testing.assert_array_equal(arrays["arg:w"], np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    assert arrays["aux:m"].dtype == np.int32 and arrays["aux:m"].tolist() == [7]


def test_writes_mxnet_example_byte_for_byte():
    assert len(EXAMPLE) == 158
    out = mxnet_params.dumps({"arg:w": np.array([[1, 2, 3], [4, 5, 6]], np.float32),
                              "aux:m": np.array([7], np.int32)})
    assert out == EXAMPLE


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool"])
def test_round_trip_dtypes(dtype):
    a = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    back = mxnet_params.loads(mxnet_params.dumps({"arg:x": a}))["arg:x"]
    assert back.dtype == a.dtype and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def test_bfloat16_widened_exactly():
    values = np.array([1.0, -2.5, 3.140625], np.float32)  # exactly representable in bfloat16
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")
    blob = (struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iii", 0xF993FAC9, 0, 1) + struct.pack("<q", 3)
            + struct.pack("<iii", 1, 0, 12) + bf16.tobytes() + struct.pack("<QQ", 1, 5) + b"arg:b")
    np.testing.assert_array_equal(mxnet_params.loads(blob)["arg:b"], values)


def test_truncated_file_is_clear_error():
    with pytest.raises(mxnet_params.ParamsFormatError, match=r"truncated at byte \d+"):
        mxnet_params.loads(EXAMPLE[:100], "cut.params")


def test_wrong_magic_is_clear_error():
    with pytest.raises(mxnet_params.ParamsFormatError, match="not an MXNet .params file"):
        mxnet_params.loads(b"\x00" * 32, "x.params")


def array_list(shape: tuple[int, ...], data: bytes = b"") -> bytes:
    """An NDArray list of one float32 array `shape` named arg:w, followed by `data` as its bytes."""
    return (struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iii", 0xF993FAC9, 0, len(shape))
            + struct.pack(f"<{len(shape)}q", *shape) + struct.pack("<iii", 1, 0, 0) + data
            + struct.pack("<QQ", 1, 5) + b"arg:w")


@pytest.mark.parametrize("shape, message", [
    ((-12, 4), r"array 0 at byte 24 has shape \(-12, 4\), with a negative dimension"),
    ((2**62, 4), r"array 0 data: its shape \(4611686018427387904, 4\) of float32 needs 73786976294838206464 bytes"),
    ((3, 4), r"array 0 data: its shape \(3, 4\) of float32 needs 48 bytes, the file has 24 left"),
])
def test_damaged_or_hostile_shapes_are_refused_before_allocating(shape, message):
    with pytest.raises(mxnet_params.ParamsFormatError, match=message):
        mxnet_params.loads(array_list(shape, b"\0" * 3), "bad-0001.params")
