"""Evaluation: `Meter` counts accuracy, top-k accuracy and loss across processes, and `evaluate` is the one
loop that runs a model over batches without training it (validation in `common/fit.py`, `score.py`).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from common import dist
from common.data import Batches, Normalizer
from common.dist import DistInfo

LOSS_NAMES = {"ce": "cross-entropy", "nll_loss": "nll-loss"}  # --loss -> the name in MXNet's log lines


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


def format_metrics(pairs: Iterable[tuple[str, float]], sep: str = "\t") -> str:
    """`name=value` pairs as MXNet's log lines write them."""
    return sep.join(f"{name}={value:f}" for name, value in pairs)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, normalize: Normalizer, info: DistInfo, *, top_k: int,
             autocast: Callable[[], ContextManager] = contextlib.nullcontext, desc: str = "evaluate") -> Meter:
    """Run `model` in eval mode over this process's `batches`; returns the meter (its totals reduce over
    every process when read)."""
    meter = Meter(top_k, info)
    model.eval()
    for images, labels in tqdm(batches, desc=desc, leave=False, disable=None if info.is_primary else True):
        images = normalize(images)
        labels = labels.to(info.device, non_blocking=True)
        with autocast():
            logits = model(images)
        meter.update(logits, labels, F.cross_entropy(logits.float(), labels))
    return meter
