"""score.py as a user runs it: a hand-set model scored on solid grey images, where the right answer is counted
by hand; a checkpoint written by our training, scored on a .rec made by im2rec from Imagenette; one image
classified; ONNX export."""
import os
import re

import numpy as np
import pytest
import torch

import score
from common import checkpoint, cli, data, fit, recordio
from conftest import run_script
from imagenette_recs import missing_imagenette, needs_imagenette, pack_imagenette
from symbols import create_model


# Solid grey 32x32 images: class k has grey level 20 + 30k (k = 0..7), stored as PNG (lossless).
GREYS = [20 + 30 * k for k in range(8)]                     # 20, 50, 80, 110, 140, 170, 200, 230
# The file's classes, in order: one image of each class, then 8 more of the classes the model gets right.
FILE_CLASSES = [0, 1, 2, 3, 4, 5, 6, 7] + [0, 1, 2, 3, 4, 5, 0, 1]
# The model compares an image's grey level v with one template per class and scores class k by
# 2 t_k v - t_k^2 = v^2 - (v - t_k)^2, so it ranks the classes by |v - t_k|, nearest first.
TEMPLATES = [20, 50, 80, 110, 140, 170, 240, 1000]         # classes 0-5 at their own grey; 6 and 7 moved
# class  v    nearest templates (|v - t|)                          top-1    class's rank  top-5?
# 0-5    v_k  t_k itself (0)                                       right    1             yes
# 6      200  t5 (30), t6 (40), t4 (60), t3 (90), t2 (120), ...     5 wrong  2             yes
# 7      230  t6 (10), t5 (60), t4 (90), t3 (120), t2 (150), t1 (180), t0 (210), t7 (770)
#                                                                  6 wrong  8             no
# The first 8 images (--max-num-examples 8, one per class): 6/8 = 0.75 right, 7/8 = 0.875 in the top 5.
# All 16: the 8 more are all right, so 14/16 = 0.875 right and 15/16 = 0.9375 in the top 5.


def write_grey_records(path: str) -> str:
    """FILE_CLASSES as solid grey PNG records (im2rec's record layout); returns the .rec path."""
    with recordio.IndexedRecordWriter(path + ".idx", path + ".rec") as writer:
        for i, k in enumerate(FILE_CLASSES):
            img = np.full((32, 32), GREYS[k], np.uint8)
            writer.write_idx(i, recordio.pack_img(recordio.IRHeader(0, float(k), i, 0), img, 3, ".png"))
    return path + ".rec"


def grey_template_mlp() -> torch.nn.Module:
    """symbols/mlp.py (784-128-64-8) with weights set by hand: fc1's unit 0 averages the 784 pixels (v),
    fc2's unit 0 passes it on (both through ReLU, v >= 0), every other unit is 0; fc3 scores
    2 t_k v - t_k^2."""
    model = create_model("mlp", 8)
    templates = torch.tensor(TEMPLATES, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.fc1.weight[0] = 1 / 784
        model.fc2.weight[0, 0] = 1
        model.fc3.weight[:, 0] = 2 * templates
        model.fc3.bias.copy_(-templates ** 2)
    return model


def test_score_counts_a_hand_set_model_right_on_6_of_8_classes(tmp_path):
    rec = write_grey_records(str(tmp_path / "greys"))
    prefix = str(tmp_path / "greys-mlp")
    model = grey_template_mlp()
    checkpoint.save_symbol(prefix, "mlp", {"num_classes": 8})
    checkpoint.save_params(prefix, 3, model)
    # the hand-set model itself, before score.py: it predicts what the table says
    x = torch.tensor([float(g) for g in GREYS]).view(8, 1, 1, 1).expand(8, 1, 28, 28)
    assert model(x).argmax(1).tolist() == [0, 1, 2, 3, 4, 5, 5, 6]

    common = ["--model", prefix, "--load-epoch", "3", "--data-val", rec, "--image-shape", "1,28,28",
              "--batch-size", "3", "--gpus", ""]  # batches of 3: the last one is partial (16 = 5 x 3 + 1)
    # as a user runs it: all 16 images
    done = run_script("score.py", *common, "--data-nthreads", "1")
    assert done.returncode == 0, done.stderr
    assert "('accuracy', 0.875)" in done.stderr, done.stderr              # 14/16
    assert "('top_k_accuracy_5', 0.9375)" in done.stderr, done.stderr     # 15/16
    # the first 8 images only, through main(), which returns how many it scored
    parser = score.get_args_parser()
    result = score.main(parser.parse_args([*common, "--data-nthreads", "0", "--max-num-examples", "8"]))
    assert result["num_images"] == 8
    assert (result["accuracy"], result["top_k_accuracy_5"]) == (0.75, 0.875)  # 6/8 and 7/8
    result = score.main(parser.parse_args([*common, "--data-nthreads", "0", "--max-num-examples", "100"]))
    assert (result["num_images"], result["accuracy"], result["top_k_accuracy_5"]) == (16, 0.875, 0.9375)


def train_small_resnet(tmp_path, rec: str, val: str | None = "same", epochs: int = 1, num_layers: int = 20,
                       batch_size: int = 16, seed: int = 0, extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """Train a CIFAR-style ResNet (20 layers) on 32x32 crops of `rec` with common/fit.py, validating on `val`
    (by default `rec` itself); returns (checkpoint prefix, log file)."""
    parser = cli.ArgumentParser()
    fit.add_fit_args(parser)
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    prefix, log = str(tmp_path / "r20"), str(tmp_path / "train.log")
    args = parser.parse_args(["--network", "resnet", "--num-layers", str(num_layers), "--image-shape", "3,32,32",
                              "--data-train", rec, "--num-classes", "10", "--rgb-mean", "0,0,0",
                              "--num-epochs", str(epochs), "--batch-size", str(batch_size), "--top-k", "5",
                              "--data-nthreads", "0", "--seed", str(seed),
                              "--model-prefix", prefix, "--log-file", log, "--gpus", "",
                              *(["--data-val", rec if val == "same" else val] if val else []), *extra])
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
def test_score_reproduces_the_validation_of_the_weight_average(tmp_path):
    rec = pack_imagenette(tmp_path, per_class=4, resize=36) + ".rec"
    prefix, log = train_small_resnet(tmp_path, rec, epochs=2, extra=("--ema-decay", "0.8"))
    with open(log) as f:
        logged = dict(re.findall(r"Epoch\[1\] Validation-(\S+)=([\d.]+)", f.read()))
    done = run_script("score.py", "--model", prefix + "-ema", "--load-epoch", "2", "--data-val", rec, "--gpus", "",
                      "--image-shape", "3,32,32", "--batch-size", "16", "--data-nthreads", "1")
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"\('accuracy', ([\d.e-]+)\)", done.stderr).group(1))
    assert accuracy == pytest.approx(float(logged["ema-accuracy"]), abs=1e-6)
    assert open(checkpoint.params_path(prefix + "-ema", 2), "rb").read() != open(
        checkpoint.params_path(prefix, 2), "rb").read()


@needs_imagenette
def test_user_errors_are_one_line(trained):  # --max-num-examples: in test_score_counts_a_hand_set_model...
    rec, prefix, _ = trained
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


def test_predictions_and_confusion_matrix_of_the_hand_set_model(tmp_path):
    """The 16 grey images: each line of --predictions names the image, its class and the model's choice
    (the table above); the confusion matrix counts them; two processes write the same files."""
    rec = write_grey_records(str(tmp_path / "greys"))
    prefix = str(tmp_path / "greys-mlp")
    checkpoint.save_symbol(prefix, "mlp", {"num_classes": 8})
    checkpoint.save_params(prefix, 3, grey_template_mlp())
    predicted = [0, 1, 2, 3, 4, 5, 5, 6]  # by class: classes 6 and 7 are taken for 5 and 6
    common = ["--model", prefix, "--load-epoch", "3", "--data-val", rec, "--image-shape", "1,28,28",
              "--batch-size", "4", "--gpus", "", "--data-nthreads", "0"]
    outputs = {}
    for processes in (1, 2):
        folder = tmp_path / f"{processes}"
        folder.mkdir()
        args = [*common, "--predictions", str(folder / "p.csv"), "--confusion-matrix", str(folder / "cm.png")]
        done = run_script("score.py", *args) if processes == 1 else run_script(
            "tools/launch.py", "-n", "2", "--launcher", "local", "python", "score.py", *args)
        assert done.returncode == 0, done.stderr
        outputs[processes] = [(folder / name).read_bytes() for name in ("p.csv", "cm.csv")]
        assert (folder / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs[1] == outputs[2]  # once each, in record order
    lines = outputs[1][0].decode().splitlines()
    assert lines[0].split(",")[:4] == ["id", "label", "class_1", "probability_1"] and len(lines) == 17
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        assert cells[:3] == [str(i), str(FILE_CLASSES[i]), str(predicted[FILE_CLASSES[i]])]
        probabilities = [float(p) for p in cells[3::2]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    expected = np.zeros((8, 8), int)
    for k in FILE_CLASSES:
        expected[k, predicted[k]] += 1
    rows = outputs[1][1].decode().splitlines()
    assert rows[0] == "true \\ predicted,0,1,2,3,4,5,6,7"
    assert [[int(v) for v in row.split(",")[1:]] for row in rows[1:]] == expected.tolist()
