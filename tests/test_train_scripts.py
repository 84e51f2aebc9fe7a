"""train_cifar10.py, train_imagenet.py and data/cifar10.py, as a user runs them."""
import importlib.util
import io
import json
import os
import re
import struct
import tarfile

import numpy as np
import pytest

import train_imagenet
import train_mnist
from common import checkpoint, recordio
from conftest import ROOT, run_script


def load_cifar10_packer():
    spec = importlib.util.spec_from_file_location("cifar10_packer", os.path.join(ROOT, "data", "cifar10.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cifar10_binary_archive_packs_lossless_records(tmp_path):
    packer = load_cifar10_packer()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 6).astype(np.uint8)
    planes = rng.integers(0, 256, (6, 3, 32, 32)).astype(np.uint8)  # R, G, B planes, as the archive stores them
    blob = b"".join(bytes([label]) + plane.tobytes() for label, plane in zip(labels, planes))
    archive = tmp_path / "cifar-10-binary.tar.gz"
    names = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"  # as the archive's
    with tarfile.open(archive, "w:gz") as tar:
        for member, content in (("cifar-10-batches-bin/test_batch.bin", blob), (packer.META_FILE, names)):
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    assert packer.read_class_names_member(str(archive)) == names.decode().split()
    images, read_labels = packer.read_batches(str(archive), packer.TEST_FILES)
    assert images.shape == (6, 32, 32, 3) and read_labels.tolist() == labels.tolist()
    prefix = str(tmp_path / "val")
    packer.write_rec(prefix, images, read_labels)
    reader = recordio.IndexedRecordReader(prefix + ".idx", prefix + ".rec")
    for i in range(6):
        header, bgr = recordio.unpack_img(reader.read_idx(i), 1)
        assert header.label == labels[i] and header.id == i
        np.testing.assert_array_equal(bgr[:, :, ::-1], planes[i].transpose(1, 2, 0))  # lossless, RGB order kept


def test_imagenet_recipe_is_applied_and_command_line_still_wins():
    plain = train_imagenet.get_args_parser().parse_args([])
    assert plain.random_resized_crop == 0 and plain.max_random_rotate_angle == 10  # MXNet's level-3 default
    parser = train_imagenet.get_args_parser()
    recipe = parser.parse_args(["--use-imagenet-data-augmentation", "1", "--brightness", "0.2"])
    assert recipe.random_resized_crop == 1 and recipe.min_random_area == 0.08 and recipe.pca_noise == 0.1
    assert recipe.rgb_std == "58.393,57.12,57.375" and recipe.max_random_rotate_angle == 0
    assert recipe.brightness == 0.2


AUGMENTATIONS = ("random_crop", "random_mirror", "max_random_h", "max_random_s", "max_random_l",
                 "max_random_rotate_angle", "max_random_shear_ratio", "max_random_aspect_ratio")


@pytest.mark.parametrize("argv", [
    ["--data-aug-level", "0"],
    ["--data-aug-level", "0", "--network", "resnet"],
    ["--network", "resnet", "--data-aug-level", "0", "--num-layers", "18"],
    ["--num-layers", "18", "--data-aug-level", "0"],
])
def test_data_aug_level_0_means_no_augmentation_wherever_it_stands(argv):
    args = train_imagenet.get_args_parser().parse_args(argv)  # level 3 by default
    assert {name: getattr(args, name) for name in AUGMENTATIONS} == dict.fromkeys(AUGMENTATIONS, 0)
    assert (args.brightness, args.contrast, args.saturation, args.pca_noise, args.random_resized_crop) == (0,) * 5
    plain = train_imagenet.get_args_parser().parse_args([])
    assert list(vars(args)) == list(vars(plain))  # the logged `start with arguments` line keeps its order


@pytest.mark.parametrize("argv", [
    ["--data-aug-level", "1", "--random-mirror", "0", "--max-random-h", "5"],
    ["--random-mirror", "0", "--max-random-h", "5", "--data-aug-level", "1"],
    ["--random-mirror", "0", "--data-aug-level", "1", "--max-random-h", "5"],
])
def test_explicit_options_win_over_the_level_in_any_order(argv):
    args = train_imagenet.get_args_parser().parse_args(argv)
    assert (args.random_crop, args.random_mirror, args.max_random_h, args.max_random_s) == (1, 0, 5, 0)
    assert args.max_random_rotate_angle == 0  # level 1 turns off the level-3 default


BUG = """
import sys
import train_mnist
from common import cli, fit

def a_bug(*args, **kwargs):
    raise ValueError("a programming error inside training")

fit.learning_rate = a_bug
parser = train_mnist.get_args_parser()
cli.run_main(lambda: train_mnist.main(parser.parse_args(sys.argv[1:])))
"""


def test_a_bug_shows_its_traceback_and_a_user_mistake_one_line(fake_mnist):
    bug = run_script("-c", BUG, "--data-dir", str(fake_mnist), "--num-epochs", "1")
    assert bug.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in bug.stderr
    assert "ValueError: a programming error inside training" in bug.stderr
    assert "error: a programming error" not in bug.stderr

    bad_option = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--batch-size", "-5")
    assert bad_option.returncode == 2
    assert bad_option.stderr.strip().splitlines() == [
        "train_mnist.py: error: --batch-size must be positive, got -5"]

    (fake_mnist / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    bad_file = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--num-epochs", "1")
    assert bad_file.returncode == 2 and "Traceback" not in bad_file.stderr
    assert bad_file.stderr.strip().splitlines()[-1].startswith(
        f"train_mnist.py: error: {fake_mnist / 't10k-labels-idx1-ubyte.gz'}: not a complete gzip file")


def test_bfloat16_autocast_trains_on_cpu(fake_mnist):
    args = train_mnist.get_args_parser().parse_args(["--data-dir", str(fake_mnist), "--network", "lenet",
                                                     "--num-epochs", "2", "--dtype", "bfloat16"])
    assert train_mnist.main(args)["validation-accuracy"] > 0.8


def write_tiny_rec(prefix: str, count: int = 48) -> None:
    """Colour-coded 32x32 images: class k is a solid colour plus noise, so a network can learn it."""
    rng = np.random.default_rng(1)
    with recordio.IndexedRecordWriter(prefix + ".idx", prefix + ".rec") as writer:
        for i in range(count):
            label = i % 3
            image = rng.integers(0, 40, (32, 32, 3)).astype(np.uint8)
            image[:, :, label] += 200
            writer.write_idx(i, recordio.pack_img(recordio.IRHeader(0, float(label), i, 0), image, img_fmt=".png"))


def test_train_cifar10_runs_on_record_files(tmp_path):
    from conftest import run_script
    prefix = str(tmp_path / "tiny")
    write_tiny_rec(prefix)
    result = run_script("train_cifar10.py", "--network", "resnet", "--num-layers", "20", "--num-classes", "3",
                        "--data-train", prefix + ".rec", "--data-val", prefix + ".rec", "--batch-size", "16",
                        "--num-epochs", "2", "--disp-batches", "1", "--data-nthreads", "1", "--lr", "0.1",
                        "--model-prefix", str(tmp_path / "ck" / "r20"), "--top-k", "2")
    assert result.returncode == 0, result.stderr
    assert "Epoch[1] Validation-top_k_accuracy_2=" in result.stderr
    assert (tmp_path / "ck" / "r20-0002.params").exists()


def test_benchmark_runs_num_examples_over_batch_size_batches():
    out = run_script("train_imagenet.py", "--benchmark", "1", "--network", "resnet", "--num-layers", "18",
                     "--image-shape", "3,32,32", "--num-classes", "10", "--num-examples", "100", "--batch-size", "8",
                     "--disp-batches", "4", "--num-epochs", "1", "--gpus", "")
    assert out.returncode == 0, out.stderr
    windows = re.findall(r"Epoch\[0\] Batch \[(\d+)-(\d+)\]\tSpeed: [\d.]+ samples/sec\taccuracy=", out.stderr)
    assert windows == [("0", "4"), ("4", "8")]  # 100 // 8 = 12 batches: numbers 0-11, a line every 4
    assert "Epoch[0] Train-accuracy=" in out.stderr


def test_a_missing_validation_file_names_the_option_and_the_way_out(tmp_path):
    train = tmp_path / "mine.rec"
    train.write_bytes(b"")
    out = run_script("train_cifar10.py", "--data-train", str(train), "--gpus", "")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (  # after the `start with arguments` line
        f"train_cifar10.py: error: --data-val {os.path.join(ROOT, 'data', 'cifar10_val.rec')}: no such file or "
        "folder; give --data-val FILE, or --data-val '' to train without validation")


def test_a_damaged_params_file_is_one_line_naming_the_array(tmp_path):
    prefix = tmp_path / "net"
    (tmp_path / "net-symbol.json").write_text(json.dumps(
        {"format": checkpoint.SYMBOL_FORMAT, "network": "mlp", "kwargs": {"num_classes": 10}}))
    (tmp_path / "net-0001.params").write_bytes(
        struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iii", 0xF993FAC9, 0, 2) + struct.pack("<2q", -12, 4)
        + struct.pack("<iii", 1, 0, 0))
    out = run_script("score.py", "--model", str(prefix), "--load-epoch", "1", "--image", "x.jpg", "--gpus", "")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"score.py: error: {prefix}-0001.params: array 0 at byte 24 has shape (-12, 4), with a negative dimension: "
        "the file is damaged"]
