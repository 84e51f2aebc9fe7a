"""benchmark.py: the speed-line parser, the network specs, the run plan, stopping a run with everything it
started, and a real series of 1 and 2 CPU processes that writes the table, the CSV and the plot."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from PIL import Image

from benchmark import (Setup, check_args, doubling, get_args_parser, measured_speed, parse_network_spec,
                       parse_speeds, plan_setups, timed_run, training_command)
from common.cli import UserError
from tests.conftest import ROOT, run_script
from tests.test_launch import sshd  # noqa: F401  (the throw-away sshd on loopback, a fixture)

OURS = "2026-11-24 22:44:33,891 Node[0] Epoch[0] Batch [10-20]\tSpeed: 3003.33 samples/sec\taccuracy=0.934375"
LAUNCHED = "[localhost 0] 2026-11-24 22:44:39,018 Node[0] Epoch[0] Batch [20-30]\tSpeed: 2284.29 samples/sec"
MXNET = "INFO:root:Epoch[1] Batch [40]\tSpeed: 1234.50 samples/sec\taccuracy=0.990000"
KNOWN = ["lenet", "inception-v3", "resnet", "resnet-v1"]

# Prints a speed line every 0.1 s for ever, after starting a child that sleeps; both leave their pids.
SPEEDS_FOREVER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
for batch in range(0, 10**6, 10):
    print(f"Node[0] Epoch[0] Batch [{batch}-{batch + 10}]\\tSpeed: {100 + batch}.00 samples/sec", flush=True)
    time.sleep(0.1)
"""

# Leaves its pids and those of a child that sleeps, prints five speed lines at once, says so by creating the
# file argv[2], then hangs: the speeds it logs before a time limit do not depend on the machine's speed.
FIVE_SPEEDS_THEN_HANG = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
for batch in range(0, 50, 10):
    print(f"Node[0] Epoch[0] Batch [{batch}-{batch + 10}]\\tSpeed: {100 + batch}.00 samples/sec", flush=True)
open(sys.argv[2], "w").close()
time.sleep(600)
"""


def test_speed_lines_of_ours_launched_and_mxnet_logs():
    lines = [OURS, "launch.py: 2 worker(s) on localhost", LAUNCHED, MXNET,
             "Node[0] Epoch[0] Train-accuracy=0.99", "Node[0] Batch [19]\tSpeed: 5.00 samples/sec"]
    assert parse_speeds(lines) == [3003.33, 2284.29, 1234.5]


def test_measured_speed_skips_the_first_window():
    assert measured_speed([10.0, 100.0, 200.0, 900.0], windows=2) == 150.0
    assert measured_speed([10.0], windows=5) is None


@pytest.mark.parametrize("text, expected", [
    ("lenet:64:1,28,28", ("lenet", None, 64, (1, 28, 28))),
    ("inception-v3:32:299", ("inception-v3", None, 32, (3, 299, 299))),
    ("resnet-152:32:224", ("resnet", 152, 32, (3, 224, 224))),
    ("resnet-v1-50:16:224", ("resnet-v1", 50, 16, (3, 224, 224))),
])
def test_network_specs(text, expected):
    spec = parse_network_spec(text, KNOWN)
    assert (spec.network, spec.num_layers, spec.batch_size, spec.image_shape) == expected


@pytest.mark.parametrize("text, reason", [
    ("lenet:32", "is not network:batch_size:image_size"),
    ("lenet:32:28:1", "is not network:batch_size:image_size"),
    ("alexnet:32:224", "unknown network 'alexnet'"),
    ("lenet-x:32:224", "unknown network 'lenet-x'"),
    ("lenet:many:28", "must be whole numbers"),
    ("lenet:0:28", "batch size must be positive"),
    ("lenet:32:28,28", "image size S or C,H,W"),
])
def test_bad_network_specs(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_network_spec(text, KNOWN)


def test_bad_specs_are_user_errors():
    with pytest.raises(UserError, match="unknown network 'alexnet'"):
        parse_network_spec("alexnet:32:224", KNOWN)


def test_bad_spec_on_the_command_line_is_one_error_line(tmp_path):
    result = run_script("benchmark.py", "--networks", "lenet:32", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].endswith("'lenet:32' is not network:batch_size:image_size "
                                                   "(e.g. resnet-50:32:224)")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--worker_count", "2"], "--worker_count 2 needs --worker_file"),
    (["--worker_count", "3", "--worker_file", "HOSTS"], "--worker_count 3, but HOSTS lists 2 host(s)"),
    (["--worker_count", "2", "--worker_file", "MISSING"], "cannot read hostfile MISSING"),
    (["--gpu_count", "99"], "--gpu_count 99, but this machine has"),
    (["--windows", "0"], "--windows must be at least 1, not 0"),
])
def test_impossible_requests_are_one_error_line(tmp_path, capsys, args, message):
    paths = {"HOSTS": str(tmp_path / "hosts"), "MISSING": str(tmp_path / "missing")}
    (tmp_path / "hosts").write_text("node1\nnode2\n")
    parser = get_args_parser()
    with pytest.raises(SystemExit) as exit_info:
        check_args(parser, parser.parse_args([paths.get(a, a) for a in args]))
    assert exit_info.value.code == 2
    for name, path in paths.items():
        message = message.replace(name, path)
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_results_go_to_scaling_by_default():
    """Not benchmark/: that word is the benchmarks/ folder and --benchmark 1 already."""
    assert get_args_parser().parse_args([]).output_dir == "scaling"
    assert "(default: scaling/)" in " ".join(get_args_parser().format_help().split())


def test_series_double_up_to_the_count_as_mxnet():
    assert doubling(1) == [1]
    assert doubling(8) == [1, 2, 4, 8]
    assert doubling(6) == [1, 2, 4, 6]
    assert plan_setups(4, 3) == [Setup(1, 1), Setup(1, 2), Setup(1, 4), Setup(2, 4), Setup(3, 4)]


def test_commands_keep_the_batch_per_device():
    spec = parse_network_spec("resnet-50:32:224", KNOWN)
    one_machine = training_command(spec, Setup(1, 4), on_gpus=True, disp_batches=10, hostfile=None)
    assert one_machine[1].endswith("train_imagenet.py")
    assert " --batch-size 128 " in " ".join(one_machine) and " --gpus 0,1,2,3 " in " ".join(one_machine)
    assert " --kv-store device " in " ".join(one_machine)
    machines = " ".join(training_command(spec, Setup(2, 4), on_gpus=True, disp_batches=10,
                                         hostfile="hosts-2"))
    assert "launch.py -n 2 -H hosts-2 python3 train_imagenet.py " in machines
    assert " --batch-size 256 " in machines and " --kv-store dist_sync_device " in machines
    cpu = " ".join(training_command(spec, Setup(1, 2), on_gpus=False, disp_batches=10, hostfile=None))
    assert "launch.py -n 2 --launcher local " in cpu
    assert " --batch-size 64 " in cpu and " --kv-store dist_sync " in cpu and " --gpus  " in cpu


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split(") ")[-1][0] != "Z"


def wait_gone(pids: list[int], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_a_run_stops_after_enough_speed_lines_with_everything_it_started(tmp_path):
    """Stopped once it has logged `windows` speeds after the first: the child it started goes too."""
    pids, time_limit = tmp_path / "pids", 300.0
    started = time.monotonic()
    speeds, code = timed_run([sys.executable, "-c", SPEEDS_FOREVER, str(pids)], str(tmp_path / "run.log"),
                             time_limit, 3, dict(os.environ))
    assert code is None and speeds == [100.0, 110.0, 120.0, 130.0]
    assert time.monotonic() - started < time_limit, "stopped by the time limit, not by the speed lines"
    assert wait_gone([int(p) for p in pids.read_text().split()], seconds=60)
    assert (tmp_path / "run.log").read_text().count("Speed:") >= len(speeds)


def test_a_run_stops_at_the_time_limit_with_everything_it_started(tmp_path):
    """Never enough speed lines: stopped at the time limit with the speeds logged so far, and the child it
    started goes too. The limit starts short and doubles until the worker had printed its five lines
    before it, so no machine is too slow or too loaded for the test."""
    time_limit = 1.5
    while True:
        pids, printed, log = tmp_path / f"pids-{time_limit:g}", tmp_path / f"printed-{time_limit:g}", \
            tmp_path / f"run-{time_limit:g}.log"
        started = time.monotonic()
        speeds, code = timed_run([sys.executable, "-c", FIVE_SPEEDS_THEN_HANG, str(pids), str(printed)],
                                 str(log), time_limit, 1000, dict(os.environ))
        assert code is None
        assert time.monotonic() - started >= time_limit * 0.99, "stopped before the time limit"
        if pids.exists():
            assert wait_gone([int(p) for p in pids.read_text().split()], seconds=60)
        if printed.exists():
            break
        assert time_limit < 200, f"the worker printed no five speed lines in {time_limit:g} s"
        time_limit *= 2
    assert speeds == [100.0, 110.0, 120.0, 130.0, 140.0]
    assert [line for line in log.read_text().splitlines() if line.startswith("Node[0]")] == [
        f"Node[0] Epoch[0] Batch [{b}-{b + 10}]\tSpeed: {100 + b}.00 samples/sec" for b in range(0, 50, 10)]


def test_a_failed_run_gives_its_exit_code(tmp_path):
    speeds, code = timed_run([sys.executable, "-c", "import sys; sys.exit(3)"], str(tmp_path / "run.log"),
                             30.0, 2, dict(os.environ))
    assert (speeds, code) == ([], 3)


def test_cpu_series_writes_table_csv_and_plot(tmp_path):
    out = tmp_path / "bench"
    result = run_script("benchmark.py", "--gpu_count", "0", "--cpu-processes", "2",
                        "--networks", "lenet:32:1,28,28", "--disp-batches", "5", "--windows", "2",
                        "--time-limit", "40", "--output-dir", str(out), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["network"], r["devices"], r["batch/device"]) for r in rows] == [("lenet", "1", "32"),
                                                                               ("lenet", "2", "32")]
    assert all(float(r["samples/sec"]) > 0 for r in rows)
    assert rows[0]["speedup"] == "1.00" and rows[0]["efficiency"] == "1.00"
    speed_ratio = float(rows[1]["samples/sec"]) / float(rows[0]["samples/sec"])
    assert float(rows[1]["speedup"]) == pytest.approx(speed_ratio, abs=0.01)
    table = (out / "results.md").read_text()
    assert "| lenet   | 32           | 1x28x28 | 1        | 2 " in table and "100%" in table
    assert table.endswith(result.stdout)  # the printed table
    assert "--kv-store dist_sync" in (out / "logs" / "lenet-1x2.log").read_text()
    with Image.open(out / "speedup.png") as image:
        assert image.size == (500, 400)


def test_cpu_series_over_two_machines_by_ssh(sshd, tmp_path):  # noqa: F811
    """One CPU process on one machine, then one on each of two (127.0.0.1 and 127.0.0.2 over ssh)."""
    directory, port = sshd
    hostfile = tmp_path / "hosts"
    hostfile.write_text(f"127.0.0.1:{port}\n127.0.0.2:{port}\n")
    out = tmp_path / "bench"
    result = run_script("benchmark.py", "--gpu_count", "0", "--cpu-processes", "1", "--worker_count", "2",
                        "--worker_file", str(hostfile), "--networks", "lenet:32:1,28,28",
                        "--disp-batches", "5", "--windows", "2", "--time-limit", "40",
                        "--output-dir", str(out), timeout=120,
                        env={"PATH": f"{directory / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["machines"], r["devices/machine"]) for r in rows] == [("1", "1"), ("2", "1")]
    assert all(float(r["samples/sec"]) > 0 for r in rows)
    log = (out / "logs" / "lenet-2x1.log").read_text()
    assert f"2 worker(s) on 127.0.0.1:{port}, 127.0.0.2:{port}" in log and "--kv-store dist_sync" in log


def processes_with(marker: str) -> list[int]:
    """Pids of the processes whose environment holds `marker`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:  # gone, or not ours
            pass
    return pids


def test_sigterm_stops_the_run_under_way_with_its_workers(tmp_path):
    """SIGTERM (or Ctrl-C) while two launched CPU processes train: exit 130, nothing left behind."""
    marker = f"BENCHMARK_TEST={uuid.uuid4().hex}"
    out = tmp_path / "bench"
    process = subprocess.Popen(
        [sys.executable, "benchmark.py", "--gpu_count", "0", "--cpu-processes", "2", "--networks",
         "lenet:32:1,28,28", "--disp-batches", "5", "--time-limit", "6", "--output-dir", str(out)],
        cwd=ROOT, env={**os.environ, marker.split("=")[0]: marker.split("=")[1]}, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while len(processes_with(marker)) < 6:  # benchmark.py, launch.py, 2 guards and 2 workers
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130
        assert process.stderr.read().strip().splitlines()[-1] == "benchmark.py: interrupted"
        assert wait_gone(processes_with(marker), seconds=10)
    finally:
        process.kill()
