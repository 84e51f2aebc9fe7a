"""Shared test helpers: paths, small generated MNIST files, running scripts as a user would."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from common.datasets import ENV_VAR as DATASETS_VARIABLE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Real data sets: the folder named by $IMAGECLS_DATASETS (common/datasets.py) holds `mnist/` (the four IDX
# gz files), `cifar10/` (class folders of PNGs) and `imagenette-224/val/` (class folders of JPEGs). Tests
# that need one skip without it.
DATASETS = os.path.abspath(os.path.expanduser(os.environ[DATASETS_VARIABLE])) \
    if os.environ.get(DATASETS_VARIABLE) else None


def dataset_path(*parts: str) -> str:
    """`$IMAGECLS_DATASETS/<parts>` ('' when the variable is not set)."""
    return os.path.join(DATASETS, *parts) if DATASETS else ""


def missing_dataset(*parts: str) -> str | None:
    """Why `$IMAGECLS_DATASETS/<parts>` cannot be used (a skip reason), or None when it is there."""
    if DATASETS is None:
        return (f"{DATASETS_VARIABLE} is not set (a folder holding the real data sets mnist/, cifar10/, "
                "imagenette-224/)")
    path = dataset_path(*parts)
    return None if os.path.isdir(path) else f"{path} not found (${DATASETS_VARIABLE}/{'/'.join(parts)})"


def needs_dataset(*parts: str) -> pytest.MarkDecorator:
    """Skip the test unless `$IMAGECLS_DATASETS/<parts>` is a folder."""
    reason = missing_dataset(*parts)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


MNIST = dataset_path("mnist")


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (magic 0x0800 | ndim)."""
    header = struct.pack(">I", 0x800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path):
    """A learnable MNIST look-alike: 10 classes, each a bright bar at its own row, plus noise."""
    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
        return images, labels

    for split, n in (("train", 640), ("t10k", 160)):
        images, labels = make(n)
        write_idx(str(tmp_path / f"{split}-images-idx3-ubyte.gz"), images)
        write_idx(str(tmp_path / f"{split}-labels-idx1-ubyte.gz"), labels)
    return tmp_path


def run_script(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <args>` from the repository root, as a user would, offline."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1",
                    # any download attempt fails at once instead of waiting on the network
                    http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


needs_mnist = needs_dataset("mnist")
