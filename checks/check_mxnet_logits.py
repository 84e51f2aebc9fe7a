"""Do MXNet checkpoints imported by common/mxnet_import.py compute what MXNet computes?

MXNet 1.9.1 (in its own virtualenv: numpy<1.24) builds ResNet v2, ResNet v1, ResNeXt, MobileNet, Inception-BN
and Inception-v3 (299x299 inputs) graphs with the layer names of its example symbols (checks/mxnet_graphs.py;
with --params-reference, their parameter names, shapes and order are asserted equal to the lists there, for
the networks it lists), gives them random weights and BatchNorm statistics (and random gammas in fix_gamma
layers, which MXNet ignores), saves them with `mx.model.save_checkpoint` and runs its forward pass on random
images. The suite then loads each checkpoint with `load_model` (no MXNet) and compares logits:
max |ours - MXNet| / max |MXNet| <= 1e-4.

    python -m venv /tmp/mxvenv && /tmp/mxvenv/bin/pip install mxnet==1.9.1 "numpy<1.24"
    python checks/check_mxnet_logits.py --mxnet-python /tmp/mxvenv/bin/python

Not run by the tests: it needs MXNet and takes about half a minute on 2 CPU cores.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NETWORKS = (("resnet", 18), ("resnet", 50), ("resnet-v1", 18), ("resnet-v1", 50), ("resnext", 50), ("mobilenet", None),
            ("inception-bn", None), ("inception-v3", None))
IMAGE_SIZES = {"inception-v3": 299}  # others: 224
BATCH, TOLERANCE = 2, 1e-4


def label(family: str, layers: int | None) -> str:
    return family if layers is None else f"{family}-{layers}"


def input_path(folder: str, family: str) -> str:
    return os.path.join(folder, f"input-{IMAGE_SIZES.get(family, 224)}.npy")


def check_parameter_names(sym, family: str, layers: int | None, size: int, reference_dir: str | None) -> None:
    """Asserts `sym` has the parameters (names, shapes, order) of MXNet's example, where `reference_dir`
    lists it."""
    if reference_dir is None:
        return
    path = os.path.join(reference_dir, (family if layers is None else f"{family}_{layers}") + ".txt")
    if not os.path.exists(path):
        return
    with open(path) as f:  # the example's Inception-BN leaves its classifier unnamed; ours calls it fc1
        reference = f.read().replace("fullyconnected0_", "fc1_").splitlines()
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, size, size))
    ours = ([f"arg {n} {s}" for n, s in zip(sym.list_arguments(), arg_shapes)]
            + [f"aux {n} {s}" for n, s in zip(sym.list_auxiliary_states(), aux_shapes)])
    assert ours == reference, f"{label(family, layers)}: parameters differ from {path}"


def write_with_mxnet(folder: str, reference_dir: str | None) -> None:
    """Runs under MXNet's Python: checkpoints, input and MXNet's logits into `folder`."""
    import mxnet as mx
    sys.path.insert(0, HERE)
    from mxnet_graphs import get_symbol

    rng = np.random.default_rng(0)
    for size in sorted({224, *IMAGE_SIZES.values()}):
        np.save(os.path.join(folder, f"input-{size}.npy"), rng.normal(0, 1, (BATCH, 3, size, size)).astype(np.float32))
    for family, layers in NETWORKS:
        images = np.load(input_path(folder, family))
        sym = get_symbol(family, layers)
        check_parameter_names(sym, family, layers, images.shape[-1], reference_dir)
        arg_shapes, _, aux_shapes = sym.infer_shape(data=images.shape)
        args, aux = {}, {}
        for name, shape in zip(sym.list_arguments(), arg_shapes):
            if name.endswith("_weight"):
                fan_in = int(np.prod(shape[1:]))
                args[name] = rng.normal(0, np.sqrt(2 / fan_in), shape)
            elif name.endswith("_gamma"):
                args[name] = rng.uniform(0.5, 1.5, shape)
            elif name.endswith(("_beta", "_bias")):
                args[name] = rng.normal(0, 0.1, shape)
        for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
            aux[name] = rng.uniform(0.5, 1.5, shape) if name.endswith("_var") else rng.normal(0, 0.1, shape)
        args = {k: mx.nd.array(v, dtype="float32") for k, v in args.items()}
        aux = {k: mx.nd.array(v, dtype="float32") for k, v in aux.items()}
        logits_sym = sym.get_children()[0]  # the last FullyConnected, under SoftmaxOutput
        module = mx.mod.Module(logits_sym, context=mx.cpu(), label_names=None)
        module.bind(data_shapes=[("data", images.shape)], for_training=False)
        module.set_params(args, aux)
        module.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
        prefix = os.path.join(folder, label(family, layers))
        mx.model.save_checkpoint(prefix, 0, sym, args, aux)
        np.save(prefix + "-logits.npy", module.get_outputs()[0].asnumpy())
        print(f"MXNet {mx.__version__}: wrote {prefix}", flush=True)


def compare(folder: str) -> bool:
    sys.path.insert(0, os.path.dirname(HERE))
    import torch
    from common.mxnet_import import load_model

    ok = True
    print(f"{'network':<14} {'recognised as':<22} {'max |diff|':>11} {'max |MXNet|':>12} {'rel. error':>11}")
    for family, layers in NETWORKS:
        prefix = os.path.join(folder, label(family, layers))
        model, info = load_model(prefix, 0)
        images = torch.from_numpy(np.load(input_path(folder, family)))
        with torch.no_grad():
            ours = model.eval()(images).numpy()
        theirs = np.load(prefix + "-logits.npy")
        diff, scale = np.abs(ours - theirs).max(), np.abs(theirs).max()
        good = diff / scale <= TOLERANCE and (info.network, info.kwargs.get("num_layers")) == (family, layers)
        ok &= good
        print(f"{label(family, layers):<14} {label(info.network, info.kwargs.get('num_layers')):<22} "
              f"{diff:11.3e} {scale:12.4f} {diff / scale:11.3e}  {'ok' if good else 'FAIL'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mxnet-python", default="/tmp/mxvenv/bin/python", help="a Python with mxnet==1.9.1")
    parser.add_argument("--params-reference", metavar="DIR",
                        help="MXNet 1.9.1's parameter lists, <network>.txt of `arg|aux name shape` lines (e.g. "
                             "resnet_50.txt): the graphs' parameters must match those listed")
    parser.add_argument("--write", help=argparse.SUPPRESS)  # internal: the MXNet side
    args = parser.parse_args()
    if args.write:
        write_with_mxnet(args.write, args.params_reference)
        return
    reference = []
    if args.params_reference is not None:
        if not os.path.isdir(args.params_reference):
            parser.error(f"--params-reference {args.params_reference}: no such folder")
        reference = ["--params-reference", os.path.abspath(args.params_reference)]
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([args.mxnet_python, os.path.abspath(__file__), "--write", folder, *reference],
                       check=True)
        sys.exit(0 if compare(folder) else 1)


if __name__ == "__main__":
    main()
