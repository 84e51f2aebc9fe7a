"""When a training run checkpoints in the middle of an epoch and when it stops: the --checkpoint-interval
timer, the SIGTERM/SIGUSR1 that schedulers send before killing a job, and the processes' agreement on both.
"""
from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import torch

from common import dist
from common.dist import DistInfo

log = logging.getLogger("fit")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request after saving; the same command with --resume continues
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """Raised out of the training loop once the checkpoint asked for by a stop signal is written."""


class Interruptions:
    """Use as a context manager around training: while inside, SIGTERM and SIGUSR1 only raise a flag, and
    the loop asks `poll()` after each step whether to checkpoint now and whether to stop after it.

    Alone, a process polls after every step. Several processes agree every `agree_every` steps (the
    Speedometer window), all-reducing their flags, so that they checkpoint and stop at the same step and
    none waits for a peer that has left."""

    def __init__(self, interval_minutes: float, info: DistInfo, agree_every: int):
        self.interval = interval_minutes * 60
        self.info = info
        self.agree_every = agree_every if info.distributed else 1
        self.signalled: int | None = None
        self.last_checkpoint = time.monotonic()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Interruptions":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = signum

    def checkpointed(self) -> None:
        """A checkpoint was just written: the interval counts from now."""
        self.last_checkpoint = time.monotonic()

    def poll(self, step: int) -> tuple[bool, bool]:
        """(write a mid-epoch checkpoint now, then stop), the same answer in every process."""
        if step % self.agree_every:
            return False, False
        stop = self.signalled is not None
        due = stop or (self.interval > 0 and time.monotonic() - self.last_checkpoint >= self.interval)
        if self.info.distributed:
            flags = torch.tensor([float(stop), float(due)], device=self.info.device)
            with dist.collective("the stop and checkpoint agreement", self.info):
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            stop, due = bool(flags[0]), bool(flags[1])
        if stop and self.info.is_primary:
            name = signal.Signals(self.signalled).name if self.signalled else "a peer's stop signal"
            log.info("stopping on %s: saving a checkpoint first", name)
        return due, stop
