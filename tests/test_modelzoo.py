"""The model zoo: names and addresses, the offline error, checksums recorded at first sight."""
import json
import os

import pytest

from common import modelzoo
from conftest import run_script


def test_every_seed_model_is_listed_with_its_mxnet_address():
    expected = {"imagenet1k-inception-bn", "imagenet11k-resnet-152", "imagenet11k-place365ch-resnet-50",
                "imagenet11k-place365ch-resnet-152", "imagenet1k-resnext-50", "imagenet1k-resnext-101",
                "imagenet1k-resnext-101-64x4d", *(f"imagenet1k-resnet-{n}" for n in (18, 34, 50, 101, 152))}
    assert set(modelzoo.MODELS) == expected
    assert modelzoo.urls(modelzoo.MODELS["imagenet1k-resnet-50"].params)[0] == \
        "http://data.mxnet.io/models/imagenet/resnet/50-layers/resnet-50-0000.params"
    assert modelzoo.MODELS["imagenet1k-inception-bn"].params.endswith("Inception-BN-0126.params")


def test_offline_error_names_the_url_and_the_path(tmp_path):
    done = run_script("score.py", "--model", "imagenet1k-resnet-18", "--data-val", "val.rec",
                      "--model-dir", str(tmp_path))  # run_script sends downloads to a closed port
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "http://data.mxnet.io/models/imagenet/resnet/18-layers/resnet-18-symbol.json" in done.stderr
    assert os.path.join(str(tmp_path), "imagenet1k-resnet-18-symbol.json") in done.stderr


def test_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(modelzoo.ModelZooError, match="known models: imagenet1k-inception-bn"):
        modelzoo.download_model("imagenet1k-alexnet", str(tmp_path))


def test_files_are_recorded_and_a_changed_file_is_refused(tmp_path):
    """Files put by hand (as the offline message says) are recorded on first use, then checked."""
    prefix = tmp_path / "imagenet1k-resnet-18"
    (tmp_path / "imagenet1k-resnet-18-symbol.json").write_text("{}")
    params = tmp_path / "imagenet1k-resnet-18-0000.params"
    params.write_bytes(b"weights")
    assert modelzoo.download_model("imagenet1k-resnet-18", str(tmp_path)) == (str(prefix), 0)
    records = json.loads((tmp_path / "checksums.json").read_text())
    assert records["imagenet1k-resnet-18-0000.params"]["size"] == 7

    os.utime(params)  # touched, same bytes: still fine
    modelzoo.download_model("imagenet1k-resnet-18", str(tmp_path))
    params.write_bytes(b"WEIGHTS")  # same size, other bytes
    os.utime(params, ns=(10**18, 10**18))  # a new time, even on file systems with coarse timestamps
    with pytest.raises(modelzoo.ModelZooError, match="has changed since it was downloaded"):
        modelzoo.download_model("imagenet1k-resnet-18", str(tmp_path))
