import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from common.metrics_log import PAGE_SIZE, MetricsLog, read_epochs, tensorboard_available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Writes metrics as fast as it can until it is killed. 100 metrics make lines of ~3 KB (under a page, see
# MetricsLog._write_line), so a line written in pieces or left in a write buffer would show up torn.
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


def test_sigkilled_writer_leaves_only_whole_lines(tmp_path):
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
    assert tail.strip() == b""  # at most the spaces that begin a line the kill stopped (see MetricsLog)
    records = [json.loads(line) for line in lines]  # every line parses
    positions = [(r["epoch"], r["batch"]) for r in records]
    expected = [(e, b) for e in range(positions[-1][0] + 1) for b in [*range(19, 1000, 20), None]]
    assert positions == expected[:len(positions)]  # nothing lost or doubled before the kill
    assert len(records[-1]["train"]) == 100

    # A resumed run appends to the same file, starting again at the epoch that was cut short.
    killed_epoch = records[-1]["epoch"]
    with MetricsLog(path) as log:
        log.log_batch(killed_epoch, 19, 2000.0, 0.1, {"accuracy": 0.5}, elapsed=1.0)
        log.log_epoch(killed_epoch, 2000.0, 0.1, {"accuracy": 0.6}, {"accuracy": 0.7}, elapsed=9.0)
    assert read_lines(path)[:len(records)] == records
    last = read_epochs(path)[-1]
    assert (last.epoch, last.speeds, last.train, last.validation, last.time_cost) == (
        killed_epoch, [2000.0], {"accuracy": 0.6}, {"accuracy": 0.7}, 9.0)


def test_no_line_straddles_a_page(tmp_path):
    """What makes lines whole under SIGKILL: a write is cut short only at a page boundary of the file."""
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(str(path)) as log:
        for batch in range(300):
            log.log_batch(0, batch, 100.0, 0.1, {f"m{i}": 0.5 for i in range(batch % 150)}, elapsed=1.0)
    data = path.read_bytes()
    batches, start = [], 0
    while start < len(data):
        end = data.index(b"\n", start)
        line = data[start:end]
        first = end - len(line.lstrip(b" "))
        assert first // PAGE_SIZE == end // PAGE_SIZE  # the record and its newline lie in one page
        batches.append(json.loads(line)["batch"])
        start = end + 1
    assert batches == list(range(300))


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


def test_resume_after_a_kill_in_the_padding_continues_the_line(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(str(path)) as log:
        log.log_epoch(0, 10.0, 0.1, {"accuracy": 0.5}, {}, elapsed=1.0)
    with open(path, "a") as f:
        f.write(" " * 100)  # the kill came while the spaces before a line were written
    with MetricsLog(str(path)) as log:
        log.log_epoch(1, 10.0, 0.1, {"accuracy": 0.6}, {}, elapsed=1.0)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [0, 1]
    assert caplog.text == ""


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
