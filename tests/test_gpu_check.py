"""Ready for the first GPU: the GPU defaults of common/dist.py (`_use`, `data_threads`), and
benchmarks/gpu_check.sh, run end to end in its --cpu-smoke mode on a tiny set packed by
benchmarks/gpu_check_data.py, with its table built from failed and missing steps too."""
import os
import re
import subprocess
import sys

import pytest
import torch

from common import dist
from common.cli import UserError
from conftest import ROOT, needs_dataset, run_script

ROWS = ["1a", "1b", "1c", "2a", "2b", "3", "4a", "4b", "4c", "5a", "5b", "5c"]
SPEED = re.compile(r"[0-9][0-9,.]* img/s")
GPU_FLAGS = ((torch.backends.cudnn, "benchmark"), (torch.backends.cuda.matmul, "allow_tf32"),
             (torch.backends.cudnn, "allow_tf32"))


@pytest.fixture
def cores(monkeypatch):
    """Set how many cores this process may use, for data_threads; no torchrun variables."""
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    return lambda n: monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))


@pytest.mark.parametrize("requested, gpus, machine_cores, expected", [
    (2, "0", 16, 2),        # given: as given, GPUs or not
    (0, "", 16, 0),         # 0: decode in the training process
    (None, "", 16, 4),      # the CPU: MXNet's 4
    (None, "0", 16, 12),    # one GPU: the cores, capped
    (None, "0,1", 16, 8),   # the cores shared by the GPU processes
    (None, "0,1,2,3,4,5,6,7", 96, 12),
    (None, "0,1,2,3,4,5,6,7", 4, 1),  # at least one
])
def test_data_threads(cores, requested, gpus, machine_cores, expected):
    cores(machine_cores)
    assert dist.data_threads(requested, gpus) == expected


def test_data_threads_shares_the_cores_among_torchrun_processes(cores, monkeypatch):
    cores(16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: 4 processes here, each given --gpus 0,1,2,3
    assert dist.data_threads(None, "0,1,2,3") == 4


def test_data_threads_without_sched_getaffinity_counts_the_cpus(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert dist.data_threads(None, "0") == 6


def test_data_threads_refuses_a_bad_gpu_list():
    with pytest.raises(UserError, match="--gpus '0,x' is not a comma-separated list"):
        dist.data_threads(None, "0,x")


def test_a_gpu_process_gets_cudnn_benchmark_and_tf32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # no GPU here: the flags alone
    for module, flag in GPU_FLAGS:
        monkeypatch.setattr(module, flag, False)
    assert dist._use(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert all(getattr(module, flag) for module, flag in GPU_FLAGS)


def test_a_cpu_process_keeps_torchs_defaults():
    before = [getattr(module, flag) for module, flag in GPU_FLAGS]
    dist._use(torch.device("cpu"))
    assert [getattr(module, flag) for module, flag in GPU_FLAGS] == before


def table_rows(table: str) -> list[list[str]]:
    """The cells of a Markdown table's rows (neither its header nor its rule)."""
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


@needs_dataset("imagenette-224", "val")
@needs_dataset("cifar10")
def test_cpu_smoke_gives_every_step_a_row_with_its_figure(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    packed = run_script("benchmarks/gpu_check_data.py", "--out", str(data), "--imagenette-per-class", "4",
                        "--cifar-per-class", "10", "--cifar-val-per-class", "3", "--resize", "40")
    assert packed.returncode == 0, packed.stderr
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(out), "--cpu-smoke", "--data", str(data)],
                          cwd=ROOT, env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    table = (out / "gpu_check.md").read_text()
    assert done.stdout == table
    assert sorted(os.listdir(out)) == ["gpu_check.md"] + [f"step{n}.log" for n in range(1, 6)]
    assert table.startswith("# benchmarks/gpu_check.sh (cpu-smoke, ")
    rows = {row[0]: row for row in table_rows(table)}
    assert list(rows) == ROWS, table
    for key in ("1a", "1b", "2a", "2b", "3", "4a", "4b", "4c", "5a"):
        assert SPEED.fullmatch(rows[key][2]), rows[key]
    timm = rows["1c"]
    assert timm[2] == "skipped" and timm[4] == "timm not importable" or "ours / timm: " in timm[4]
    assert re.match(r"waited for data: \d+% of \d+ steps? longer than 5 ms, \d+% of the time", rows["2a"][4])
    assert re.search(r"validation accuracy 0\.\d{4} after 2 epochs", rows["3"][4])
    assert rows["5b"][2:3] == ["ok"] and rows["5b"][4] == "2 processes over gloo"
    assert rows["5c"][2] == "needs a GPU"
    assert "$ " + sys.executable + " train_imagenet.py --benchmark 1" in (out / "step1.log").read_text()


def write_manifest(folder, *commands: tuple[str, str, str, str, str]) -> str:
    """A manifest of gpu_check.sh with one line per (key, kind, exit code, label, log) and the logs."""
    lines = []
    for key, kind, exit_code, label, log in commands:
        (folder / f"{key}.log").write_text(log)
        lines.append(f"{key}\t{kind}\t{exit_code}\t7\t90\t{label}\n")
    (folder / "manifest.tsv").write_text("".join(lines))
    return str(folder / "manifest.tsv")


SPEEDOMETER = "Node[0] Epoch[0] Batch [{0}-{1}]\tSpeed: {2} samples/sec\taccuracy=0.5\n"


def test_report_of_failed_missing_and_measured_steps(tmp_path):
    speeds = ((10, 50.0), (20, 300.0), (30, 500.0), (40, 200.0))
    trained = "".join(SPEEDOMETER.format(batch - 10, batch, speed) for batch, speed in speeds)
    manifest = write_manifest(
        tmp_path,
        ("1a", "train", "0", "ours", trained + "Node[0] Epoch[0] Validation-accuracy=0.612500\n"),
        ("1c", "peer:1a", "0", "timm", 'gpu_check {"images_per_sec": 250.0}\n'),
        ("2a", "train", "1", "crashed", "line 1\nline 2\nline 3\nRuntimeError: CUDA error | bad\n"),
        ("3", "train", "124", "hung", "Epoch[0] Batch [0-10]\n"),
        ("4b", "score", "0", "no figure", "Loaded model\n"),
        ("5a", "train", "-", "too late", ""),
        ("5b", "spawn:5c", "1", "spawned", "NameError: name 'x' is not defined\n"))
    done = run_script("benchmarks/gpu_check_report.py", "--manifest", manifest, "--mode", "gpu",
                      "--seconds", "99")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# benchmarks/gpu_check.sh (gpu, 99 s)\n")
    rows = table_rows(done.stdout)
    assert rows[0] == ["1a", "ours", "300 img/s", "7",
                       "median of 3 speed windows; validation accuracy 0.6125 after 1 epoch"]
    assert rows[1] == ["1c", "timm", "250 img/s", "7", "ours / timm: 1.20"]
    assert rows[2] == ["2a", "crashed", "FAILED", "7",
                       "exit code 1: line 2 / line 3 / RuntimeError: CUDA error \\| bad"]
    assert rows[3] == ["3", "hung", "FAILED", "7", "timed out after 90 s: Epoch[0] Batch [0-10]"]
    assert rows[4][:3] == ["4b", "no figure", "FAILED"]
    assert rows[4][4].startswith("no 'Finished with N images per second' line in the log: Loaded model")
    assert rows[5] == ["5a", "too late", "not run", "-", "the script's time was spent"]
    assert rows[6] == ["5b", "spawned", "FAILED", "7", "exit code 1: NameError: name 'x' is not defined"]
    assert rows[7][0] == "5c" and rows[7][2:] == ["FAILED", "", "see 5b"]


@pytest.mark.parametrize("args, message", [
    (["--cpu-smoke"], "gpu_check.sh: error: no OUT_DIR"),
    (["out", "--fast"], "gpu_check.sh: error: unknown option --fast"),
    (["out", "--data", "/nonexistent"], "gpu_check.sh: error: data folder /nonexistent not found"),
])
def test_script_mistakes_are_one_line_errors(tmp_path, args, message):
    done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), *args], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
