"""Evaluation: `Meter` counts accuracy, top-k accuracy and loss across processes (`MultiLabelMeter`: mAP,
top-1-in-set accuracy and loss, for multi-label data), `classification_loss` is the loss of either kind of
label, and `evaluate` is the one loop that runs a model over batches without training it (validation in
`common/fit.py`, `score.py`).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from common import dist
from common.data import Batches, Normalizer, RecordKeys
from common.dist import DistInfo

LOSS_NAMES = {"ce": "cross-entropy", "nll_loss": "nll-loss"}  # --loss -> the name in MXNet's log lines
MULTI_LABEL_LOSS_NAME = "binary-cross-entropy"  # --loss with multi-label data


def multi_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, W) class numbers padded with -1 -> (N, num_classes) float targets, 1 for each class of an image."""
    index = torch.where(labels < 0, num_classes, labels)
    hot = torch.zeros(len(labels), num_classes + 1, device=labels.device)
    return hot.scatter_(1, index, 1.0)[:, :num_classes]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """The batch's mean loss: cross-entropy for one label per image (N,); for multi-label data (N, W), binary
    cross-entropy of each class's logit against the image's multi-hot targets, averaged over images and
    classes."""
    if labels.dim() == 1:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return F.binary_cross_entropy_with_logits(logits, multi_hot(labels, logits.shape[1]))


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """mAP: the mean over the classes that have at least one positive image of average precision, the mean
    over a class's positives of the precision among the images scored at least as high (ties in the order
    given). `scores` and `targets` are (N, classes); targets 0/1."""
    order = scores.argsort(dim=0, descending=True, stable=True)
    hits = targets.gather(0, order).double()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.float64).unsqueeze(1)
    positives = hits.sum(0)
    present = positives > 0
    if not present.any():
        return 0.0
    return float(((precision * hits).sum(0)[present] / positives[present]).mean())


def class_probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Each class's probability: its own sigmoid for multi-label models, the softmax over classes else."""
    return logits.sigmoid() if multi_label else logits.softmax(-1)


def make_meter(label_width: int, top_k: int, info: DistInfo) -> "Meter":
    """The meter for labels of this width: `Meter` for one label per image, else `MultiLabelMeter`."""
    return MultiLabelMeter(info) if label_width > 1 else Meter(top_k, info)


class Meter:
    """Accuracy, top-k accuracy and loss. Per batch it only keeps the predicted classes (one argmax or top-k),
    the labels and the batch's mean loss, without waiting for the device; a window is reduced when read."""

    def __init__(self, top_k: int, info: DistInfo):
        self.top_k, self.info = top_k, info
        self.totals = torch.zeros(3, dtype=torch.float64, device=info.device)
        self.total_count = 0
        self._start_window()

    def _start_window(self) -> None:
        self.predictions: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        """Record a batch: its logits, labels and mean loss."""
        with torch.no_grad():
            predicted = logits.topk(self.top_k, dim=1).indices if self.top_k > 1 else logits.argmax(1, keepdim=True)
        self.predictions.append(predicted)
        self.labels.append(labels)
        self.losses.append(loss.detach())

    def state_dict(self) -> dict:
        """The totals and the open window, on the CPU: what a run resumed in the middle of an epoch needs to
        log the same values."""
        return {"totals": self.totals.cpu(), "total_count": self.total_count,
                "window": [[t.cpu() for t in ts] for ts in (self.predictions, self.labels, self.losses)]}

    def load_state_dict(self, state: dict) -> None:
        self.totals.copy_(state["totals"])
        self.total_count = state["total_count"]
        device = self.totals.device
        self.predictions, self.labels, self.losses = ([t.to(device) for t in ts] for ts in state["window"])

    def first_nonfinite(self) -> int:
        """Position in the current window of the first batch whose loss was NaN or infinite, else -1."""
        if not self.losses:
            return -1
        bad = (~torch.isfinite(torch.stack(self.losses))).nonzero()
        return int(bad[0, 0]) if len(bad) else -1

    def _window_sums(self) -> tuple[torch.Tensor, int]:
        """(correct, correct within top-k, summed loss) of the current window, and its sample count."""
        if not self.labels:
            return torch.zeros_like(self.totals), 0
        labels = torch.cat(self.labels)
        hits = torch.cat(self.predictions) == labels.unsqueeze(1)
        sizes = torch.tensor([len(batch) for batch in self.labels], dtype=torch.float64, device=labels.device)
        loss_sum = (torch.stack(self.losses).double() * sizes).sum()
        return torch.stack((hits[:, 0].sum().double(), hits.any(dim=1).sum().double(), loss_sum)), len(labels)

    def _add_window(self) -> tuple[torch.Tensor, int]:
        """Add the current window into the totals, start a new one, and return the window's sums and count."""
        sums, count = self._window_sums()
        self.totals += sums
        self.total_count += count
        self._start_window()
        return sums, count

    def close_window(self, loss_name: str) -> list[tuple[str, float]]:
        """The current window's values; the window then counts into the totals and a new one starts."""
        return self._named(*self._add_window(), loss_name)

    def total_values(self, loss_name: str) -> list[tuple[str, float]]:
        """The values over everything recorded, in every process."""
        self._add_window()
        return self._named(self.totals, self.total_count, loss_name)

    def _named(self, sums: torch.Tensor, count: int, loss_name: str) -> list[tuple[str, float]]:
        """[(name, value)] over all processes, in MXNet's order: accuracy, top_k_accuracy_K, then the loss
        when asked."""
        with dist.collective("the metric all-reduce", self.info):
            sums = dist.all_reduce_sum(torch.cat((sums, sums.new_tensor([count]))), self.info)
        means = (sums[:3] / max(sums[3].item(), 1)).tolist()
        out = [("accuracy", means[0])]
        if self.top_k > 1:
            out.append((f"top_k_accuracy_{self.top_k}", means[1]))
        if loss_name:
            out.append((LOSS_NAMES[loss_name], means[2]))
        return out


class MultiLabelMeter(Meter):
    """mAP, top-1-in-set accuracy (the top-scoring class is one of the image's) and loss, for multi-label
    batches (labels (N, W), padded with -1). Average precision ranks all the images of a class, so the
    epoch's scores are kept, on the CPU (4 bytes per image and class), and every process's are gathered
    when the values are read."""

    def __init__(self, info: DistInfo):
        super().__init__(1, info)
        self.kept: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        self.predictions.append(logits.detach().float())
        self.labels.append(labels)
        self.losses.append(loss.detach())

    def _add_window(self) -> tuple[list[torch.Tensor], ...]:
        """Move the current window into the kept scores, start a new one; return the window's
        (scores, labels, losses weighted by batch size)."""
        window = ([t.cpu() for t in self.predictions], [t.cpu() for t in self.labels],
                  [(loss.double().cpu() * len(labels)).reshape(1) for loss, labels in zip(self.losses, self.labels)])
        for kept, part in zip(self.kept, window):
            kept.extend(part)
        self.total_count += sum(len(labels) for labels in self.labels)
        self._start_window()
        return window

    def close_window(self, loss_name: str) -> list[tuple[str, float]]:
        return self._named(self._add_window(), loss_name)

    def total_values(self, loss_name: str) -> list[tuple[str, float]]:
        self._add_window()
        return self._named(self.kept, loss_name)

    def _named(self, parts: tuple[list[torch.Tensor], ...], loss_name: str) -> list[tuple[str, float]]:
        """[(name, value)] over the given (scores, labels, losses) of every process: mAP,
        top1_in_set_accuracy, then the loss when asked."""
        with dist.collective("the metric gather", self.info):
            everyone = dist.gather_concatenated(list(parts), self.info)
        if everyone is None:
            out = [("mAP", 0.0), ("top1_in_set_accuracy", 0.0)]
            return out + [(MULTI_LABEL_LOSS_NAME, 0.0)] if loss_name else out
        scores, labels, losses = everyone
        targets = multi_hot(labels, scores.shape[1])
        in_set = targets.gather(1, scores.argmax(1, keepdim=True)).mean().item()
        out = [("mAP", mean_average_precision(scores, targets)), ("top1_in_set_accuracy", in_set)]
        if loss_name:
            out.append((MULTI_LABEL_LOSS_NAME, losses.sum().item() / len(labels)))
        return out

    def state_dict(self) -> dict:
        return {"kept": [torch.cat(p) if p else None for p in self.kept], "total_count": self.total_count,
                "window": [[t.cpu() for t in ts] for ts in (self.predictions, self.labels, self.losses)]}

    def load_state_dict(self, state: dict) -> None:
        self.kept = tuple([t] if t is not None else [] for t in state["kept"])
        self.total_count = state["total_count"]
        device = self.totals.device
        self.predictions, self.labels, self.losses = ([t.to(device) for t in ts] for ts in state["window"])


CONFUSION_PLOT_CLASSES = 50  # more classes than this, and a confusion matrix plot shows the most confused


class ConfusionCounts:
    """How many images of each true class (row) were predicted as each class (column), in this process."""

    def __init__(self, num_classes: int, device: torch.device):
        self.num_classes = num_classes
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        cells = torch.bincount(labels * self.num_classes + predicted, minlength=self.num_classes ** 2)
        self.counts += cells.view(self.num_classes, self.num_classes)


def most_confused_classes(counts: torch.Tensor, limit: int) -> list[int]:
    """All classes when there are at most `limit`; else the `limit` classes met first going down the list of
    (true, predicted) pairs by their share of the true class's images, largest first, in class order."""
    if len(counts) <= limit:
        return list(range(len(counts)))
    rates = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)
    rates.fill_diagonal_(-1)
    chosen: set[int] = set()
    for cell in rates.flatten().argsort(descending=True, stable=True).tolist():
        for c in divmod(cell, len(counts)):
            if len(chosen) < limit:
                chosen.add(c)
        if len(chosen) >= limit:
            break
    return sorted(chosen)


def format_metrics(pairs: Iterable[tuple[str, float]], sep: str = "\t") -> str:
    """`name=value` pairs as MXNet's log lines write them."""
    return sep.join(f"{name}={value:f}" for name, value in pairs)


# Called by `evaluate` with each batch's float32 logits, labels and record keys (score.py's outputs).
BatchObserver = Callable[[torch.Tensor, torch.Tensor, RecordKeys], None]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, normalize: Normalizer, info: DistInfo, *, top_k: int,
             label_width: int = 1, autocast: Callable[[], ContextManager] = contextlib.nullcontext,
             desc: str = "evaluate", observe: BatchObserver | None = None) -> Meter:
    """Run `model` in eval mode over this process's `batches`; returns the meter (its totals reduce over
    every process when read). With `observe`, `batches` must be record batches: each batch's logits, labels
    and record keys are handed to it too."""
    meter = make_meter(label_width, top_k, info)
    model.eval()
    stream = batches.with_keys() if observe else ((images, labels, None) for images, labels in batches)
    for images, labels, keys in tqdm(stream, total=len(batches), desc=desc, leave=False,
                                     disable=None if info.is_primary else True):
        images = normalize(images)
        labels = labels.to(info.device, non_blocking=True)
        with autocast():
            logits = model(images).float()
        meter.update(logits, labels, classification_loss(logits, labels))
        if observe:
            observe(logits, labels, keys)
    return meter
