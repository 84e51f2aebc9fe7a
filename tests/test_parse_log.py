import csv
import io
import os
import subprocess
import sys

import pytest

from common.metrics_log import MetricsLog

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Written by hand from docs/formats.md section 7.
MXNET_LOG = os.path.join(REPO, "tests", "data", "mxnet-mnist.log")

EXPECTED = """\
| epoch | train-accuracy | train-top_k_accuracy_5 | val-accuracy | val-top_k_accuracy_5 | time | samples/sec |
| ----- | -------------- | ---------------------- | ------------ | -------------------- | ---- | ----------- |
| 1     | 0.901042       | 0.990000               | 0.950000     | 0.998000             | 2.0  | 30570.3     |
| 2     | 0.961000       | 0.999200               | 0.965000     | 0.999300             | 1.9  | 32500.0     |
| 3     | 0.970500       | 0.999600               | 0.972100     | 0.999500             | 1.9  | 33800.0     |
"""

# The run of MXNET_LOG as our metrics file:
# (epoch, windows [(batch, speed, accuracy, top5)], train, time cost, validation).
RUN = [
    (0, [(20, 30120.55, 0.712891, 0.93125), (40, 31020.12, 0.890625, 0.9875)], (0.901042, 0.99), 2.034,
     (0.95, 0.998)),
    (1, [(20, 32004.8, 0.95, 0.999), (40, 32995.2, 0.96, 0.9995)], (0.961, 0.9992), 1.912, (0.965, 0.9993)),
    (2, [(20, 33500.0, 0.96875, 1.0), (40, 34100.0, 0.971875, 0.999219)], (0.9705, 0.9996), 1.871,
     (0.9721, 0.9995)),
]


def metrics(pair):
    return {"accuracy": pair[0], "top_k_accuracy_5": pair[1]}


def parse_log(*args):
    return subprocess.run([sys.executable, "tools/parse_log.py", *args], cwd=REPO, capture_output=True,
                          text=True)


@pytest.fixture
def our_log(tmp_path):
    """MXNET_LOG as our scripts print it: a timestamp instead of `INFO:root:`."""
    path = tmp_path / "ours.log"
    with open(MXNET_LOG) as f:
        path.write_text(f.read().replace("INFO:root:", "2017-01-01 12:00:00,000 "))
    return str(path)


@pytest.fixture
def metrics_file(tmp_path):
    path = str(tmp_path / "mnist-metrics.jsonl")
    with MetricsLog(path) as log:
        for epoch, windows, train, time_cost, validation in RUN:
            for batch, speed, *window in windows:
                log.log_batch(epoch, batch, speed, 0.05, metrics(window), elapsed=1.0)
            log.log_epoch(epoch, 32000.0, 0.05, metrics(train), metrics(validation), elapsed=time_cost)
    return path


def test_mxnet_log_our_log_and_metrics_file_give_the_same_table(our_log, metrics_file):
    for path in (MXNET_LOG, our_log, metrics_file):
        result = parse_log(path, "--metric-names", "accuracy,top_k_accuracy_5")
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == EXPECTED, path


def test_csv_with_several_logs_has_a_log_column(metrics_file):
    result = parse_log(MXNET_LOG, metrics_file, "--format", "csv")
    assert result.returncode == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["log", "epoch", "train-accuracy", "val-accuracy", "time", "samples/sec"]
    assert rows[1] == [MXNET_LOG, "1", "0.901042", "0.950000", "2.0", "30570.3"]
    assert [row[1:] for row in rows[1:4]] == [row[1:] for row in rows[4:]]


def test_missing_values_stay_blank(tmp_path):
    path = tmp_path / "train.log"  # killed during epoch 1, no validation data
    path.write_text("Epoch[0] Batch [0-20]\tSpeed: 10.00 samples/sec\taccuracy=0.5\n"
                    "Epoch[0] Train-accuracy=0.5\nEpoch[0] Time cost=3.0\n"
                    "Epoch[1] Batch [0-20]\tSpeed: 20.00 samples/sec\taccuracy=0.6\n")
    result = parse_log(str(path), "--format", "csv")
    assert result.stdout.splitlines()[1:] == ["1,0.500000,,3.0,10.0", "2,,,,20.0"]


@pytest.mark.parametrize("content, args, message", [
    (None, [], "no such file"),
    ("", [], "no epochs in it"),
    ("INFO:root:start with arguments Namespace()\n", [], "no epochs in it"),
    ("Epoch[0] Train-accuracy=0.5\n", ["--metric-names", "acc"], "no metric 'acc' in it (it has: accuracy)"),
])
def test_user_mistakes_get_one_line(tmp_path, content, args, message):
    path = tmp_path / "train.log"
    if content is not None:
        path.write_text(content)
    result = parse_log(str(path), *args)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"parse_log.py: error: {path}: {message}")
    assert result.stderr.count("\n") == 1


def test_a_folder_is_refused(tmp_path):
    result = parse_log(str(tmp_path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "cannot read it" in result.stderr
