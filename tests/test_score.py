"""score.py as a user runs it: a checkpoint written by our training, scored on a .rec made by im2rec from
Imagenette; one image classified; ONNX export."""
import os
import re

import numpy as np
import pytest
import torch

from common import checkpoint, cli, data, fit
from conftest import run_script
from imagenette_recs import missing_imagenette, needs_imagenette, pack_imagenette
from symbols import create_model


def train_small_resnet(tmp_path, rec: str, val: str | None = "same", epochs: int = 1, num_layers: int = 20
                       ) -> tuple[str, str]:
    """Train a CIFAR-style ResNet (20 layers) on 32x32 crops of `rec` with common/fit.py, validating on `val` (by
    default `rec` itself); returns (checkpoint prefix, log file)."""
    parser = cli.ArgumentParser()
    fit.add_fit_args(parser)
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    prefix, log = str(tmp_path / "r20"), str(tmp_path / "train.log")
    args = parser.parse_args(["--network", "resnet", "--num-layers", str(num_layers), "--image-shape", "3,32,32",
                              "--data-train", rec, "--num-classes", "10", "--rgb-mean", "0,0,0",
                              "--num-epochs", str(epochs), "--batch-size", "16", "--top-k", "5", "--data-nthreads", "0",
                              "--model-prefix", prefix, "--log-file", log, "--gpus", "",
                              *(["--data-val", rec if val == "same" else val] if val else [])])
    fit.fit(args, create_model(args.network, **vars(args)), data.get_rec_iter)
    return prefix, log


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(rec, checkpoint prefix, training log) shared by the tests of this file."""
    if reason := missing_imagenette():
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("score")
    rec = pack_imagenette(folder, per_class=4, resize=36) + ".rec"
    prefix, log = train_small_resnet(folder, rec)
    return rec, prefix, log


@needs_imagenette
def test_score_reproduces_the_validation_of_training(trained):
    rec, prefix, log = trained
    with open(log) as f:
        logged = dict(re.findall(r"Epoch\[0\] Validation-(\S+)=([\d.]+)", f.read()))
    done = run_script("score.py", "--model", prefix, "--load-epoch", "1", "--data-val", rec, "--gpus", "",
                      "--image-shape", "3,32,32", "--batch-size", "16", "--data-nthreads", "1")
    assert done.returncode == 0, done.stderr
    out = done.stderr
    assert re.search(r"Node\[0\] Finished with [\d.]+ images per second", out)
    accuracy = float(re.search(r"\('accuracy', ([\d.e-]+)\)", out).group(1))
    top5 = float(re.search(r"\('top_k_accuracy_5', ([\d.e-]+)\)", out).group(1))
    assert accuracy == pytest.approx(float(logged["accuracy"]), abs=1e-6)
    assert top5 == pytest.approx(float(logged["top_k_accuracy_5"]), abs=1e-6)


@needs_imagenette
def test_max_num_examples_and_user_errors(trained):
    rec, prefix, _ = trained
    done = run_script("score.py", "--model", prefix, "--load-epoch", "1", "--data-val", rec, "--gpus", "",
                      "--image-shape", "3,32,32", "--max-num-examples", "8", "--batch-size", "3",
                      "--data-nthreads", "0")
    assert done.returncode == 0, done.stderr
    assert re.search(r"\('accuracy', (0\.0|0\.125|0\.25|0\.375|0\.5|0\.625|0\.75|0\.875|1\.0)\)", done.stderr)

    for args, message in (
            (["--model", prefix, "--data-val", rec], "for a checkpoint prefix, give --load-epoch too"),
            (["--model", prefix, "--load-epoch", "7", "--data-val", rec], "r20-0007.params not found"),
            (["--model", prefix, "--load-epoch", "1", "--data-val", rec + ".missing"], "no such file"),
            (["--model", prefix, "--load-epoch", "1"], "give --data-val"),
            (["--model", prefix, "--load-epoch", "1", "--image", rec], "not an image"),
    ):
        done = run_script("score.py", *args, "--gpus", "", "--image-shape", "3,32,32")
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


@needs_imagenette
def test_one_image_top5_with_class_names(trained, tmp_path):
    rec, prefix, _ = trained
    names = [f"n0{i} class {i}" for i in range(10)]
    with open(prefix + "-synset.txt", "w") as f:
        f.write("\n".join(names) + "\n")
    image = os.path.join(os.path.dirname(rec), "images", "n01440764")
    image = os.path.join(image, sorted(os.listdir(image))[0])
    done = run_script("score.py", "--model", prefix, "--load-epoch", "1", "--image", image, "--image-shape", "3,32,32")
    os.unlink(prefix + "-synset.txt")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5
    found = [re.fullmatch(r"probability=([\d.]+), class=(.+)", line) for line in lines]
    probabilities = [float(m.group(1)) for m in found]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.00001
    assert all(m.group(2) in names for m in found)


def test_export_onnx(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    model = create_model("lenet", 10)
    prefix = str(tmp_path / "lenet")
    checkpoint.save_symbol(prefix, "lenet", {"num_classes": 10})
    checkpoint.save_params(prefix, 1, model)
    done = run_script("score.py", "--model", prefix, "--load-epoch", "1", "--export", "onnx",
                      "--image-shape", "1,28,28")
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(prefix + ".onnx") > 0
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype(np.float32)
    got = ort.InferenceSession(prefix + ".onnx").run(None, {"data": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
