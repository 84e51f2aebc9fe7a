"""Importing MXNet 1.9.1's own checkpoints computes MXNet's own logits, for every family the importer detects.

The fixtures in tests/data/mxnet-import were written once under MXNet by checks/make_import_fixtures.py (see
the README there): MXNet's `-symbol.json` files, MXNet's `.params` file of the CIFAR ResNet-8, and for the
others the recipe of their weights, which is rebuilt here with common/mxnet_params.py and must come out as
MXNet's bytes (crc32 and size); MXNet's logits on the recipe's input. Each network is loaded with
`load_model` as a user's checkpoint would be, must be recognised as what it is, and must compute MXNet's
logits within 1e-4 of their largest magnitude.
"""
import gzip
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch

from checks.make_import_fixtures import crc32, recipe_array, recipe_input
from common import checkpoint, mxnet_params
from common.mxnet_import import load_model

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mxnet-import")
with open(os.path.join(FIXTURES, "manifest.json")) as f:
    MANIFEST = json.load(f)
with gzip.open(os.path.join(FIXTURES, MANIFEST["arrays"]), "rt") as f:
    ARRAYS = json.load(f)
TOLERANCE = 1e-4  # max |ours - MXNet| / max |MXNet|


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batch-1 forward passes gain little from a second thread, and lose much when another process holds the
    other core (threads spin waiting for each other): 14 s instead of 42 s on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_symbol(prefix: str, entry: dict) -> None:
    with gzip.open(os.path.join(FIXTURES, entry["symbol"]["file"])) as f:
        symbol = f.read()
    assert (len(symbol), crc32(symbol)) == (entry["symbol"]["bytes"], entry["symbol"]["crc32"])
    with open(checkpoint.symbol_path(prefix), "wb") as f:
        f.write(symbol)


def write_params(prefix: str, label: str, entry: dict) -> None:
    """MXNet's .params file: the committed one, or one rebuilt from the recipe in MXNet's order (the same
    bytes)."""
    path = checkpoint.params_path(prefix, MANIFEST["epoch"])
    want = (entry["params"]["bytes"], entry["params"]["crc32"])
    if entry["params"]["file"]:
        shutil.copyfile(os.path.join(FIXTURES, entry["params"]["file"]), path)
        with open(path, "rb") as f:
            data = f.read()
        assert (len(data), crc32(data)) == want, f"{entry['params']['file']} is not the file MXNet wrote"
        return
    arrays = {}
    for line in ARRAYS[label]:
        key, shape = re.fullmatch(r"(\S+) \(([\d, ]*)\)", line).groups()
        arrays[key] = recipe_array(key.split(":", 1)[1], tuple(int(d) for d in shape.split(",") if d.strip()))
    data = mxnet_params.dumps(arrays)
    del arrays
    assert (len(data), crc32(data)) == want, f"{label}: the recipe's .params differ from those MXNet wrote"
    with open(path, "wb") as f:
        f.write(data)
    del data  # up to half a gigabyte (VGG)


@pytest.mark.parametrize("label", list(MANIFEST["networks"]))
def test_import_computes_mxnet_logits(label, tmp_path):
    entry = MANIFEST["networks"][label]
    prefix = str(tmp_path / label)
    write_symbol(prefix, entry)
    write_params(prefix, label, entry)

    try:
        model, info = load_model(prefix, MANIFEST["epoch"])
    finally:  # up to half a gigabyte, which pytest would keep in its last three temporary folders
        os.remove(checkpoint.params_path(prefix, MANIFEST["epoch"]))
    assert (info.network, info.num_classes) == (entry["expect"]["network"], MANIFEST["num_classes"])
    assert info.kwargs == entry["expect"]["kwargs"]

    images = recipe_input(label, entry["input_shape"])
    assert crc32(images) == entry["input_crc32"], f"{label}: the recipe's input differs from MXNet's"
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(images)).numpy()
    theirs = np.array(entry["logits"], np.float32)
    assert ours.shape == theirs.shape
    diff, scale = float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())
    print(f"{label}: max |ours - MXNet| {diff:.3g}, max |MXNet| {scale:.4g}, ratio {diff / scale:.3g}")
    assert diff <= TOLERANCE * scale, (f"{label}: max |ours - MXNet| = {diff:.3g}, over {TOLERANCE:g} x "
                                       f"max |MXNet| = {TOLERANCE * scale:.3g}")
