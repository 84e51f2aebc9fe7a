"""Mixup and CutMix: each training batch blended with itself in reverse order, and the loss against the
blended (soft) targets, label smoothing included.

Zhang et al., "mixup: Beyond Empirical Risk Minimization" (2018); Yun et al., "CutMix" (2019). As in timm,
an image is mixed with the image at the mirrored position of its batch (`flip(0)`), which costs no gather.
The draws (mixup or CutMix, the ratio, the box) come from a generator seeded by (seed, step, rank), so a
resumed run mixes its batches as the uninterrupted run did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class MixedBatch:
    """Images blended as `lam * images + (1 - lam) * images.flip(0)` (mixup) or with a pasted box (CutMix,
    `lam` = the share of the image that stays its own); the labels of both sides."""
    images: torch.Tensor
    labels: torch.Tensor
    labels_flipped: torch.Tensor
    lam: float

    @property
    def dominant_labels(self) -> torch.Tensor:
        """The label each mixed image mostly shows, what training accuracy is counted against."""
        return self.labels if self.lam >= 0.5 else self.labels_flipped

    def targets(self, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
        """Per image, the class probabilities it is trained towards: the two one-hot labels weighted by
        `lam`, then label smoothing (1 - smoothing on them, smoothing spread over all classes)."""
        a = F.one_hot(self.labels, num_classes).float()
        b = F.one_hot(self.labels_flipped, num_classes).float()
        mixed = a.mul_(self.lam).add_(b, alpha=1.0 - self.lam)
        return mixed.mul_(1.0 - smoothing).add_(smoothing / num_classes)


def mix(images: torch.Tensor, labels: torch.Tensor, mixup_alpha: float, cutmix_alpha: float,
        rng: np.random.Generator) -> MixedBatch:
    """Mix a normalised NCHW batch: with mixup or CutMix (one of the two, evenly, when both alphas are
    positive), the ratio drawn from Beta(alpha, alpha)."""
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(rng.beta(alpha, alpha))
    flipped = images.flip(0)
    if use_cutmix:
        height, width = images.shape[-2:]
        top, bottom, left, right = _cutmix_box(height, width, lam, rng)
        mixed = images.clone()
        mixed[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)  # the box as clipped to the image
    else:
        mixed = images.mul(lam).add_(flipped, alpha=1.0 - lam)
    return MixedBatch(mixed, labels, labels.flip(0), lam)


def _cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box of about (1 - lam) of the image, centred uniformly at random and clipped to the image."""
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    return (max(cy - box_h // 2, 0), min(cy + box_h // 2, height),
            max(cx - box_w // 2, 0), min(cx + box_w // 2, width))


def batch_rng(seed: int, step: int, rank: int) -> np.random.Generator:
    """The generator for one batch's draws: a pure function of (seed, step, rank)."""
    return np.random.default_rng((seed % 2**63, step, rank))

