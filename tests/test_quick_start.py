"""The README's quick start as a newcomer runs it: a fresh clone, no network, `python train_mnist.py`."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

# Loaded by the interpreter at start-up (sitecustomize on PYTHONPATH): any attempt to reach the network fails.
NO_NETWORK = '''
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access is disabled for this test")

socket.socket.connect = socket.socket.connect_ex = _refuse
socket.getaddrinfo = socket.create_connection = _refuse
'''


def test_quick_start_trains_the_embedded_mnist_offline_on_a_fresh_clone(tmp_path):
    if not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip(f"{ROOT} is not a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", ROOT, str(clone)], check=True)
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    env = dict(os.environ, PYTHONPATH=str(guard), PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, "train_mnist.py", "--num-epochs", "1"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracy = float(re.search(r"Epoch\[0\] Validation-accuracy=([\d.]+)", out.stderr)[1])
    assert accuracy >= 0.95
    assert not os.path.exists(clone / "data" / "train-images-idx3-ubyte.gz")  # nothing was downloaded


def test_the_guard_really_blocks_the_network(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_NETWORK)
    probe = "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)"
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                         capture_output=True, text=True)
    assert out.returncode != 0 and "network access is disabled for this test" in out.stderr


def test_a_damaged_embedded_file_is_a_clear_error(tmp_path, monkeypatch):
    from common import data
    for name in data.MNIST_FILES:
        shutil.copy(os.path.join(data.EMBEDDED_MNIST, name), tmp_path / name)
    raw = bytearray((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    raw[-20] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(raw))
    monkeypatch.setattr(data, "EMBEDDED_MNIST", str(tmp_path))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte.gz: damaged \(sha256 [0-9a-f]{64}, "
                                             r"expected f7ae60f9.*\); restore it \(git checkout -- data/mnist\)"):
        data.load_mnist(None, train=False)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(data.DataError, match="missing from this copy of the repository"):
        data.load_mnist(None, train=False)
