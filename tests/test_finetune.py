"""fine-tune.py: MXNet's defaults, the classifier swap, and fine-tuning on Imagenette on the CPU."""
import importlib
import re

import numpy as np
import pytest

from common import checkpoint
from common.mxnet_import import load_model
from conftest import run_script
from imagenette_recs import needs_imagenette, pack_imagenette
from symbols import create_model, list_networks
from test_mxnet_import import cifar_resnet_v2_graph, random_arrays, write_checkpoint
from test_score import train_small_resnet

fine_tune = importlib.import_module("fine-tune")


def test_mxnet_defaults():
    args = fine_tune.get_args_parser().parse_args(["--pretrained-model", "imagenet1k-resnet-50"])
    assert (args.num_epochs, args.lr, args.lr_step_epochs, args.wd, args.mom) == (30, 0.01, "20", 0.0, 0.0)
    assert (args.image_shape, args.layer_before_fullc, args.model_dir) == ("3,224,224", "flatten0", "model/")
    assert (args.random_crop, args.random_mirror, args.max_random_h) == (1, 1, 0)  # augmentation level 1


@needs_imagenette
@pytest.mark.skipif("resnet" not in list_networks(), reason="symbols/resnet.py is not there yet")
def test_mxnet_checkpoint_fine_tuned_then_scored(tmp_path):
    """An MXNet checkpoint (graph + params) fine-tuned from 7 to 10 classes; the result rebuilds and scores."""
    reference = create_model("resnet", 7, num_layers=20, image_shape="3,28,28")
    pretrained = random_arrays(reference)
    write_checkpoint(tmp_path / "mx", cifar_resnet_v2_graph(3, 7), pretrained, epoch=0)
    rec = pack_imagenette(tmp_path, per_class=2, resize=32) + ".rec"
    common = ["--pretrained-model", str(tmp_path / "mx"), "--pretrained-epoch", "0", "--data-train", rec,
              "--num-classes", "10", "--image-shape", "3,28,28", "--gpus", ""]

    wrong = run_script("fine-tune.py", *common, "--layer-before-fullc", "pool1")
    assert wrong.returncode == 2
    assert "follows 'flatten0'" in wrong.stderr and "Traceback" not in wrong.stderr

    prefix = str(tmp_path / "ft")
    done = run_script("fine-tune.py", *common, "--num-epochs", "1", "--batch-size", "10", "--data-nthreads", "0",
                      "--model-prefix", prefix, "--rgb-mean", "0,0,0")
    assert done.returncode == 0, done.stderr
    assert "Replaced fc1 (64 -> 7) with a new layer of 10 outputs" in done.stderr
    model, info = load_model(prefix, 1)
    assert (info.network, info.num_classes, info.kwargs["num_layers"], info.source) == ("resnet", 10, 20, "ours")
    tuned = checkpoint.to_mxnet_arrays(model)
    assert tuned["arg:fc1_weight"].shape == (10, 64)
    # one epoch at lr 0.01 without momentum moves the pre-trained weights only a little
    assert np.abs(tuned["arg:conv0_weight"] - pretrained["arg:conv0_weight"]).max() < 0.1
    scored = run_script("score.py", "--model", prefix, "--load-epoch", "1", "--data-val", rec,
                        "--image-shape", "3,28,28", "--gpus", "", "--data-nthreads", "0")
    assert scored.returncode == 0 and "('accuracy'," in scored.stderr, scored.stderr


@needs_imagenette
@pytest.mark.slow
def test_fine_tuning_on_imagenette_beats_chance(tmp_path):
    """Pre-train a ResNet-8 for 3 epochs, then fine-tune it (new classifier) for an epoch, on 960 Imagenette
    images at 32x32; 240 others are classified above chance (10%) by a clear margin."""
    prefix = pack_imagenette(tmp_path, per_class=120, resize=36, train_ratio=0.8)
    train, val = prefix + "_train.rec", prefix + "_val.rec"
    pretrained, _ = train_small_resnet(tmp_path, train, val=None, epochs=3, num_layers=8)
    done = run_script("fine-tune.py", "--pretrained-model", pretrained, "--pretrained-epoch", "3",
                      "--data-train", train, "--data-val", val, "--num-classes", "10", "--num-epochs", "1",
                      "--lr", "0.05", "--mom", "0.9", "--batch-size", "32", "--image-shape", "3,32,32",
                      "--rgb-mean", "0,0,0", "--data-nthreads", "2", "--gpus", "")
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"Epoch\[0\] Validation-accuracy=([\d.]+)", done.stderr).group(1))
    assert accuracy > 0.15, done.stderr  # chance is 0.10; runs here reach 0.26-0.29
