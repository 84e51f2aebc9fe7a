"""Runs that survive interruption, tested with real processes: SIGKILL or SIGTERM at a random moment of an
epoch, or a kill while a checkpoint is being written, then the same command with --resume gives the same
weights as a run that was never interrupted."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from common import checkpoint
from common.interrupt import PREEMPTED_EXIT_CODE
from conftest import ROOT, run_script
from test_train_scripts import write_tiny_rec

BATCHES_PER_EPOCH = 12  # 48 images, batch 4


@pytest.fixture(scope="module")
def tiny_rec(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("rec") / "tiny")
    write_tiny_rec(prefix, count=4 * BATCHES_PER_EPOCH)
    return prefix + ".rec"


def train_command(rec: str, prefix: str, *extra: str) -> list[str]:
    """resnet-8 on the tiny record file: 2 epochs of 12 batches, 2 decoding processes, pad-crop-mirror
    augmentation, a mid-epoch checkpoint after every step."""
    return ["train_cifar10.py", "--network", "resnet", "--num-layers", "8", "--num-classes", "3",
            "--data-train", rec, "--data-val", "", "--batch-size", "4", "--num-epochs", "2", "--disp-batches", "1",
            "--data-nthreads", "2", "--lr", "0.05", "--model-prefix", prefix, "--checkpoint-interval", "0.0001",
            *extra]


@pytest.fixture(scope="module")
def uninterrupted(tiny_rec, tmp_path_factory):
    """The final weights of the run that nothing stops."""
    prefix = str(tmp_path_factory.mktemp("whole") / "r8")
    done = run_script(*train_command(tiny_rec, prefix))
    assert done.returncode == 0, done.stderr
    assert checkpoint.saved_positions(prefix) == [(2, 0), (1, 0)], "mid-epoch files are removed at epoch ends"
    with open(checkpoint.params_path(prefix, 2), "rb") as f:
        return f.read()


def start_and_signal(command: list[str], sig: int, after_checkpoints: int) -> subprocess.Popen:
    """Start `python command`; once it has written `after_checkpoints` checkpoints, wait a random moment
    within a step and send `sig`."""
    process = subprocess.Popen([sys.executable, *command], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    saved = 0
    for line in process.stderr:
        saved += "Saved checkpoint" in line
        if saved == after_checkpoints:
            time.sleep(random.uniform(0, 0.05))
            process.send_signal(sig)
            break
    process.stderr.read()
    process.wait(timeout=120)
    return process


def resume_and_compare(command: list[str], prefix: str, uninterrupted: bytes) -> str:
    done = run_script(*command, "--resume")
    assert done.returncode == 0, done.stderr
    with open(checkpoint.params_path(prefix, 2), "rb") as f:
        assert f.read() == uninterrupted, "the resumed run's final weights differ from the uninterrupted run's"
    return done.stderr


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tiny_rec, uninterrupted, tmp_path):
    prefix = str(tmp_path / "r8")
    command = train_command(tiny_rec, prefix)
    moment = random.randint(2, 2 * BATCHES_PER_EPOCH - 2)
    killed = start_and_signal(command, signal.SIGKILL, after_checkpoints=moment)
    assert killed.returncode == -signal.SIGKILL
    newest = checkpoint.saved_positions(prefix)[0]
    log = resume_and_compare(command, prefix, uninterrupted)
    assert f"--resume: continuing from {newest}" in log, (moment, log)


def test_sigterm_saves_exits_75_and_resume_gives_the_same_weights(tiny_rec, uninterrupted, tmp_path):
    prefix = str(tmp_path / "r8")
    command = train_command(tiny_rec, prefix, "--checkpoint-interval", "0")  # only the stop writes mid-epoch
    stopped = start_and_signal(command, signal.SIGTERM, after_checkpoints=1)  # in epoch 1 (the 2nd)
    assert stopped.returncode == PREEMPTED_EXIT_CODE
    newest = checkpoint.saved_positions(prefix)[0]
    assert newest.epoch == 1 and newest.batch > 0, f"no mid-epoch checkpoint after the last epoch's: {newest}"
    log = resume_and_compare(command, prefix, uninterrupted)
    assert f"--resume: continuing from {newest}" in log


SITECUSTOMIZE = '''
import os
target = os.environ["DIE_WRITING"]
import common.checkpoint as checkpoint
write_whole = checkpoint.atomic_write

def atomic_write(path, write):
    """Die (as a SIGKILL would) half-way through writing the file named `target`."""
    if not path.endswith(target):
        return write_whole(path, write)
    import io
    buffer = io.BytesIO()
    write(buffer)
    with open(path + ".12345.tmp", "wb") as f:
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    os._exit(137)

checkpoint.atomic_write = atomic_write
'''


@pytest.mark.parametrize("dies_in", [".states", ".params"])
def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_usable(tiny_rec, uninterrupted, tmp_path,
                                                                         dies_in):
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    prefix = str(tmp_path / "r8")
    command = train_command(tiny_rec, prefix)
    died = run_script(*command, env={"DIE_WRITING": f"r8-0000-000005{dies_in}",
                                     "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), ROOT])})
    assert died.returncode == 137, died.stderr
    assert checkpoint.saved_positions(prefix)[0] == (0, 4)
    log = resume_and_compare(command, prefix, uninterrupted)
    assert "--resume: continuing from epoch 0, batch 4" in log


def test_resume_without_a_checkpoint_starts_from_the_beginning(tiny_rec, uninterrupted, tmp_path):
    prefix = str(tmp_path / "r8")
    log = resume_and_compare(train_command(tiny_rec, prefix), prefix, uninterrupted)
    assert "--resume: no checkpoint under" in log


def test_keep_checkpoints_keeps_the_last_k_epochs(tiny_rec, tmp_path):
    prefix = str(tmp_path / "r8")
    command = train_command(tiny_rec, prefix, "--num-epochs", "4", "--keep-checkpoints", "2",
                            "--checkpoint-interval", "0")
    done = run_script(*command)
    assert done.returncode == 0, done.stderr
    assert checkpoint.saved_positions(prefix) == [(4, 0), (3, 0)]
    assert not os.path.exists(checkpoint.params_path(prefix, 1))


@pytest.mark.parametrize("options, message", [
    (("--resume",), "--resume needs --model-prefix"),
    (("--checkpoint-interval", "5"), "--checkpoint-interval needs --model-prefix"),
    (("--model-prefix", "x", "--keep-checkpoints", "-1"), "must be >= 0"),
])
def test_bad_interruption_options_are_one_line_errors(fake_mnist, options, message):
    from test_fit import one_line_error
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), *options)
    one_line_error(result, message)
    assert result.returncode == 2


def training_processes(model_prefix: str) -> list[int]:
    """The pids of the `python train_mnist.py ... --model-prefix model_prefix` processes (not the launcher
    or the guards, whose command lines hold the same words further on)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            continue
        if len(argv) > 1 and argv[1] == "train_mnist.py" and model_prefix in argv:
            pids.append(int(entry))
    return sorted(pids)


def test_sigterm_to_one_of_two_workers_stops_both_at_the_same_step(fake_mnist, tmp_path):
    """Two gloo workers started by tools/launch.py; SIGTERM to one of them: both stop at the step they agree
    on, the checkpoint is written, the job exits 75; with --resume it ends with the uninterrupted job's
    weights."""
    whole, stopped = str(tmp_path / "whole"), str(tmp_path / "stopped")

    def job(prefix: str) -> list[str]:
        return ["tools/launch.py", "-n", "2", "--launcher", "local", "python", "train_mnist.py",
                "--data-dir", str(fake_mnist), "--network", "lenet", "--batch-size", "32", "--num-epochs", "6",
                "--disp-batches", "2", "--kv-store", "dist_sync", "--model-prefix", prefix]

    done = run_script(*job(whole))
    assert done.returncode == 0, done.stderr
    launcher = subprocess.Popen([sys.executable, *job(stopped)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in launcher.stdout:
        if "Epoch[1] Batch" in line:  # training, past the first epoch's checkpoint
            os.kill(training_processes(stopped)[-1], signal.SIGTERM)
            break
    rest = launcher.stdout.read()
    assert launcher.wait(timeout=120) == PREEMPTED_EXIT_CODE, rest
    newest = checkpoint.saved_positions(stopped)[0]
    assert newest.batch > 0 and newest.batch % 2 == 0, f"{newest}: not at an agreement step"
    resumed = run_script(*job(stopped), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"--resume: continuing from {newest}" in resumed.stdout + resumed.stderr
    with open(checkpoint.params_path(whole, 6), "rb") as a, open(checkpoint.params_path(stopped, 6), "rb") as b:
        assert a.read() == b.read()


def test_resume_wins_over_load_epoch_when_a_newer_checkpoint_exists(fake_mnist, tmp_path):
    """tools/launch.py --max-restarts appends --resume to the command, which may hold --load-epoch."""
    prefix = str(tmp_path / "mlp")
    common = ("train_mnist.py", "--data-dir", str(fake_mnist), "--model-prefix", prefix)
    assert run_script(*common, "--num-epochs", "2").returncode == 0
    resumed = run_script(*common, "--num-epochs", "3", "--load-epoch", "1", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "--resume: continuing from epoch 2" in resumed.stderr
    assert "Epoch[1]" not in resumed.stderr and "Epoch[2] Train-accuracy" in resumed.stderr
