import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from common.cli import UserError
from common.metrics_log import (MetricsLog, MetricsLogError, parse_speedometer_line, read_epochs,
                                tensorboard_available)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Writes metrics as fast as it can until it is killed. 100 metrics make lines of ~3 KB, most of which cross
# a page of the file: a write that a kill can cut short, leaving the last line torn.
WRITER = """
import sys
from common.metrics_log import MetricsLog
metrics = {f"metric_{i}": 0.123456789 for i in range(100)}
log = MetricsLog(sys.argv[1])
epoch = 0
while True:
    for batch in range(19, 1000, 20):
        log.log_batch(epoch, batch, 1000.0, 0.1, metrics, elapsed=1.0)
    log.log_epoch(epoch, 1000.0, 0.1, metrics, {"accuracy": 0.5}, elapsed=50.0)
    epoch += 1
"""


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_sigkilled_writer_leaves_whole_lines_and_a_resumed_writer_appends(tmp_path, caplog):
    path = str(tmp_path / "metrics.jsonl")
    child = subprocess.Popen([sys.executable, "-c", WRITER, path], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": REPO})
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(path) or os.path.getsize(path) < 1_000_000:  # a few epochs in
            assert child.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer wrote too little"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with open(path, "rb") as f:
        *lines, tail = f.read().split(b"\n")
    assert tail == b"" or tail.startswith(b"{")  # nothing, or the start of the line the kill cut short
    records = [json.loads(line) for line in lines]  # every complete line parses
    positions = [(r["epoch"], r["batch"]) for r in records]
    expected = [(e, b) for e in range(positions[-1][0] + 1) for b in [*range(19, 1000, 20), None]]
    assert positions == expected[:len(positions)]  # nothing lost or doubled before the kill
    assert len(records[-1]["train"]) == 100

    # A resumed run appends to the same file, starting again at the epoch that was cut short; a torn
    # last line stays on its own line, which the reader skips.
    killed_epoch = records[-1]["epoch"]
    with MetricsLog(path) as log:
        log.log_batch(killed_epoch, 19, 2000.0, 0.1, {"accuracy": 0.5}, elapsed=1.0)
        log.log_epoch(killed_epoch, 2000.0, 0.1, {"accuracy": 0.6}, {"accuracy": 0.7}, elapsed=9.0)
    with open(path, "rb") as f:
        after = f.read().split(b"\n")
    assert after[:len(records)] == lines  # kept as they were
    assert after[len(records):] == [tail] * bool(tail) + [after[-3], after[-2], b""]
    assert [json.loads(line)["kind"] for line in after[-3:-1]] == ["batch", "epoch"]
    summaries = read_epochs(path)
    assert [s.epoch for s in summaries] == list(range(killed_epoch + 1))
    last = summaries[-1]
    assert (last.epoch, last.speeds, last.train, last.validation, last.time_cost) == (
        killed_epoch, [2000.0], {"accuracy": 0.6}, {"accuracy": 0.7}, 9.0)
    assert ("skipped a line" in caplog.text) == bool(tail)


def test_records_have_one_schema_and_plain_numbers(tmp_path):
    path = str(tmp_path / "run" / "metrics.jsonl")  # the folder is created
    with MetricsLog(path) as log:
        log.log_batch(0, 19, np.float32(100.5), torch.tensor(0.1), {"accuracy": torch.tensor(0.25)},
                      elapsed=1)
        log.log_epoch(0, None, 0.1, {"accuracy": np.float64(0.5)}, {}, elapsed=np.float32(3.0))
    batch, epoch = read_lines(path)
    keys = ["kind", "epoch", "batch", "samples_per_sec", "lr", "train", "validation", "time", "elapsed"]
    assert list(batch) == list(epoch) == keys
    assert batch["kind"] == "batch" and batch["batch"] == 19 and batch["train"] == {"accuracy": 0.25}
    assert epoch["kind"] == "epoch" and epoch["batch"] is None and epoch["samples_per_sec"] is None
    assert abs(epoch["time"] - time.time()) < 60 and epoch["elapsed"] == 3.0


def test_line_torn_by_a_crash_is_skipped_and_kept_apart(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    torn = '{"kind": "batch", "epo'  # what a power cut can leave
    path.write_text(torn)
    with MetricsLog(str(path)) as log:
        log.log_epoch(0, 10.0, 0.1, {"accuracy": 0.5}, {}, elapsed=1.0)
    with open(path, "a") as f:
        f.write(torn)
    with MetricsLog(str(path)) as log:
        log.log_epoch(1, 10.0, 0.1, {"accuracy": 0.6}, {}, elapsed=1.0)
    assert path.read_text().splitlines()[::2] == [torn, torn]
    assert [s.train["accuracy"] for s in read_epochs(str(path))] == [0.5, 0.6]
    assert "metrics.jsonl:1: skipped" in caplog.text and "metrics.jsonl:3: skipped" in caplog.text


def test_log_lines_in_every_known_dress(tmp_path):
    lines = [
        "INFO:root:Epoch[0] Batch [0-20]\tSpeed: 100.00 samples/sec\taccuracy=0.5\tcross-entropy=1.25",
        "2017-01-01 12:00:00,000 Epoch[0] Batch [20-40]\tSpeed: 300.00 samples/sec\taccuracy=0.6",
        "Epoch[0] Batch [60]  Speed: 200.00 samples/sec  Train-accuracy=0.7",  # old MXNet, spaces for tabs
        "INFO:root:Epoch[0] Train-cross-entropy=nan",
        "2017-01-01 12:00:01,000 INFO:root:Epoch[0] Time cost=12.5",
        "Epoch[0] Validation-accuracy=0.75",
        "Batch [20]\tSpeed: 999.00 samples/sec",  # --test-io: no epoch
        "Epoch[0] Train-accuracy=not-a-number",
    ]
    path = tmp_path / "train.log"
    path.write_text("\n".join(lines) + "\n")
    [summary] = read_epochs(str(path))
    assert summary.speeds == [100.0, 300.0, 200.0] and summary.mean_speed == 200.0
    assert np.isnan(summary.train["cross-entropy"]) and "accuracy" not in summary.train
    assert (summary.validation, summary.time_cost) == ({"accuracy": 0.75}, 12.5)


def test_speedometer_lines_are_parsed_in_one_place():
    ours = "2026-11-24 22:44:33,891 Node[0] Epoch[2] Batch [20-40]\tSpeed: 3003.33 samples/sec\taccuracy=0.9"
    speed = parse_speedometer_line(ours)
    assert (speed.epoch, speed.first_batch, speed.batch, speed.samples_per_sec, speed.metrics) == (
        2, 20, 40, 3003.33, {"accuracy": 0.9})
    old = parse_speedometer_line("INFO:root:Epoch[0] Batch [60]  Speed: 200.0 samples/sec  Train-accuracy=0.7")
    assert (old.first_batch, old.batch, old.metrics) == (None, 60, {"accuracy": 0.7})
    assert parse_speedometer_line("Batch [20]\tSpeed: 999.00 samples/sec") is None  # --test-io: no epoch
    assert parse_speedometer_line("Epoch[0] Batch [0-20]\tSpeed: fast samples/sec") is None
    assert parse_speedometer_line("Epoch[0] Train-accuracy=0.5") is None


def test_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(MetricsLogError, match="no such file") as error:
        read_epochs(str(tmp_path / "missing.log"))
    assert isinstance(error.value, UserError)


def test_resume_from_an_earlier_epoch_replaces_what_followed(tmp_path):
    def epoch_lines(epoch, accuracy):
        return [f"Epoch[{epoch}] Batch [0-20]\tSpeed: {accuracy * 1000:.2f} samples/sec\taccuracy={accuracy}",
                f"Epoch[{epoch}] Train-accuracy={accuracy}", f"Epoch[{epoch}] Time cost=1.0"]
    first_run = [line for e in range(4) for line in epoch_lines(e, 0.1 * (e + 1))]
    resumed = [line for e in (2, 3) for line in epoch_lines(e, 0.5 + 0.1 * e)]  # --load-epoch 2, stopped at 4
    path = tmp_path / "train.log"
    path.write_text("\n".join(first_run + resumed) + "\n")
    summaries = read_epochs(str(path))
    assert [s.epoch for s in summaries] == [0, 1, 2, 3]
    assert [s.train["accuracy"] for s in summaries] == pytest.approx([0.1, 0.2, 0.7, 0.8])
    assert [s.speeds for s in summaries[2:]] == [[700.0], [800.0]]


def test_tensorboard_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    assert not tensorboard_available()
    with pytest.raises(RuntimeError, match="pip install tensorboard"):
        MetricsLog(None, tensorboard_dir=str(tmp_path / "tb"), batches_per_epoch=10)


def test_tensorboard_gets_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is optional and not installed")
    tb = tmp_path / "tb"
    with MetricsLog(str(tmp_path / "metrics.jsonl"), tensorboard_dir=str(tb), batches_per_epoch=40) as log:
        log.log_batch(0, 19, 100.0, 0.1, {"accuracy": 0.5}, elapsed=1.0)
        log.log_epoch(0, 100.0, 0.1, {"accuracy": 0.6}, {"accuracy": 0.7}, elapsed=2.0)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tb))
    events.Reload()
    assert {"batch/accuracy", "train/accuracy", "validation/accuracy"} <= set(events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("validation/accuracy")] == [(40, pytest.approx(0.7))]
