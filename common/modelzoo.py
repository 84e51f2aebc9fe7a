"""The pre-trained ImageNet models MXNet's example publishes, fetched by name into a cache folder.

    prefix, epoch = download_model("imagenet1k-resnet-50", "model/")   # -> ("model/imagenet1k-resnet-50", 0)

Files are saved as MXNet's `common/modelzoo.py` saves them (`<name>-symbol.json`, `<name>-0000.params`),
so a folder filled by MXNet works as it is. The size and sha256 of each file are recorded in
`<model-dir>/checksums.json` when it is first seen; a file that later differs from its record is refused
(delete it to fetch it again). Without network access the error names the URL and where to put the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from common.checkpoint import atomic_write
from common.cli import UserError
from common.download import download, file_digest

MIRRORS = ("http://data.mxnet.io/models/", "http://data.mxnet.io.s3-website-us-west-1.amazonaws.com/models/")
CHECKSUMS = "checksums.json"


class ModelZooError(UserError):
    """A zoo model that cannot be had (unknown, offline, or changed on disk); the message says what to do."""


@dataclass(frozen=True)
class ZooModel:
    symbol: str               # paths under the mirrors' base URL
    params: str
    synset: str | None        # class names, one `wnid name` per line
    top1: float | None        # single centre-crop accuracy MXNet published
    top5: float | None = None
    rgb_mean: str = "0,0,0"   # what score.py needs: ResNets normalise inside (bn_data), Inception-BN does not


_IMAGENET1K = "imagenet/synset.txt"
_IMAGENET11K = "imagenet-11k/synset.txt"
MODELS = {
    "imagenet1k-inception-bn": ZooModel("imagenet/inception-bn/Inception-BN-symbol.json",
                                        "imagenet/inception-bn/Inception-BN-0126.params", _IMAGENET1K,
                                        0.7245, 0.9079, rgb_mean="123.68,116.779,103.939"),
    **{f"imagenet1k-resnet-{n}": ZooModel(f"imagenet/resnet/{n}-layers/resnet-{n}-symbol.json",
                                          f"imagenet/resnet/{n}-layers/resnet-{n}-0000.params", _IMAGENET1K,
                                          top1, top5)
       for n, top1, top5 in ((18, 0.6858, 0.8866), (34, 0.7244, 0.9097), (50, 0.7527, 0.9258),
                             (101, 0.7684, 0.9327), (152, 0.7653, 0.9312))},
    **{f"imagenet1k-resnext-{n}": ZooModel(f"imagenet/resnext/{n.split('-')[0]}-layers/resnext-{n}-symbol.json",
                                           f"imagenet/resnext/{n.split('-')[0]}-layers/resnext-{n}-0000.params",
                                           _IMAGENET1K, None)
       for n in ("50", "101", "101-64x4d")},
    "imagenet11k-resnet-152": ZooModel("imagenet-11k/resnet-152/resnet-152-symbol.json",
                                       "imagenet-11k/resnet-152/resnet-152-0000.params", _IMAGENET11K, 0.4157),
    **{f"imagenet11k-place365ch-resnet-{n}": ZooModel(f"imagenet-11k-place365-ch/resnet-{n}-symbol.json",
                                                      f"imagenet-11k-place365-ch/resnet-{n}-0000.params", None, top1)
       for n, top1 in ((50, 0.3112), (152, 0.3355))},
}


def urls(path: str) -> list[str]:
    return [mirror + path for mirror in MIRRORS]


def download_model(name: str, model_dir: str = "model/") -> tuple[str, int]:
    """Fetch zoo model `name` into `model_dir` (once) and return its checkpoint (prefix, epoch).
    Raises ModelZooError for an unknown name and for a file that has changed, DownloadError for one that cannot be had."""
    if name not in MODELS:
        raise ModelZooError(f"'{name}' is not in the model zoo; known models: {', '.join(MODELS)}")
    model = MODELS[name]
    prefix = os.path.join(model_dir, name)
    fetch_checked(urls(model.symbol), f"{prefix}-symbol.json")
    fetch_checked(urls(model.params), f"{prefix}-0000.params")
    return prefix, 0


def download_synset(name: str, model_dir: str = "model/") -> str | None:
    """Fetch the class names of zoo model `name` as `<model_dir>/<name>-synset.txt`; None if it has none."""
    synset = MODELS[name].synset
    if synset is None:
        return None
    return fetch_checked(urls(synset), os.path.join(model_dir, f"{name}-synset.txt"))


def fetch_checked(sources: list[str], path: str) -> str:
    """Download `path` unless it is there, then check it against the record in its folder's checksums.json
    (made on first sight). Returns `path`."""
    if not os.path.exists(path):
        download(sources, path)
    records_path = os.path.join(os.path.dirname(path) or ".", CHECKSUMS)
    records = _read_records(records_path)
    name = os.path.basename(path)
    stat = os.stat(path)
    record = records.get(name)
    if record is None:
        records[name] = {"size": stat.st_size, "sha256": file_digest(path), "mtime_ns": stat.st_mtime_ns,
                         "url": sources[0]}
        atomic_write(records_path, lambda f: f.write(json.dumps(records, indent=2, sort_keys=True).encode()))
        return path
    if (stat.st_size, stat.st_mtime_ns) == (record["size"], record["mtime_ns"]):
        return path  # untouched since it was hashed
    if stat.st_size != record["size"] or file_digest(path) != record["sha256"]:
        raise ModelZooError(f"{path} has changed since it was downloaded (recorded size {record['size']}, sha256 "
                            f"{record['sha256']}); delete it to download it again")
    record["mtime_ns"] = stat.st_mtime_ns  # same bytes, touched: remember the new time
    atomic_write(records_path, lambda f: f.write(json.dumps(records, indent=2, sort_keys=True).encode()))
    return path


def _read_records(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelZooError(f"{path} is not valid JSON ({e}); delete it to record the files again") from None


def resolve(model: str, epoch: int | None, model_dir: str = "model/", epoch_option: str = "--load-epoch"
            ) -> tuple[str, int]:
    """`--model`/`--pretrained-model` as the scripts take it: a zoo name (downloaded) or a checkpoint prefix
    with the epoch `epoch_option` gave. Returns (prefix, epoch)."""
    if model in MODELS:
        return download_model(model, model_dir)
    if epoch is None:
        raise ModelZooError(f"'{model}' is not a zoo model ({', '.join(MODELS)}); for a checkpoint prefix, "
                            f"give {epoch_option} too")
    return model, epoch
