"""Runs that survive interruption, with real training processes (CPU, gloo) started by tools/launch.py: a
worker killed in the middle of an epoch is restarted with --resume and the run ends with the weights of an
uninterrupted one; a worker that stops responding ends the run within --dist-timeout, leaving nothing running.

Which worker stops, and when, is not left to timing: rank 1 stops itself (SIGSTOP) after a given optimizer
step (STOP_AT_STEP); the test then finds it by its command line and its state, as one would with `ps`."""
import os
import re
import subprocess
import sys
import time
from signal import SIGKILL

from common import checkpoint
from conftest import ROOT
from test_launch import LAUNCH, wait_gone

# 640 training images, 32 a batch across 2 processes: 20 steps an epoch
OPTIONS = ("--network", "mlp", "--batch-size", "32", "--num-epochs", "2", "--lr", "0.1",
           "--disp-batches", "5", "--kv-store", "dist_sync")
# `python -c STOP_AT_STEP STEP FLAG SCRIPT ARGS...` runs SCRIPT ARGS, but rank 1 stops itself (SIGSTOP) after
# its optimizer step number STEP, the first time only: it creates the file FLAG then.
STOP_AT_STEP = """
import os, runpy, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
stop_at, flag, sys.argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
steps = 0
def count(optimizer, args, kwargs):
    global steps
    steps += 1
    if steps == stop_at:
        open(flag, "x").close()
        os.kill(os.getpid(), signal.SIGSTOP)
if os.environ["RANK"] == "1" and not os.path.exists(flag):
    register_optimizer_step_post_hook(count)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def processes_with(marker: str) -> dict[int, str]:
    """{pid: state letter of /proc/PID/stat} of the processes whose command line holds `marker`."""
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(f"/proc/{name}/stat") as f:
                found[int(name)] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:  # ended meanwhile
            pass
    return found


def start_launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, LAUNCH, "-n", "2", "--launcher", "local", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait_for_stopped_worker(launch: subprocess.Popen, marker: str, timeout: float = 120) -> int:
    """The pid of the job's process that stopped itself (state T)."""
    deadline = time.monotonic() + timeout
    while True:
        stopped = [pid for pid, state in processes_with(marker).items() if state == "T"]
        if stopped:
            return stopped[0]
        assert launch.poll() is None, f"the job ended before a worker stopped:\n{launch.communicate()[0]}"
        assert time.monotonic() < deadline, "no worker stopped"
        time.sleep(0.05)


def test_killed_worker_restarts_and_ends_as_an_uninterrupted_run(fake_mnist, tmp_path):
    """Rank 1 is SIGKILLed in the middle of the second epoch: launch.py restarts both workers with --resume,
    they continue from the first epoch's checkpoint, and the final weights are byte for byte those of an
    uninterrupted run."""
    plain, resumed = str(tmp_path / "plain"), str(tmp_path / "resumed")
    data = ("--data-dir", str(fake_mnist), *OPTIONS)
    launch = start_launch("--max-restarts", "1", sys.executable, "-c", STOP_AT_STEP, "30",
                          str(tmp_path / "flag"), "train_mnist.py", *data, "--model-prefix", resumed)
    try:
        os.kill(wait_for_stopped_worker(launch, resumed), SIGKILL)
        assert os.path.exists(checkpoint.params_path(resumed, 1))  # in the middle of epoch 1 (the second)
        assert not os.path.exists(checkpoint.params_path(resumed, 2))
        output = launch.communicate(timeout=120)[0]
    finally:
        launch.kill()
        launch.wait()
    assert launch.returncode == 0, output
    restart = re.search(r"^launch\.py: worker [01] on localhost exited with .*; restarting all workers with "
                        r"--resume \(restart 1 of 1\)$", output, re.MULTILINE)
    assert restart, output
    after = output[restart.end():]
    assert "Epoch[1] Train-accuracy" in after and "Epoch[0]" not in after, after  # continued, not from 0

    uninterrupted = subprocess.run([sys.executable, LAUNCH, "-n", "2", "--launcher", "local", sys.executable,
                                    "train_mnist.py", *data, "--model-prefix", plain], cwd=ROOT,
                                   capture_output=True, text=True, timeout=120)
    assert uninterrupted.returncode == 0, uninterrupted.stdout + uninterrupted.stderr
    with open(checkpoint.params_path(plain, 2), "rb") as a, \
            open(checkpoint.params_path(resumed, 2), "rb") as b:
        assert a.read() == b.read()


def test_stopped_worker_ends_the_run_within_the_dist_timeout(fake_mnist, tmp_path):
    """Rank 1 stops responding (SIGSTOP) in the first epoch: rank 0's collective gives up after
    --dist-timeout with one line naming it, launch.py stops the job, and no process of it is left."""
    prefix, timeout = str(tmp_path / "job"), 5
    launch = start_launch(sys.executable, "-c", STOP_AT_STEP, "5", str(tmp_path / "flag"), "train_mnist.py",
                          "--data-dir", str(fake_mnist), *OPTIONS, "--model-prefix", prefix,
                          "--dist-timeout", str(timeout))
    try:
        wait_for_stopped_worker(launch, prefix)
        stopped_at = time.monotonic()
        job = list(processes_with(prefix))  # launch.py, the guards and the workers
        output = launch.communicate(timeout=120)[0]
        took = time.monotonic() - stopped_at
    finally:
        launch.kill()
        launch.wait()
    assert launch.returncode == 2, output
    assert re.search(r"^\[localhost 0\] train_mnist\.py: error: rank 0: the .+ got no answer from a peer "
                     rf"within --dist-timeout {timeout} s \(a process stopped responding or died\)$", output,
                     re.MULTILINE), output
    assert took < timeout + 20, output  # + stopping rank 1 (up to 5 s) on a busy machine
    assert wait_gone(job, timeout=1) == []
