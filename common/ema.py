"""An exponential moving average of a network's weights and BatchNorm statistics, updated after every
training step on the device, validated and checkpointed beside the raw weights (--ema-decay)."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class WeightAverage:
    """`average = decay * average + (1 - decay) * current` for every floating-point parameter and buffer
    after each step; integer buffers (BatchNorm's batch counter) are copied. It starts equal to the network
    and lives on its device: build it once the network is where it trains."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._pairs = self._tensor_pairs(model)

    def _tensor_pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                         list[torch.Tensor], list[torch.Tensor]]:
        """(averaged floats, current floats, other averaged, other current), in state_dict order."""
        mine, theirs = self.module.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        others = [k for k, v in mine.items() if not v.is_floating_point()]
        return ([mine[k].data for k in floats], [theirs[k].data for k in floats],
                [mine[k].data for k in others], [theirs[k].data for k in others])

    @torch.no_grad()
    def update(self) -> None:
        averaged, current, averaged_other, current_other = self._pairs
        torch._foreach_lerp_(averaged, current, 1.0 - self.decay)
        for a, c in zip(averaged_other, current_other):
            a.copy_(c)
