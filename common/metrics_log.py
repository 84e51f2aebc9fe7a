"""A training run's metrics as a file: written as the run goes, read back by tools/parse_log.py and
tools/plot_log.py; and the one parser of MXNet's Speedometer line (`parse_speedometer_line`).

Writing: `MetricsLog` appends one JSON object per line, one per logged window of batches and one per
epoch, every line with the same keys:

    {"kind": "batch", "epoch": 0, "batch": 19, "samples_per_sec": 1234.5, "lr": 0.1,
     "train": {"accuracy": 0.52}, "validation": {}, "time": 1700000000.1, "elapsed": 3.2}

`batch` is the 0-based number of the window's last batch (B in the log line `Batch [A-B]`) and null on
epoch lines; `train` holds the window's metrics on batch lines and the epoch's on epoch lines; `time` is
the wall clock (Unix seconds) and `elapsed` the seconds spent training the epoch so far, so at an epoch
line it is MXNet's `Time cost`. Every line goes to the file in one write, and epoch lines are fsync'd. A
run killed in the middle of a write can leave its last line torn: the reader skips such a line (with a
warning), and a resumed run, which appends to the same file, first ends it with a newline so that its
own lines stay whole.

Reading: `read_epochs(path)` turns such a file, or a log of our or MXNet's log lines (docs/formats.md
section 7, with any prefix such as `INFO:root:` or a timestamp), into one `EpochSummary` per epoch. A file that cannot
be read raises `MetricsLogError`, a `common.cli.UserError`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from common.cli import UserError

logger = logging.getLogger(__name__)


class MetricsLogError(UserError):
    """A log or metrics file that cannot be read; the message names the file and what is wrong."""


def tensorboard_available() -> bool:
    """Whether `MetricsLog(..., tensorboard_dir=...)` can work here (the optional `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class _TensorBoardWriter:
    """Mirrors the records to TensorBoard. Batch windows are placed at the global batch number
    (epoch * batches_per_epoch + batch), epochs at the end of the epoch, so both share one x axis."""

    def __init__(self, log_dir: str, batches_per_epoch: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            message = "--tensorboard needs the tensorboard package: pip install tensorboard"
            raise RuntimeError(message) from None
        self.writer = SummaryWriter(log_dir)
        self.batches_per_epoch = batches_per_epoch

    def write(self, record: dict) -> None:
        if record["kind"] == "batch":
            step = record["epoch"] * self.batches_per_epoch + record["batch"] + 1
            scalars = {f"batch/{name}": value for name, value in record["train"].items()}
            scalars["batch/samples_per_sec"] = record["samples_per_sec"]
            scalars["batch/lr"] = record["lr"]
        else:
            step = (record["epoch"] + 1) * self.batches_per_epoch
            scalars = {f"train/{name}": value for name, value in record["train"].items()}
            scalars.update({f"validation/{name}": value for name, value in record["validation"].items()})
            scalars["epoch/samples_per_sec"] = record["samples_per_sec"]
            scalars["epoch/time_cost"] = record["elapsed"]
        for tag, value in scalars.items():
            if value is not None:
                self.writer.add_scalar(tag, value, global_step=step, walltime=record["time"])
        if record["kind"] == "epoch":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MetricsLog:
    """Appends the run's metrics to `path` as JSON lines (see the module docstring); `path=None` writes no
    file. With `tensorboard_dir`, the same values also go to TensorBoard, which then needs
    `batches_per_epoch` to place batch windows on its step axis."""

    def __init__(self, path: str | None, tensorboard_dir: str | None = None,
                 batches_per_epoch: int | None = None):
        self.path = path
        self._fd: int | None = None
        self._tensorboard: _TensorBoardWriter | None = None
        if tensorboard_dir is not None:
            if batches_per_epoch is None:
                raise ValueError("MetricsLog needs batches_per_epoch to write TensorBoard steps")
            self._tensorboard = _TensorBoardWriter(tensorboard_dir, batches_per_epoch)
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if _ends_in_a_torn_line(path):
                # A line torn by a kill or power cut stays on its own line instead of spoiling our first one.
                self._write_bytes(b"\n")

    def log_batch(self, epoch: int, batch: int, samples_per_sec: float, lr: float,
                  train: Mapping[str, float], elapsed: float) -> None:
        """One logged window: `batch` is the 0-based number of its last batch, `train` its metrics."""
        self._write(_record("batch", epoch, batch, samples_per_sec, lr, train, {}, elapsed), sync=False)

    def log_epoch(self, epoch: int, samples_per_sec: float | None, lr: float, train: Mapping[str, float],
                  validation: Mapping[str, float], elapsed: float) -> None:
        """The end of an epoch: its train and validation metrics (empty without validation data) and the
        seconds it trained (`Time cost`). The line is on disk when this returns."""
        self._write(_record("epoch", epoch, None, samples_per_sec, lr, train, validation, elapsed), sync=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write(self, record: dict, sync: bool) -> None:
        if self._fd is not None:
            self._write_bytes((json.dumps(record) + "\n").encode())
            if sync:
                os.fsync(self._fd)
        if self._tensorboard is not None:
            self._tensorboard.write(record)

    def _write_bytes(self, data: bytes) -> None:
        while data:  # os.write writes everything at once except when the disk is nearly full
            data = data[os.write(self._fd, data):]


def _record(kind: str, epoch: int, batch: int | None, samples_per_sec: float | None, lr: float,
            train: Mapping[str, float], validation: Mapping[str, float], elapsed: float) -> dict:
    # float() turns tensors and numpy scalars into numbers json can write.
    return {"kind": kind, "epoch": int(epoch), "batch": None if batch is None else int(batch),
            "samples_per_sec": None if samples_per_sec is None else float(samples_per_sec),
            "lr": float(lr), "train": {k: float(v) for k, v in train.items()},
            "validation": {k: float(v) for k, v in validation.items()},
            "time": time.time(), "elapsed": float(elapsed)}


def _ends_in_a_torn_line(path: str) -> bool:
    """Whether the file has something after its last newline."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


# ---------------------------------------------------------------------------------------------- reading

@dataclass
class EpochSummary:
    """What a log says about one epoch. `epoch` is 0-based, as in `Epoch[0]`."""
    epoch: int
    train: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    time_cost: float | None = None
    speeds: list[float] = field(default_factory=list)  # samples/sec of each logged window

    @property
    def mean_speed(self) -> float | None:
        return sum(self.speeds) / len(self.speeds) if self.speeds else None


# MXNet's log lines, found anywhere in a line so that `INFO:root:`, timestamp or `[host rank]` prefixes do
# not matter. Old MXNet versions wrote `Batch [B]` and `Train-accuracy=V` in batch lines; both are accepted.
_SPEEDOMETER_LINE = re.compile(r"Epoch\[(\d+)\] Batch \[(?:(\d+)-)?(\d+)\]\s+Speed: (\S+) samples/sec(.*)")
_METRIC_LINE = re.compile(r"Epoch\[(\d+)\] (Train|Validation)-([^\s=]+)=(\S+)")
_TIME_LINE = re.compile(r"Epoch\[(\d+)\] Time cost=(\S+)")
_NAME_VALUE = re.compile(r"([^\s=]+)=(\S+)")


@dataclass(frozen=True)
class SpeedometerLine:
    """MXNet's Speedometer line, `Epoch[E] Batch [A-B]\tSpeed: S samples/sec\tname=value...` (ours too)."""
    epoch: int
    first_batch: int | None  # A, the window's start (0 in an epoch's first window); None in `Batch [B]`
    batch: int  # B, the window's last batch
    samples_per_sec: float
    metrics: dict[str, float]  # the window's, `Train-` prefixes of old MXNet removed


def parse_speedometer_line(line: str) -> SpeedometerLine | None:
    """The Speedometer line in `line`, wherever it starts in it; None when there is none or one of its
    numbers does not parse (`--test-io`'s `Batch [B]\tSpeed: ...` lines, without an epoch, are not one)."""
    m = _SPEEDOMETER_LINE.search(line)
    return None if m is None else _speedometer(m)


def _speedometer(m: re.Match) -> SpeedometerLine | None:
    try:
        metrics = {name.removeprefix("Train-"): float(value) for name, value in _NAME_VALUE.findall(m[5])}
        first_batch = None if m[2] is None else int(m[2])
        return SpeedometerLine(int(m[1]), first_batch, int(m[3]), float(m[4]), metrics)
    except ValueError:  # a number that does not parse: not one of our lines
        return None


def _parse_log_line(line: str) -> dict | None:
    """A log line as a (partial) record, or None for lines that carry no metrics."""
    if m := _SPEEDOMETER_LINE.search(line):  # one whose numbers do not parse is no other line either
        speed = _speedometer(m)
        return None if speed is None else {"kind": "batch", "epoch": speed.epoch, "batch": speed.batch,
                                           "samples_per_sec": speed.samples_per_sec, "train": speed.metrics}
    try:
        if m := _METRIC_LINE.search(line):
            part = "train" if m[2] == "Train" else "validation"
            return {"kind": "epoch", "epoch": int(m[1]), part: {m[3]: float(m[4])}}
        if m := _TIME_LINE.search(line):
            return {"kind": "epoch", "epoch": int(m[1]), "elapsed": float(m[2])}
    except ValueError:  # a number that does not parse: not one of our lines
        return None
    return None


def _parse_json_line(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
        return None
    if record.get("kind") == "batch":
        whole = (isinstance(record.get("batch"), int)
                 and isinstance(record.get("samples_per_sec"), (int, float)))
    else:
        whole = (record.get("kind") == "epoch" and isinstance(record.get("train", {}), dict)
                 and isinstance(record.get("validation", {}), dict))
    return record if whole else None


def _is_metrics_file(lines: list[str]) -> bool:
    # Log lines never start with '{'; the first line of a metrics file may be one torn by a crash.
    first = next((line for line in lines if line.strip()), "")
    return first.lstrip().startswith("{")


def _records(path: str, lines: list[str]) -> Iterator[dict]:
    if not _is_metrics_file(lines):
        yield from filter(None, map(_parse_log_line, lines))
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _parse_json_line(line)
        if record is None:
            logger.warning("%s:%d: skipped a line that is not a metrics record (cut short by a crash?)",
                           path, number)
            continue
        yield record


def summarize(records: Iterable[dict]) -> list[EpochSummary]:
    """Gather records into one summary per epoch, in epoch order.

    A resumed run appends records that go back in time (an epoch, or a batch window within an epoch, before
    the previous record, or the same window again); from there on the new records replace the old ones,
    so the summaries describe the run as it finally went."""
    epochs: dict[int, EpochSummary] = {}
    last_position = (-1, -1.0)
    for record in records:
        epoch = record["epoch"]
        is_batch = record["kind"] == "batch"
        position = (epoch, record["batch"] if is_batch else math.inf)
        if position < last_position or (is_batch and position == last_position):
            for stale in [e for e in epochs if e >= epoch]:
                del epochs[stale]
        last_position = position
        summary = epochs.setdefault(epoch, EpochSummary(epoch))
        if is_batch:
            summary.speeds.append(record["samples_per_sec"])
        else:
            summary.train.update(record.get("train", {}))
            summary.validation.update(record.get("validation", {}))
            if record.get("elapsed") is not None:
                summary.time_cost = record["elapsed"]
    return [epochs[e] for e in sorted(epochs)]


def read_epochs(path: str) -> list[EpochSummary]:
    """Per-epoch summaries of a metrics file or a training log (our lines or MXNet's), told apart by
    content. Raises MetricsLogError when the file cannot be read or has no epoch in it."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise MetricsLogError(f"{path}: no such file") from None
    except OSError as e:
        raise MetricsLogError(f"{path}: cannot read it ({e.strerror})") from None
    summaries = summarize(_records(path, lines))
    if not summaries:
        raise MetricsLogError(f"{path}: no epochs in it (expected log lines such as "
                              f"'Epoch[0] Train-accuracy=0.5' or a metrics file of JSON lines)")
    return summaries
