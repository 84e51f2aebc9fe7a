"""Writes tests/data/mxnet-import/: MXNet 1.9.1's own checkpoints and logits for every network family that
common/mxnet_import.py detects, which tests/test_mxnet_import_fixtures.py imports without MXNet.

    python -m venv /tmp/mxvenv && /tmp/mxvenv/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxvenv/bin/python checks/make_import_fixtures.py

For each network of NETWORKS, under MXNet: builds the graph of MXNet's example symbols
(checks/mxnet_graphs.py), gives it the weights of the recipe below, runs MXNet's forward pass (inference:
BatchNorm on its moving statistics, no dropout) on the recipe's input, saves the checkpoint with
`mx.model.save_checkpoint` and keeps:

- `<label>-symbol.json.gz`: MXNet's `-symbol.json`, gzipped;
- `<label>-0000.params`: MXNet's `.params` file itself, for the networks small enough to commit (`commit`);
- in `manifest.json`: the input's shape and crc32, the size and crc32 of MXNet's `.params` and symbol files,
  what the importer should find, and MXNet's logits;
- in `arrays.json.gz`: for each network the tensors of MXNet's `.params` file, `arg:<name> (<shape>)`, in its
  order.

The test rebuilds the other `.params` files from the recipe with common/mxnet_params.py and checks their crc32
against MXNet's, so it reads MXNet's bytes either way. Before writing, the graphs' parameters (names, shapes,
order) are checked against MXNet's lists in tests/data/mxnet-params. About 20 seconds on 2 CPU cores.

The recipe (`recipe_array`, `recipe_input`) needs NumPy only: the test imports it from here.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import shutil
import sys
import tempfile
import zlib
from typing import NamedTuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(ROOT, "tests", "data", "mxnet-import")
REFERENCE = os.path.join(ROOT, "tests", "data", "mxnet-params")
EPOCH = 0
ARRAYS = "arrays.json.gz"
NUM_CLASSES = 10


class Net(NamedTuple):
    label: str
    family: str
    num_layers: int | None
    graph: dict          # options of mxnet_graphs.get_symbol (`height` picks the layout)
    input_shape: tuple   # (N, C, H, W) fed to MXNet
    expect: dict         # what load_model should report: ModelInfo.kwargs
    commit: bool = False  # commit MXNet's .params file itself (a few hundred KB at most)


# The smallest input each network takes as the importer builds it: the importer gives VGG and AlexNet
# 224x224 classifiers, MobileNet its 7x7 pooling, Inception-BN its 7x7 pooling, Inception-v3 and v4 their
# 8x8 poolings at 299; GoogLeNet's 7x7 pooling needs 256 under MXNet (its example fails at 224:
# apache/mxnet#5032); the others pool globally.
NETWORKS = (
    Net("mlp", "mlp", None, {}, (2, 1, 28, 28), {"image_shape": "1,28,28"}),
    Net("lenet", "lenet", None, {}, (2, 1, 28, 28), {"image_shape": "1,28,28"}),
    Net("alexnet", "alexnet", None, {}, (1, 3, 224, 224), {"image_shape": "3,224,224"}),
    Net("vgg-11-bn", "vgg", 11, {"batch_norm": True}, (1, 3, 224, 224),
        {"num_layers": 11, "batch_norm": True, "image_shape": "3,224,224"}),
    Net("googlenet", "googlenet", None, {"height": 256}, (1, 3, 256, 256), {"image_shape": "3,224,224"}),
    Net("inception-bn", "inception-bn", None, {"classifier": None}, (1, 3, 224, 224),
        {"image_shape": "3,224,224"}),
    Net("inception-bn-28", "inception-bn", None, {"classifier": None, "height": 28}, (2, 3, 28, 28),
        {"image_shape": "3,28,28"}),
    Net("inception-v3", "inception-v3", None, {"height": 299}, (1, 3, 299, 299),
        {"image_shape": "3,299,299"}),
    Net("inception-v4", "inception-v4", None, {"height": 299}, (1, 3, 299, 299),
        {"image_shape": "3,299,299"}),
    Net("inception-resnet-v2", "inception-resnet-v2", None, {}, (1, 3, 75, 75), {"image_shape": "3,299,299"}),
    Net("resnet-8", "resnet", 8, {"height": 28}, (2, 3, 28, 28), {"num_layers": 8, "image_shape": "3,28,28"},
        commit=True),
    Net("resnet-v1-8", "resnet-v1", 8, {"height": 28}, (2, 3, 28, 28),
        {"num_layers": 8, "image_shape": "3,28,28"}),
    Net("resnet-v1-50", "resnet-v1", 50, {}, (1, 3, 64, 64), {"num_layers": 50, "image_shape": "3,224,224"}),
    Net("resnext-50", "resnext", 50, {}, (1, 3, 64, 64),
        {"num_layers": 50, "num_group": 32, "image_shape": "3,224,224"}),
    Net("mobilenet-0.25", "mobilenet", None, {"alpha": 0.25}, (1, 3, 224, 224),
        {"alpha": 0.25, "image_shape": "3,224,224"}),
    Net("mobilenetv2-0.25", "mobilenetv2", None, {"multiplier": 0.25}, (2, 3, 64, 64),
        {"multiplier": 0.25, "image_shape": "3,224,224"}),
)
NETWORKS_BY_LABEL = {net.label: net for net in NETWORKS}


# --- the recipe: NumPy only, reproduced by the test ------------------------------------------------------

def _uniform(seed_text: str, shape) -> np.ndarray:
    """Uniform float32 numbers in [0, 1) from NumPy's PCG64 generator seeded by crc32 of `seed_text` (a stream
    NumPy keeps from version to version; the manifest's checksums catch it if not)."""
    return np.random.default_rng(zlib.crc32(seed_text.encode())).random(tuple(shape), dtype=np.float32)


def recipe_array(name: str, shape) -> np.ndarray:
    """The value of parameter `name` (MXNet's name, without `arg:`/`aux:`), in float32 arithmetic:
    `_weight` He-uniform, +-sqrt(6 / fan_in) with fan_in the product of all but the first dimension;
    `_gamma` 1 +- 0.25 (also in fixed-gamma layers, where MXNet computes with 1); `_moving_var` 0.5 to 1.5;
    `_bias`, `_beta`, `_moving_mean` +-0.1."""
    a = _uniform(name, shape)
    if name.endswith("_moving_var"):
        a += np.float32(0.5)
        return a
    a *= np.float32(2)
    a -= np.float32(1)  # [-1, 1)
    if name.endswith("_weight"):
        a *= np.float32(math.sqrt(6 / math.prod(shape[1:])))
    elif name.endswith("_gamma"):
        a *= np.float32(0.25)
        a += np.float32(1)
    else:
        a *= np.float32(0.1)
    return a


def recipe_input(label: str, shape) -> np.ndarray:
    """The images fed to network `label`: uniform in [-1, 1) (MXNet graphs take the input as it comes)."""
    a = _uniform(f"input:{label}", shape)
    a *= np.float32(2)
    a -= np.float32(1)
    return a


def crc32(data: bytes | np.ndarray) -> int:
    return zlib.crc32(data.tobytes() if isinstance(data, np.ndarray) else data)


# --- under MXNet ----------------------------------------------------------------------------------------

def check_reference_lists(get_symbol) -> None:
    """Asserts that the graphs have the parameters (names, shapes, order) of MXNet's lists in
    tests/data/mxnet-params, with the classes and input shape each list was made with."""
    for file in sorted(os.listdir(REFERENCE)):
        match = re.fullmatch(r"(.+?)(?:_(\d+))?\.txt", file)
        if not match:
            continue
        family, layers = match.group(1), match.group(2) and int(match.group(2))
        with open(os.path.join(REFERENCE, file)) as f:
            reference = f.read().splitlines()
        shape = tuple(int(v) for v in re.findall(r"\d+", reference[0].split(" ", 2)[2]))
        if family == "googlenet":
            shape = shape[:2] + (256, 256)  # same tensors; MXNet's example cannot infer shapes at 224
        classifier_bias = reference[reference.index("arg softmax_label (1,)") - 1]
        num_classes = int(re.findall(r"\d+", classifier_bias.split(" ", 2)[2])[0])
        sym = get_symbol(family, layers, num_classes, height=shape[2], classifier=None)
        arg_shapes, _, aux_shapes = sym.infer_shape(data=shape)
        ours = ([f"arg {n} {s}" for n, s in zip(sym.list_arguments(), arg_shapes)]
                + [f"aux {n} {s}" for n, s in zip(sym.list_auxiliary_states(), aux_shapes)])
        assert ours[1:] == reference[1:], f"{family} {layers}: parameters differ from {file}"
    print(f"graphs have the parameters of MXNet's lists in {os.path.relpath(REFERENCE, ROOT)}", flush=True)


def write_fixture(net: Net, out: str, work: str) -> tuple[list[str], dict]:
    """Builds, runs and saves `net` under MXNet; returns its tensors and its manifest entry."""
    import mxnet as mx
    from mxnet_graphs import get_symbol

    options = dict(net.graph)
    height = options.pop("height", 224)
    sym = get_symbol(net.family, net.num_layers, NUM_CLASSES, height=height, **options)
    images = recipe_input(net.label, net.input_shape)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=images.shape)
    args = {name: recipe_array(name, shape) for name, shape in zip(sym.list_arguments(), arg_shapes)
            if name not in ("data", "softmax_label")}
    aux = {name: recipe_array(name, shape) for name, shape in zip(sym.list_auxiliary_states(), aux_shapes)}
    args = {k: mx.nd.array(v, dtype="float32") for k, v in args.items()}
    aux = {k: mx.nd.array(v, dtype="float32") for k, v in aux.items()}

    logits_sym = sym.get_children()[0]  # the last FullyConnected, under SoftmaxOutput
    module = mx.mod.Module(logits_sym, context=mx.cpu(), label_names=None)
    module.bind(data_shapes=[("data", images.shape)], for_training=False)
    module.set_params(args, aux, allow_missing=False, allow_extra=False)
    module.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    logits = module.get_outputs()[0].asnumpy()

    prefix = os.path.join(work, net.label)
    mx.model.save_checkpoint(prefix, EPOCH, sym, args, aux)
    params_file = f"{prefix}-{EPOCH:04d}.params"
    with open(params_file, "rb") as f:
        params = f.read()
    with open(f"{prefix}-symbol.json", "rb") as f:
        symbol = f.read()
    with open(os.path.join(out, f"{net.label}-symbol.json.gz"), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as z:  # no time stamp: same bytes
            z.write(symbol)
    if net.commit:
        shutil.copyfile(params_file, os.path.join(out, os.path.basename(params_file)))
    arrays = mx.nd.load(params_file)  # in the order of MXNet's file
    return [f"{k} {tuple(v.shape)}" for k, v in arrays.items()], {
        "family": net.family,
        "input_shape": list(images.shape),
        "input_crc32": crc32(images),
        "symbol": {"file": f"{net.label}-symbol.json.gz", "bytes": len(symbol), "crc32": crc32(symbol)},
        "params": {"file": os.path.basename(params_file) if net.commit else None, "bytes": len(params),
                   "crc32": crc32(params)},
        "expect": {"network": net.family, "kwargs": net.expect},
        "logits": [[float(v) for v in row] for row in logits],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=FIXTURES, help="the fixture folder (default: %(default)s)")
    parser.add_argument("networks", nargs="*", metavar="LABEL",
                        help="only these networks, updating their manifest entries (of "
                             f"{', '.join(NETWORKS_BY_LABEL)})")
    args = parser.parse_args()
    unknown = [label for label in args.networks if label not in NETWORKS_BY_LABEL]
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}")
    import mxnet as mx
    sys.path.insert(0, HERE)
    from mxnet_graphs import get_symbol

    check_reference_lists(get_symbol)
    os.makedirs(args.out, exist_ok=True)
    manifest_path, arrays_path = os.path.join(args.out, "manifest.json"), os.path.join(args.out, ARRAYS)
    manifest = {"mxnet": mx.__version__, "numpy": np.__version__, "made_by": "checks/make_import_fixtures.py",
                "epoch": EPOCH, "num_classes": NUM_CLASSES, "arrays": ARRAYS, "networks": {}}
    tensors = {}
    if args.networks and os.path.exists(manifest_path):  # keep the other networks' entries
        with open(manifest_path) as f:
            manifest["networks"] = json.load(f)["networks"]
        with gzip.open(arrays_path, "rt") as f:
            tensors = json.load(f)
    with tempfile.TemporaryDirectory() as work:
        for net in NETWORKS:
            if args.networks and net.label not in args.networks:
                continue
            tensors[net.label], entry = write_fixture(net, args.out, work)
            manifest["networks"][net.label] = entry
            scale = max(abs(v) for row in entry["logits"] for v in row)
            print(f"MXNet {mx.__version__}: {net.label:<20} {entry['params']['bytes']:>11,} bytes of "
                  f".params, max |logit| {scale:.4g}", flush=True)
    manifest["networks"] = {label: manifest["networks"][label] for label in NETWORKS_BY_LABEL
                            if label in manifest["networks"]}
    with open(manifest_path, "w") as f:
        f.write(dump_manifest(manifest))
    tensors = {label: tensors[label] for label in manifest["networks"]}
    with open(arrays_path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as z:
            z.write((json.dumps(tensors, indent=0) + "\n").encode())
    print(f"wrote {os.path.relpath(manifest_path, ROOT)} and {os.path.relpath(arrays_path, ROOT)}")


def dump_manifest(manifest: dict) -> str:
    """JSON with one line per tensor and per row of logits."""
    text = json.dumps(manifest, indent=1)
    # fold the innermost lists (shapes, rows of numbers) onto one line
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]",
                  text) + "\n"


if __name__ == "__main__":
    main()
