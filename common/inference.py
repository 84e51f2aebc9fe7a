"""Inference: a trained network made ready to score batches fast (`prepare`), used by score.py."""
from __future__ import annotations

import torch
import torch.nn as nn


def prepare(model: nn.Module, device: torch.device, dtype: torch.dtype,
            shape: tuple[int, int, int]) -> nn.Module:
    """`model` on `device`, ready for inference: it maps normalised float32 NCHW batches of `shape` to
    float32 logits, computing in `dtype`."""
    model = model.to(device, memory_format=torch.channels_last).eval()
    return model
