"""Shared test helpers: paths, small generated MNIST files, running scripts as a user would; and the rule
that nothing is skipped under CI.

Under CI (the environment variable CI=true, as `.ci/run` runs) a test that skips fails instead: CI has
requirements-dev.txt's optional packages, sshd and the real data sets, so a skip there would hide a test
that never ran. Only tests that need a GPU (a skip reason naming a GPU or CUDA) may still skip. Every run
ends with a "skipped tests" section that lists each skip and its reason.
"""
import gzip
import os
import re
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


# --- nothing skipped under CI

IN_CI = os.environ.get("CI") == "true"
# what CI machines may lack, so that a test needing it may skip there too
MAY_SKIP_IN_CI = re.compile(r"\b(GPUs?|CUDA)\b", re.IGNORECASE)
_skips: list[tuple[str, str]] = []  # (test, reason) of the skips this run let through
_refused: list[tuple[str, str]] = []  # (test, reason) of the skips that failed under CI


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _refuse_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):  # an xfail reports as skipped: not ours
        return
    reason = _skip_reason(report)
    if IN_CI and not MAY_SKIP_IN_CI.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true, where only tests that need a GPU may skip: {reason} "
                           "(.ci/run installs requirements-dev.txt and sshd, and sets IMAGECLS_DATASETS)")
        _refused.append((report.nodeid, reason))
    else:
        _skips.append((report.nodeid, reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _refuse_skip_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _refuse_skip_in_ci(report)  # a module that skips as a whole
    return report


def pytest_terminal_summary(terminalreporter):
    terminalreporter.section("skipped tests (under CI=true a skip fails, unless the test needs a GPU)")
    for test, reason in _skips:
        terminalreporter.line(f"SKIPPED {test}: {reason}")
    for test, reason in _refused:
        terminalreporter.line(f"FAILED for skipping under CI=true: {test}: {reason}")
    if not _skips and not _refused:
        terminalreporter.line("no test was skipped")
