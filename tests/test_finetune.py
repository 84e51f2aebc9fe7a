"""fine-tune.py: MXNet's defaults, the classifier swap, and fine-tuning on Imagenette on the CPU."""
import importlib
import shutil

import numpy as np
import pytest
import torch

from common import checkpoint, fit
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


def test_the_new_classifier_follows_the_seed(tmp_path, monkeypatch):
    write_checkpoint(tmp_path / "mx", cifar_resnet_v2_graph(3, 7), random_arrays(
        create_model("resnet", 7, num_layers=20, image_shape="3,28,28")), epoch=0)
    started = []
    monkeypatch.setattr(fit, "fit", lambda args, model, *_, **__: started.append(model.fc1.weight.clone()) or {})
    for global_seed, seed in ((1, 5), (2, 5), (1, 6)):
        torch.manual_seed(global_seed)  # what ran before in the process must not matter
        fine_tune.main(fine_tune.get_args_parser().parse_args([
            "--pretrained-model", str(tmp_path / "mx"), "--pretrained-epoch", "0", "--num-classes", "10",
            "--image-shape", "3,28,28", "--seed", str(seed)]))
    assert torch.equal(started[0], started[1]) and not torch.equal(started[0], started[2])


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


def pack_imagenette_three_ways(folder, per_class: int, resize: int, pretrain_ratio: float,
                               train_ratio: float) -> tuple[str, str, str]:
    """The first `per_class` Imagenette images of each class, shuffled by im2rec and cut into three disjoint
    record files: (pre-training, fine-tuning, validation) = im2rec's (_test, _train, _val)."""
    prefix = pack_imagenette(folder, per_class, resize, train_ratio=train_ratio, test_ratio=pretrain_ratio)
    return prefix + "_test.rec", prefix + "_train.rec", prefix + "_val.rec"


def fine_tune_accuracy(start: str, epoch: int, train: str, val: str, seed: int) -> float:
    """fine-tune.py from checkpoint `start`, epoch `epoch`: 3 epochs on `train`; the last validation
    accuracy."""
    args = fine_tune.get_args_parser().parse_args([
        "--pretrained-model", start, "--pretrained-epoch", str(epoch), "--data-train", train,
        "--data-val", val, "--num-classes", "10", "--num-epochs", "3", "--lr", "0.05", "--mom", "0.9",
        "--batch-size", "16", "--image-shape", "3,32,32", "--rgb-mean", "0,0,0", "--data-nthreads", "2",
        "--gpus", "", "--seed", str(seed)])
    return fine_tune.main(args)["validation-accuracy"]


@needs_imagenette
@pytest.mark.slow
def test_fine_tuning_from_pretrained_beats_training_from_scratch(tmp_path):
    """Transfer: a ResNet-8 pre-trained on 1,200 Imagenette images (4 epochs at 32x32), then fine-tuned with a
    new classifier on 200 other images (3 epochs), classifies 600 further images clearly better than the same
    network fine-tuned the same way (fine-tune.py, same options and seed) from freshly initialised weights.
    Measured over 14 runs (this test with seeds 0-5, and seeds 0-7 with one thread, whose numerics differ):
    pre-trained start 0.315-0.380, fresh start 0.135-0.265, the difference 0.100-0.202 (mean 0.146, sd
    0.034); the margin asked, 0.05, is nearly 3 sd below the mean. Chance is 0.10; the old version of this
    test (above 0.15 after pre-training and fine-tuning on the same images) passed even when fine-tune.py
    threw the pre-trained weights away."""
    pretrain, train, val = pack_imagenette_three_ways(tmp_path, per_class=200, resize=36, pretrain_ratio=0.6,
                                                      train_ratio=0.1)
    seed = 0
    pretrained, _ = train_small_resnet(tmp_path, pretrain, val=None, epochs=4, num_layers=8, batch_size=32,
                                       seed=seed)
    # the same network (the pre-trained checkpoint's symbol file) with weights freshly initialised as fit.py
    # initialises them, saved as epoch 0
    scratch = str(tmp_path / "scratch")
    shutil.copy(checkpoint.symbol_path(pretrained), checkpoint.symbol_path(scratch))
    model, _ = load_model(pretrained, 4)
    torch.manual_seed(seed)
    fit.initialize(model, "default", "resnet")
    checkpoint.save_params(scratch, 0, model)

    transferred = fine_tune_accuracy(pretrained, 4, train, val, seed)
    from_scratch = fine_tune_accuracy(scratch, 0, train, val, seed)
    assert transferred > from_scratch + 0.05 and transferred > 0.25, (transferred, from_scratch)
