"""The table of benchmarks/gpu_check.sh: one row per measurement, from the logs of its steps.

    python benchmarks/gpu_check_report.py --manifest SCRATCH/manifest.tsv --mode gpu --seconds 412

The manifest has one line per command the script ran: `key  kind  exit code  seconds  time box  label`
(tab-separated), the command's output being `key.log` beside it. An exit code `-` means the command was not
run: the script's time was spent. The kind says where the figure is:
- `train`: the median speed of the Speedometer lines after the first, and the last validation accuracy;
- `loader`: the same, and the waits of benchmarks/gpu_check_loader.py;
- `score`: score.py's `Finished with N images per second`;
- `peer:KEY`: benchmarks/gpu_check_timm.py's speed, and the ratio of row KEY's speed to it;
- `spawn:KEY`: benchmarks/gpu_check_spawn.py, which gives two rows: the processes, and the GPU defaults
  under KEY.
A command that failed, timed out or left no figure gets a FAILED row with the last lines of its log.
Prints the table under a line naming the machine, in Markdown.
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import re
import statistics
import sys
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.cli import UserError, run_main  # noqa: E402
from common.metrics_log import read_epochs  # noqa: E402
from common.tables import format_table  # noqa: E402

TIMED_OUT = {"124", "137"}  # timeout's exit codes: the command ran past its box (137: and was killed)
SCORE_LINE = re.compile(r"Finished with ([0-9.]+) images per second")
RESULT_LINE = re.compile(r"^gpu_check (\{.*\})$", re.MULTILINE)
GPU_DEFAULTS = "GPU defaults in each GPU process: cudnn.benchmark, TF32 matmuls and convolutions"
LAST_LINES = 3


@dataclass
class Command:
    """One line of the manifest, and where its log is."""
    key: str
    kind: str
    exit_code: str
    seconds: str
    box: str
    label: str
    path: str

    @functools.cached_property
    def log(self) -> str:
        if not os.path.exists(self.path):
            return ""
        with open(self.path, errors="replace") as f:
            return f.read()

    def last_lines(self) -> str:
        lines = [line.strip() for line in self.log.splitlines() if line.strip()]
        return " / ".join(line[:200] for line in lines[-LAST_LINES:]) or "(empty log)"

    def result(self) -> dict:
        """The JSON object of the helper's `gpu_check {...}` line; NoFigure if there is none."""
        found = RESULT_LINE.findall(self.log)
        if not found:
            raise NoFigure("no gpu_check line in the log")
        return json.loads(found[-1])


class NoFigure(Exception):
    """A command that succeeded but left no figure in its log."""


def speed(value: float) -> str:
    return f"{value:,.0f} img/s" if value >= 100 else f"{value:.3g} img/s"


def percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def count(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def training_figures(command: Command) -> tuple[float, str]:
    """(median speed of the Speedometer windows after the first, a note with the last validation accuracy)."""
    try:
        epochs = read_epochs(command.path)
    except UserError as e:
        raise NoFigure(str(e)) from None
    speeds = [s for epoch in epochs for s in epoch.speeds]
    if not speeds:
        raise NoFigure("no Speedometer line in the log")
    measured = speeds[1:] or speeds
    note = f"median of {count(len(measured), 'speed window')}"
    accuracy = epochs[-1].validation.get("accuracy")
    if accuracy is not None:
        note += f"; validation accuracy {accuracy:.4f} after {count(len(epochs), 'epoch')}"
    return statistics.median(measured), note


def rows_of(command: Command, speeds: dict[str, float]) -> list[list[str]]:
    """The table rows of one command that succeeded; records its speed in `speeds` under its key."""
    kind = command.kind
    if kind in ("train", "loader"):
        value, note = training_figures(command)
        if kind == "loader":
            waits = command.result()
            note = (f"waited for data: {percent(waits['waited_steps'])} of {count(waits['steps'], 'step')} "
                    f"longer than 5 ms, {percent(waits['waited_time'])} of the time; {note}")
    elif kind == "score":
        found = SCORE_LINE.findall(command.log)
        if not found:
            raise NoFigure("no 'Finished with N images per second' line in the log")
        value, note = float(found[-1]), ""
    elif kind.startswith("peer:"):
        result = command.result()
        if "skipped" in result:
            return [[command.key, command.label, "skipped", command.seconds, result["skipped"]]]
        value = result["images_per_sec"]
        ours = speeds.get(kind.removeprefix("peer:"))
        note = f"ours / timm: {ours / value:.2f}" if ours else "ours / timm: no figure of ours"
    elif kind.startswith("spawn:"):
        return spawn_rows(command, kind.removeprefix("spawn:"))
    else:
        raise UserError(f"unknown kind {kind!r} in the manifest")
    speeds[command.key] = value
    return [[command.key, command.label, speed(value), command.seconds, note]]


def spawn_rows(command: Command, defaults_key: str) -> list[list[str]]:
    """The row of the processes, and the row of the GPU defaults they found (`defaults_key`)."""
    result = command.result()
    flags = {name: result[name] for name in ("cudnn_benchmark", "tf32_matmul", "tf32_conv")}
    flags_note = ", ".join(f"{name}={value}" for name, value in flags.items())
    if result["backend"] == "nccl":
        defaults = ["on", flags_note] if all(flags.values()) else ["FAILED", f"not all on: {flags_note}"]
    else:
        defaults = ["needs a GPU", f"{result['backend']} processes keep torch's defaults: {flags_note}"]
    return [[command.key, command.label, "ok", command.seconds,
             f"{count(result['processes'], 'process', 'processes')} over {result['backend']}"],
            [defaults_key, GPU_DEFAULTS, defaults[0], "", defaults[1]]]


def unmeasured_rows(command: Command, result: str, seconds: str, note: str) -> list[list[str]]:
    """The rows of a command that gave no figure: its own, and the GPU defaults' after a spawn command."""
    rows = [[command.key, command.label, result, seconds, note]]
    if command.kind.startswith("spawn:"):
        rows.append([command.kind.removeprefix("spawn:"), GPU_DEFAULTS, result, "", f"see {command.key}"])
    return rows


def table(manifest: str) -> str:
    folder, rows, speeds = os.path.dirname(manifest), [], {}
    with open(manifest, newline="") as f:
        for key, kind, exit_code, seconds, box, label in csv.reader(f, delimiter="\t",
                                                                    quoting=csv.QUOTE_NONE):
            command = Command(key, kind, exit_code, seconds, box, label, os.path.join(folder, f"{key}.log"))
            if exit_code == "-":
                rows += unmeasured_rows(command, "not run", "-", "the script's time was spent")
            elif exit_code in TIMED_OUT:
                rows += unmeasured_rows(command, "FAILED", seconds,
                                        f"timed out after {box} s: {command.last_lines()}")
            elif exit_code != "0":
                rows += unmeasured_rows(command, "FAILED", seconds,
                                        f"exit code {exit_code}: {command.last_lines()}")
            else:
                try:
                    rows += rows_of(command, speeds)
                except (NoFigure, KeyError, ValueError) as e:
                    rows += unmeasured_rows(command, "FAILED", seconds, f"{e}: {command.last_lines()}")
    rows.sort(key=lambda row: row[0])  # stable: a command's rows keep their order
    cells = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    return format_table(["step", "measurement", "result", "seconds", "notes"], cells, "markdown")


def machine() -> str:
    if torch.cuda.is_available():
        device = (f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, CUDA {torch.version.cuda}, "
                  f"cuDNN {torch.backends.cudnn.version()}")
    else:
        device = "no GPU"
    return (f"{device}; {os.cpu_count()} CPU cores; torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def main(args: argparse.Namespace) -> None:
    print(f"# benchmarks/gpu_check.sh ({args.mode}, {args.seconds} s)\n\n{machine()}\n\n"
          f"{table(args.manifest)}", end="")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="the manifest the script wrote")
    parser.add_argument("--mode", required=True, choices=("gpu", "cpu-smoke"))
    parser.add_argument("--seconds", required=True, help="how long the steps took in all")
    run_main(lambda: main(parser.parse_args()))
