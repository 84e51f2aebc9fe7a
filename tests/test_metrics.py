"""common/metrics.py against values counted by hand: accuracy, top-2 accuracy and cross-entropy of logits
written out below, a partial last batch, a window against the totals, two gloo processes holding different
numbers of samples, and `evaluate` on a model whose weights are set by hand.

Every logit row is the natural log of a probability vector whose entries are 1/2, 1/4, 1/8 and 1/8 in some
order. Such a row sums to 1 after exp, so softmax gives back the probabilities and the cross-entropy of a
sample is -ln p[label]: ln 2, 2 ln 2 or 3 ln 2. The losses below are written as multiples of LN2."""
import json
import math

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from common.data import Normalizer, TensorBatches
from common.dist import DistInfo, free_port
from common.metrics import Meter, evaluate, format_metrics

LN2 = math.log(2)
H, Q, E = 1 / 2, 1 / 4, 1 / 8  # a half, a quarter, an eighth


def batch(rows: list[list[float]], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, labels, mean cross-entropy) as a training step hands them to Meter.update."""
    logits = torch.tensor(rows, dtype=torch.float64).log()
    labels = torch.tensor(labels)
    return logits, labels, F.cross_entropy(logits, labels)


# Batch A, 3 samples of 4 classes:       top-1  top-2      correct?  in top-2?  loss
A = batch([[H, Q, E, E],  # label 0:       0     {0, 1}        yes       yes      -ln 1/2 = 1 ln2
           [E, H, Q, E],  # label 2:       1     {1, 2}        no        yes      -ln 1/4 = 2 ln2
           [Q, E, E, H]],  # label 1:      3     {3, 0}        no        no       -ln 1/8 = 3 ln2
          [0, 2, 1])
# -> 1 correct, 2 in top-2, loss sum 6 ln2, batch mean 2 ln2
# Batch B, the partial last batch, 1 sample:
B = batch([[E, E, H, Q]],  # label 2:      2     {2, 3}        yes       yes      1 ln2
          [2])
# -> 1 correct, 1 in top-2, loss sum 1 ln2
# Batches C1 and C2, 1 sample each (the second process's data in the distributed test):
C1 = batch([[H, E, Q, E]],  # label 0:     0     {0, 2}        yes       yes      1 ln2
           [0])
C2 = batch([[E, H, E, Q]],  # label 1:     1     {1, 3}        yes       yes      1 ln2
           [1])
# -> C1 + C2: 2 correct, 2 in top-2, loss sum 2 ln2


def values(pairs) -> dict[str, float]:
    return dict(pairs)


def test_the_hand_counted_losses_are_what_cross_entropy_gives():
    """The paper arithmetic above, checked once, so that the tests below test the meter, not the table."""
    assert A[2].item() == pytest.approx(6 * LN2 / 3)
    assert B[2].item() == pytest.approx(LN2)
    assert C1[2].item() == pytest.approx(LN2) and C2[2].item() == pytest.approx(LN2)


def test_windows_and_totals_with_a_partial_last_batch():
    meter = Meter(top_k=2, info=DistInfo())
    meter.update(*A)
    # window = batch A: 1/3 correct, 2/3 in top-2, loss 6 ln2 / 3 samples = 2 ln2
    assert values(meter.close_window("ce")) == pytest.approx(
        {"accuracy": 1 / 3, "top_k_accuracy_2": 2 / 3, "cross-entropy": 2 * LN2})
    meter.update(*B)
    # window = batch B alone (A went into the totals): 1/1 correct, 1/1 in top-2, loss ln2
    assert values(meter.close_window("ce")) == pytest.approx(
        {"accuracy": 1.0, "top_k_accuracy_2": 1.0, "cross-entropy": LN2})
    # totals over A and B, 4 samples: (1 + 1)/4 correct, (2 + 1)/4 in top-2, loss (6 + 1) ln2 / 4 = 1.75 ln2.
    # Averaging the two batch means instead would give (2 + 1)/2 ln2 = 1.5 ln2.
    total = meter.total_values("ce")
    assert [name for name, _ in total] == ["accuracy", "top_k_accuracy_2", "cross-entropy"]  # MXNet's order
    assert values(total) == pytest.approx(
        {"accuracy": 0.5, "top_k_accuracy_2": 0.75, "cross-entropy": 1.75 * LN2})
    assert meter.total_count == 4
    # reading the totals again changes nothing
    assert values(meter.total_values("ce")) == pytest.approx(values(total))


def test_a_window_of_unequal_batches_weights_the_loss_by_samples_totals_include_the_open_window():
    meter = Meter(top_k=1, info=DistInfo())
    meter.update(*A)
    meter.update(*B)
    # one window of batches of 3 and 1 samples: 2/4 correct; loss (6 + 1) ln2 / 4 = 1.75 ln2 (the mean of the
    # two batch means, (2 + 1)/2 ln2 = 1.5 ln2, would be wrong); no top-k with top_k=1
    window = meter.close_window("ce")
    assert [name for name, _ in window] == ["accuracy", "cross-entropy"]
    assert values(window) == pytest.approx({"accuracy": 0.5, "cross-entropy": 1.75 * LN2})
    meter.update(*C1)
    meter.update(*C2)  # still in the open window when the totals are read
    # A + B + C1 + C2, 6 samples: (1 + 1 + 1 + 1)/6 correct; loss (6 + 1 + 1 + 1) ln2 / 6 = 1.5 ln2
    total = meter.total_values("nll_loss")
    assert [name for name, _ in total] == ["accuracy", "nll-loss"]
    assert values(total) == pytest.approx({"accuracy": 4 / 6, "nll-loss": 1.5 * LN2})
    assert values(meter.total_values("")) == pytest.approx({"accuracy": 4 / 6})
    assert format_metrics([("accuracy", 4 / 6), ("cross-entropy", 1.5 * LN2)]) == \
        "accuracy=0.666667\tcross-entropy=1.039721"


def test_first_nonfinite_names_the_batch_of_the_window():
    meter = Meter(top_k=1, info=DistInfo())
    meter.update(*A)
    assert meter.first_nonfinite() == -1
    meter.update(A[0], A[1], torch.tensor(float("nan")))
    meter.update(*B)
    assert meter.first_nonfinite() == 1
    meter.close_window("ce")
    meter.update(*B)
    meter.update(B[0], B[1], torch.tensor(float("inf")))
    assert meter.first_nonfinite() == 1


def _two_process_worker(rank: int, port: int, out_dir: str) -> None:
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        meter = Meter(top_k=2, info=DistInfo(rank=rank, world_size=2))
        first, second = (A, B) if rank == 0 else (C1, C2)  # rank 0: 3 + 1 samples; rank 1: 1 + 1
        meter.update(*first)
        window1 = meter.close_window("ce")
        meter.update(*second)
        window2 = meter.close_window("ce")
        total = meter.total_values("ce")
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"window1": window1, "window2": window2, "total": total, "count": meter.total_count}, f)
    finally:
        tdist.destroy_process_group()


def test_two_processes_with_different_sample_counts_pool_their_samples(tmp_path):
    mp.spawn(_two_process_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["count"] for r in results] == [4, 2]  # each process counts its own samples
    for r in results:  # every process reads the same pooled values
        # window 1 = A (rank 0: 1 correct, 2 in top-2, 6 ln2, 3 samples) + C1 (rank 1: 1, 1,
        # 1 ln2, 1 sample): 2/4 correct, 3/4 in top-2, 7 ln2 / 4. (The mean of the two ranks' means: 2/3.)
        assert values(r["window1"]) == pytest.approx(
            {"accuracy": 2 / 4, "top_k_accuracy_2": 3 / 4, "cross-entropy": 7 / 4 * LN2})
        # window 2 = B (1, 1, 1 ln2, 1 sample) + C2 (1, 1, 1 ln2, 1 sample)
        assert values(r["window2"]) == pytest.approx(
            {"accuracy": 1.0, "top_k_accuracy_2": 1.0, "cross-entropy": LN2})
        # totals: rank 0 has 2 correct, 3 in top-2, loss 7 ln2 over 4 samples; rank 1 has 2, 2, 2 ln2 over 2.
        # Pooled: 4/6 correct, 5/6 in top-2, 9 ln2 / 6 = 1.5 ln2. (The mean of the ranks' means would be
        # 3/4, 7/8 and 1.375 ln2.)
        assert values(r["total"]) == pytest.approx(
            {"accuracy": 4 / 6, "top_k_accuracy_2": 5 / 6, "cross-entropy": 1.5 * LN2})


class LookupModel(nn.Module):
    """4 input pixels -> 4 logits: a one-hot image with pixel j lit gives column j of the weight. A dropout
    layer in front would blank inputs if the model were left in training mode."""

    def __init__(self, columns: list[list[float]]):
        super().__init__()
        self.drop = nn.Dropout(0.9)
        self.fc = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(columns).log().T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x.flatten(1)))


def test_evaluate_a_hand_set_model_over_a_partial_last_batch():
    model = LookupModel([[H, Q, E, E], [E, H, Q, E], [Q, E, E, H], [E, E, H, Q]])  # columns 0..3
    model.train()  # evaluate must switch it to eval mode
    lit = [0, 1, 2, 3, 1]  # which pixel each image lights, with value 2 (normalised by std 2 to 1)
    labels = [0, 2, 1, 2, 1]
    images = torch.zeros(5, 1, 1, 4, dtype=torch.uint8)
    images[torch.arange(5), 0, 0, torch.tensor(lit)] = 2
    # image  column            label  top-1  top-2    correct?  in top-2?  loss
    #   0    [1/2 1/4 1/8 1/8]   0      0    {0,1}      yes       yes      1 ln2
    #   1    [1/8 1/2 1/4 1/8]   2      1    {1,2}      no        yes      2 ln2
    #   2    [1/4 1/8 1/8 1/2]   1      3    {3,0}      no        no       3 ln2
    #   3    [1/8 1/8 1/2 1/4]   2      2    {2,3}      yes       yes      1 ln2
    #   4    [1/8 1/2 1/4 1/8]   1      1    {1,2}      yes       yes      1 ln2
    # batches of 3 and 2: 3/5 correct, 4/5 in top-2, loss (1+2+3+1+1) ln2 / 5 = 1.6 ln2
    # (the mean of the batch means, (2 ln2 + 1 ln2)/2 = 1.5 ln2, would be wrong)
    batches = TensorBatches(images, torch.tensor(labels), 3, shuffle=False, mean=(0,), std=(2,))
    info = DistInfo()
    meter = evaluate(model, batches, Normalizer((0,), (2,), info.device), info, top_k=2)
    assert not model.training
    assert values(meter.total_values("ce")) == pytest.approx(
        {"accuracy": 3 / 5, "top_k_accuracy_2": 4 / 5, "cross-entropy": 1.6 * LN2})
    assert meter.total_count == 5


def test_confusion_counts_and_the_most_confused_classes(tmp_path):
    from common.metrics import ConfusionCounts, most_confused_classes
    from common.plotting import save_heat_map
    counts = ConfusionCounts(60, torch.device("cpu"))
    labels = torch.arange(60).repeat(10)                 # 10 images of each of 60 classes, all right ...
    predicted = labels.clone()
    predicted[labels == 7] = 3                           # ... but class 7 is always taken for 3 (rate 1.0),
    predicted[(labels == 40).nonzero()[:5, 0]] = 41      # half of class 40 for 41 (0.5),
    predicted[(labels == 12).nonzero()[:1, 0]] = 50      # one of class 12 for 50 (0.1)
    counts.update(predicted, labels)
    assert counts.counts.sum() == 600 and counts.counts[7, 3] == 10 and counts.counts[40, 40] == 5
    assert most_confused_classes(counts.counts, 60) == list(range(60))  # all of them fit
    assert most_confused_classes(counts.counts, 4) == [3, 7, 40, 41]      # the pairs by rate, largest first
    assert most_confused_classes(counts.counts, 5) == [3, 7, 12, 40, 41]  # the next pair gives one class more
    shown = most_confused_classes(counts.counts, 5)
    rows = counts.counts.double() / counts.counts.sum(1, keepdim=True)
    save_heat_map(rows[shown][:, shown].numpy(), [f"class {c}" for c in shown], str(tmp_path / "cm.png"),
                  "5 of 60", xlabel="predicted", ylabel="true")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
