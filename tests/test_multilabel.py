"""Multi-label data (--label-width N): records holding several class numbers read as (batch, N) labels
padded with -1; the binary cross-entropy loss; mAP and top-1-in-set accuracy counted by hand, in one process
and pooled over two; the whole path from Imagenette mosaics through training to score.py."""
import csv
import json
import math
import re

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
import torch.nn.functional as F

from common.data import DataError
from common.dist import DistInfo, free_port
from common.metrics import MultiLabelMeter, classification_loss, mean_average_precision, multi_hot
from conftest import run_script
from imagenette_recs import IMAGENETTE, needs_imagenette
from test_data import loaders, write_rec
from test_score import train_small_resnet
from tools.im2rec import read_list


# --- records to labels ---------------------------------------------------------------------------------

RECORD_LABELS = [[3.0], [0.0, 2.0], [1.0, 4.0, 2.0], [2.0, -1.0, -1.0], [4.0]]  # as packed, -1 = a list's padding


def test_several_labels_per_record_come_padded_with_minus_one(tmp_path):
    rec = write_rec(tmp_path / "m.rec", 5, label=lambda i: RECORD_LABELS[i])
    _, val = loaders(rec, "--data-val", rec, "--label-width", 3, "--num-classes", 5, "--batch-size", 5)
    (_, labels), = list(val)
    assert labels.tolist() == [[3, -1, -1], [0, 2, -1], [1, 4, 2], [2, -1, -1], [4, -1, -1]]
    # width 1 (the default) keeps the first label of each, as before
    _, val = loaders(rec, "--data-val", rec, "--num-classes", 5, "--batch-size", 5)
    (_, labels), = list(val)
    assert labels.tolist() == [3, 0, 1, 2, 4]


def test_multi_label_record_errors_name_the_record(tmp_path):
    rec = write_rec(tmp_path / "m.rec", 5, label=lambda i: RECORD_LABELS[i])
    train, _ = loaders(rec, "--label-width", 2, "--num-classes", 5)
    with pytest.raises(DataError, match=rf"{rec}: record at byte \d+ \(image id 2\): 3 labels do not fit "
                                        r"--label-width 2"):
        list(train)
    train, _ = loaders(rec, "--label-width", 3, "--num-classes", 4)
    with pytest.raises(DataError, match=r"\(image id 2\): label 4 is outside 0..3 \(--num-classes 4\)"):
        list(train)


def test_record_keys_are_positions_and_list_indexes(tmp_path):
    rec = write_rec(tmp_path / "m.rec", 5, label=lambda i: RECORD_LABELS[i])
    _, val = loaders(rec, "--data-val", rec, "--label-width", 3, "--batch-size", 2)
    keys = [k for _, _, k in val.with_keys()]
    assert [p for k in keys for p in k.positions.tolist()] == [0, 1, 2, 3, 4]
    assert [i for k in keys for i in k.ids.tolist()] == [0, 1, 2, 3, 4]  # write_rec: id = record number


# --- loss and metrics, by hand ------------------------------------------------------------------------

# 4 images, 3 classes. Scores (logits) and label sets:
SCORES = torch.tensor([[0.9, 0.2, 0.5],   # image 0, labels {0}:    top class 0, in the set
                       [0.8, 0.7, 0.5],   # image 1, labels {2}:    top class 0, not in the set
                       [0.3, 0.6, 0.5],   # image 2, labels {0, 1}: top class 1, in the set
                       [0.1, 0.4, 0.5]])  # image 3, labels {1}:    top class 2, not in the set
LABELS = torch.tensor([[0, -1], [2, -1], [0, 1], [1, -1]])
# Average precision per class: images by score, highest first (ties in image order); the precision at each
# positive is (positives so far) / (images so far).
# class 0: 0.9 (+), 0.8, 0.3 (+), 0.1          -> (1/1 + 2/3) / 2 = 5/6
# class 1: 0.7, 0.6 (+), 0.4 (+), 0.2          -> (1/2 + 2/3) / 2 = 7/12
# class 2: all 0.5: images 0, 1 (+), 2, 3      -> 1/2
MAP = (5 / 6 + 7 / 12 + 1 / 2) / 3  # 23/36
IN_SET = 2 / 4


def test_multi_hot():
    assert multi_hot(LABELS, 3).tolist() == [[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 1, 0]]


def test_mean_average_precision_by_hand_and_by_its_definition():
    assert mean_average_precision(SCORES, multi_hot(LABELS, 3)) == pytest.approx(MAP)
    # random data against a plain loop over the definition (no ties: continuous scores)
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(50, 7, generator=generator)
    targets = (torch.rand(50, 7, generator=generator) < 0.3).float()
    targets[:, 6] = 0  # a class without positives does not count
    expected = []
    for c in range(6):
        order = sorted(range(50), key=lambda i: -scores[i, c].item())
        hits, precisions = 0, []
        for rank, i in enumerate(order, 1):
            if targets[i, c]:
                hits += 1
                precisions.append(hits / rank)
        expected.append(sum(precisions) / len(precisions))
    assert mean_average_precision(scores, targets) == pytest.approx(sum(expected) / 6)


def test_the_loss_is_binary_cross_entropy_against_the_label_sets():
    by_hand = sum(-math.log(torch.sigmoid(torch.tensor(s if t else -s)).item())
                  for row, labels in zip(SCORES.tolist(), multi_hot(LABELS, 3).tolist())
                  for s, t in zip(row, labels)) / 12
    assert classification_loss(SCORES, LABELS).item() == pytest.approx(by_hand)
    single = torch.tensor([0, 2, 1, 1])  # one label per image: cross-entropy, as before
    assert classification_loss(SCORES, single).item() == pytest.approx(F.cross_entropy(SCORES, single).item())


def values(pairs) -> dict[str, float]:
    return dict(pairs)


def test_meter_windows_and_totals():
    meter = MultiLabelMeter(DistInfo())
    meter.update(SCORES[:2], LABELS[:2], classification_loss(SCORES[:2], LABELS[:2]))
    window = values(meter.close_window("ce"))
    # images 0 and 1 alone: class 0: 0.9 (+), 0.8 -> 1; class 2: 0.5, 0.5 (+) -> 1/2; class 1: no positive
    assert window["mAP"] == pytest.approx((1 + 1 / 2) / 2)
    assert window["top1_in_set_accuracy"] == pytest.approx(1 / 2)
    meter.update(SCORES[2:], LABELS[2:], classification_loss(SCORES[2:], LABELS[2:]))
    total = values(meter.total_values("ce"))
    assert total["mAP"] == pytest.approx(MAP) and total["top1_in_set_accuracy"] == pytest.approx(IN_SET)
    assert total["binary-cross-entropy"] == pytest.approx(classification_loss(SCORES, LABELS).item())
    assert meter.total_count == 4
    assert list(values(meter.total_values(""))) == ["mAP", "top1_in_set_accuracy"]


def test_top1_in_set_takes_the_top_scoring_class():
    """(On the images above the top and the bottom class happen to score the same; here they do not.)"""
    meter = MultiLabelMeter(DistInfo())
    scores, labels = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), torch.tensor([[0, 1], [1, -1]])
    meter.update(scores, labels, classification_loss(scores, labels))
    assert values(meter.total_values(""))["top1_in_set_accuracy"] == pytest.approx(1 / 2)  # image 0 only


def test_meter_state_survives_a_resume():
    meter = MultiLabelMeter(DistInfo())
    meter.update(SCORES[:1], LABELS[:1], classification_loss(SCORES[:1], LABELS[:1]))
    meter.close_window("")
    meter.update(SCORES[1:3], LABELS[1:3], classification_loss(SCORES[1:3], LABELS[1:3]))
    resumed = MultiLabelMeter(DistInfo())
    resumed.load_state_dict(meter.state_dict())
    resumed.update(SCORES[3:], LABELS[3:], classification_loss(SCORES[3:], LABELS[3:]))
    assert values(resumed.total_values("")) == pytest.approx({"mAP": MAP, "top1_in_set_accuracy": IN_SET})


def _two_process_worker(rank: int, port: int, out_dir: str) -> None:
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        meter = MultiLabelMeter(DistInfo(rank=rank, world_size=2))
        mine = slice(0, 3) if rank == 0 else slice(3, 4)  # rank 0: images 0-2, rank 1: image 3
        meter.update(SCORES[mine], LABELS[mine], classification_loss(SCORES[mine], LABELS[mine]))
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(meter.total_values(""), f)
    finally:
        tdist.destroy_process_group()


def test_two_processes_pool_their_images(tmp_path):
    """mAP ranks the images of both processes together: not the mean of each process's mAP."""
    mp.spawn(_two_process_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        pooled = values(json.loads((tmp_path / f"rank{rank}.json").read_text()))
        assert pooled == pytest.approx({"mAP": MAP, "top1_in_set_accuracy": IN_SET})


# --- the whole path on real images -------------------------------------------------------------------

@needs_imagenette
def test_multi_label_training_is_scored_the_same_by_score_py(tmp_path):
    """Imagenette mosaics (data/imagenette_mosaic.py) -> training with --label-width 4 -> score.py on the
    checkpoint reproduces the last validation's mAP and top-1-in-set accuracy, and names every label."""
    done = run_script("data/imagenette_mosaic.py", "--source", IMAGENETTE, "--output", str(tmp_path),
                      "--num-train", "48", "--num-val", "24", "--tile-size", "16")
    assert done.returncode == 0, done.stderr
    train, val = (str(tmp_path / f"mosaic_{split}.rec") for split in ("train", "val"))
    prefix, log = train_small_resnet(tmp_path, train, val=val, epochs=2, num_layers=8,
                                     extra=("--label-width", "4", "--top-k", "0", "--loss", "ce"))
    with open(log) as f:
        logged = dict(re.findall(r"Epoch\[1\] Validation-(\S+)=([\d.]+)", f.read()))
    assert set(logged) == {"mAP", "top1_in_set_accuracy", "binary-cross-entropy"}
    names = (tmp_path / "synset.txt").read_text().splitlines()
    assert open(prefix + "-synset.txt").read().splitlines() == names  # found beside --data-train

    predictions = tmp_path / "predictions.csv"
    done = run_script("score.py", "--model", prefix, "--load-epoch", "2", "--data-val", val, "--label-width", "4",
                      "--image-shape", "3,32,32", "--gpus", "", "--data-nthreads", "1",
                      "--predictions", str(predictions))
    assert done.returncode == 0, done.stderr
    for name in ("mAP", "top1_in_set_accuracy"):
        scored = float(re.search(rf"\('{name}', ([\d.e-]+)\)", done.stderr).group(1))
        assert scored == pytest.approx(float(logged[name]), abs=1e-6)
    items, _ = read_list(str(tmp_path / "mosaic_val.lst"))
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    assert [row["labels"] for row in rows] == ["|".join(names[int(c)] for c in item.labels if c >= 0)
                                               for item in items]
    probabilities = [float(row[f"probability_{k}"]) for row in rows for k in range(1, 6)]
    assert all(0 < p < 1 for p in probabilities)  # sigmoids, each class its own


def test_multi_label_options_that_need_one_label_are_refused():
    for option in ("--mixup", "--cutmix", "--label-smoothing", "--top-k"):
        done = run_script("train_imagenet.py", "--benchmark", "1", "--label-width", "3", option, "0.2"
                          if option != "--top-k" else "5", "--num-examples", "8", "--batch-size", "8", "--gpus", "")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1].endswith(
            f"{option} is for one label per image; multi-label training (--label-width 3) does not support it")


def test_synthetic_multi_label_training_runs():
    done = run_script("train_imagenet.py", "--benchmark", "1", "--label-width", "3", "--num-classes", "5",
                      "--network", "mlp", "--image-shape", "1,28,28", "--num-examples", "16", "--batch-size", "8",
                      "--num-epochs", "1", "--disp-batches", "1", "--gpus", "")
    assert done.returncode == 0, done.stderr
    assert re.search(r"Epoch\[0\] Train-mAP=[\d.]+", done.stderr), done.stderr
