#!/usr/bin/env python
"""Training speed over 1, 2, 4 .. GPUs and 2, 4 .. machines, as MXNet's benchmark.py: a table and a plot.

    # one machine with 8 GPUs: 1, 2, 4, 8 GPUs
    python benchmark.py --gpu_count 8 --networks resnet-50:32:224 inception-v3:32:299
    # then 2 and 4 machines of 8 GPUs each, over the hosts in `hosts` (see tools/launch.py)
    python benchmark.py --worker_file hosts --worker_count 4 --gpu_count 8 --networks resnet-152:32:224
    # no GPU: 1 and 2 CPU processes on this machine, a small network
    python benchmark.py --gpu_count 0 --cpu-processes 2 --networks resnet-20:32:32 lenet:64:1,28,28

Each network is `network:batch_size:image_size`: a name of symbols/ with an optional `-LAYERS` depth
(`resnet-152`, `vgg-16`), the batch size per GPU (per process on the CPU), and the image side S for
3xSxS images (or a full shape C,H,W). Each measurement is one `train_imagenet.py --benchmark 1` run on
synthetic data, alone on one machine or started on several by tools/launch.py (dist_sync_device on
GPUs, dist_sync on CPU processes), with the same batch per device, so the global batch grows with the
devices. A run stops once it has logged --windows speed lines after the first (which includes the
warm-up), or at --time-limit; its speed is the mean of those lines.

Without GPUs (or with --gpu_count 0) each CPU process stands for a GPU and uses --cpu-threads threads.

Written to --output-dir (default scaling/): results.md and results.csv (samples/sec, speedup over one
device, efficiency), speedup.png (measured against ideal linear speedup) and every run's log in logs/.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Iterable

import torch
from tqdm import tqdm

from common.cli import UserError
from common.hosts import LaunchError, parse_hostfile
from common.metrics_log import parse_speedometer_line
from common.plotting import Panel, Series, save_line_plots
from common.tables import format_table
from symbols import list_networks

ROOT = os.path.dirname(os.path.abspath(__file__))
STOP_GRACE_S = 15.0  # launch.py needs up to 10 s to stop its workers after SIGTERM
DEFAULT_GPU_NETWORK = "resnet-50:32:224"
DEFAULT_CPU_NETWORK = "lenet:64:1,28,28"


@dataclass(frozen=True)
class NetworkSpec:
    """One `--networks` entry."""
    network: str
    num_layers: int | None
    batch_size: int  # per device
    image_shape: tuple[int, int, int]

    @property
    def label(self) -> str:
        return self.network if self.num_layers is None else f"{self.network}-{self.num_layers}"


@dataclass(frozen=True)
class Setup:
    """Where one run trains: `machines` machines with `per_machine` devices (GPUs or CPU processes) each."""
    machines: int
    per_machine: int

    @property
    def devices(self) -> int:
        return self.machines * self.per_machine


@dataclass
class Result:
    spec: NetworkSpec
    setup: Setup
    speed: float | None  # samples/sec over all devices; None when the run logged no speed after the first
    log_path: str
    problem: str = ""  # why there is no speed


def parse_network_spec(text: str, known: Iterable[str] | None = None) -> NetworkSpec:
    """`network:batch_size:image_size` -> NetworkSpec; UserError with a one-line reason otherwise."""
    known = list(list_networks() if known is None else known)
    fields = text.split(":")
    if len(fields) != 3:
        raise UserError(f"'{text}' is not network:batch_size:image_size (e.g. resnet-50:32:224)")
    name, batch, size = fields
    depth = re.fullmatch(r"(?P<family>.+)-(?P<layers>\d+)", name)
    if name in known:
        network, num_layers = name, None
    elif depth and depth["family"] in known:
        network, num_layers = depth["family"], int(depth["layers"])
    else:
        raise UserError(f"'{text}': unknown network '{name}'; choose from: {', '.join(known)} "
                        "(with -LAYERS for a depth, e.g. resnet-152)")
    try:
        batch_size = int(batch)
        dims = [int(d) for d in size.split(",")]
    except ValueError:
        raise UserError(f"'{text}': batch_size and image_size must be whole numbers "
                        "(image_size S or C,H,W)") from None
    shape = (3, dims[0], dims[0]) if len(dims) == 1 else tuple(dims)
    if batch_size < 1 or len(shape) != 3 or min(shape) < 1:
        raise UserError(f"'{text}': the batch size must be positive and the image size S or C,H,W, "
                        "all positive")
    return NetworkSpec(network, num_layers, batch_size, shape)


def network_spec(text: str) -> NetworkSpec:
    try:
        return parse_network_spec(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_speeds(lines: Iterable[str]) -> list[float]:
    """The samples/sec of every Speedometer line (ours or MXNet's, `Batch [A-B]` or `Batch [B]`), in order."""
    return [speed.samples_per_sec for line in lines if (speed := parse_speedometer_line(line))]


def measured_speed(speeds: list[float], windows: int) -> float | None:
    """The mean of up to `windows` speeds after the first (which includes the warm-up); None if none."""
    measured = speeds[1:1 + windows]
    return statistics.fmean(measured) if measured else None


def doubling(max_count: int) -> list[int]:
    """1, 2, 4 .. up to max_count, and max_count itself when it is not a power of two (as MXNet's series)."""
    counts = [1]
    while counts[-1] * 2 <= max_count:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == max_count else counts + [max_count]


def plan_setups(per_machine: int, machines: int) -> list[Setup]:
    """1, 2, 4 .. devices on one machine, then 2, 4 .. machines with all their devices."""
    return ([Setup(1, d) for d in doubling(per_machine)]
            + [Setup(m, per_machine) for m in doubling(machines)[1:]])


def training_command(spec: NetworkSpec, setup: Setup, on_gpus: bool, disp_batches: int,
                     hostfile: str | None) -> list[str]:
    """The train_imagenet.py run of `setup`, alone or under tools/launch.py, to run in the repository root
    (launch.py runs it in the same directory on the other hosts)."""
    several_processes = setup.machines > 1 or (not on_gpus and setup.per_machine > 1)
    kv_store = ("dist_sync_device" if on_gpus else "dist_sync") if several_processes else "device"
    python = "python3" if hostfile else sys.executable  # on other hosts, the python3 of the forwarded PATH
    train = [python, "train_imagenet.py",
             "--benchmark", "1", "--network", spec.network,
             "--batch-size", str(spec.batch_size * setup.devices),
             "--image-shape", ",".join(map(str, spec.image_shape)),
             "--gpus", ",".join(map(str, range(setup.per_machine))) if on_gpus else "",
             "--kv-store", kv_store, "--disp-batches", str(disp_batches), "--num-epochs", "1"]
    if spec.num_layers is not None:
        train += ["--num-layers", str(spec.num_layers)]
    if not several_processes:
        return train
    workers = setup.machines if on_gpus else setup.devices  # one launch.py worker per CPU process
    launch = [sys.executable, os.path.join("tools", "launch.py"), "-n", str(workers)]
    launch += ["-H", hostfile] if hostfile else ["--launcher", "local"]
    return [*launch, *train]


def write_hostfile(path: str, hosts: list[str], slots: int) -> str:
    """The first hosts of --worker_file, each with room for `slots` workers (CPU processes)."""
    with open(path, "w") as f:
        f.writelines(f"{host} slots={slots}\n" for host in hosts)
    return path


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the run's process group (launch.py then stops its workers on every host), SIGKILL what is
    left after STOP_GRACE_S."""
    for signum, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            pass
    try:  # members that outlived the leader (a spawned worker finishing its exit)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def timed_run(command: list[str], log_path: str, time_limit: float, windows: int, env: dict[str, str],
              cwd: str | None = None) -> tuple[list[float], int | None]:
    """Run `command` into `log_path` until it exits, has logged `windows` speeds after the first, or
    `time_limit` seconds pass; return its speeds and its exit code (None when it was stopped)."""
    speeds: list[float] = []
    enough = threading.Event()
    with open(log_path, "w") as log:
        log.write(f"# {subprocess.list2cmdline(command)}\n")
        log.flush()
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)

        def copy_output() -> None:
            for line in process.stdout:
                log.write(line)
                speeds.extend(parse_speeds([line]))
                if len(speeds) > windows:
                    enough.set()
            process.wait()  # end of output: the run is over, and its exit code known
            enough.set()

        reader = threading.Thread(target=copy_output, daemon=True)
        reader.start()
        try:
            enough.wait(timeout=time_limit)
            code = process.poll()
        finally:
            stop_process_group(process)
            reader.join(timeout=5)
    return speeds[:1 + windows], code


def run_setup(spec: NetworkSpec, setup: Setup, args: argparse.Namespace, on_gpus: bool,
              hosts: list[str]) -> Result:
    name = f"{spec.label}-{setup.machines}x{setup.per_machine}"
    logs = os.path.abspath(os.path.join(args.output_dir, "logs"))  # runs start in the repository root
    log_path = os.path.join(logs, f"{name}.log")
    hostfile = None
    if setup.machines > 1:
        hostfile = write_hostfile(os.path.join(logs, f"hosts-{setup.machines}"),
                                  hosts[:setup.machines], 1 if on_gpus else setup.per_machine)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not on_gpus:
        env["OMP_NUM_THREADS"] = str(args.cpu_threads)
    speeds, code = timed_run(training_command(spec, setup, on_gpus, args.disp_batches, hostfile), log_path,
                             args.time_limit, args.windows, env, cwd=ROOT)
    speed = measured_speed(speeds, args.windows)
    problem = ""
    if speed is None:
        problem = (f"exited with code {code}" if code else
                   f"no speed line after the first within {args.time_limit:g} s "
                   "(raise --time-limit or lower --disp-batches)")
    return Result(spec, setup, speed, log_path, problem)


def speedups(results: list[Result]) -> list[float | None]:
    """Each result's speed over its network's one-device speed."""
    single = {r.spec: r.speed for r in results if r.setup.devices == 1}
    return [r.speed / single[r.spec] if r.speed and single.get(r.spec) else None for r in results]


def results_table(results: list[Result], fmt: str) -> str:
    header = ["network", "batch/device", "image", "machines", "devices/machine", "devices", "samples/sec",
              "speedup", "efficiency"]
    rows = []
    for r, speedup in zip(results, speedups(results)):
        rows.append([r.spec.label, str(r.spec.batch_size), "x".join(map(str, r.spec.image_shape)),
                     str(r.setup.machines), str(r.setup.per_machine), str(r.setup.devices),
                     f"{r.speed:.1f}" if r.speed is not None else None,
                     f"{speedup:.2f}" if speedup is not None else None,
                     f"{speedup / r.setup.devices:{'.2f' if fmt == 'csv' else '.0%'}}" if speedup is not None
                     else None])
    return format_table(header, rows, fmt)


def plot_speedup(results: list[Result], path: str, device_names: tuple[str, str], title: str) -> None:
    """Measured speedup of each network against the ideal line, as MXNet's speedup chart. `device_names`
    is the singular and the plural: ('GPU', 'GPUs')."""
    device, devices = device_names
    counts = sorted({r.setup.devices for r in results})
    series = [Series("ideal", counts, counts, color="gray", linestyle="--", marker="")]
    ups = speedups(results)
    for spec in dict.fromkeys(r.spec for r in results):
        points = [(r.setup.devices, s) for r, s in zip(results, ups) if r.spec == spec and s]
        series.append(Series(f"{spec.label} ({spec.batch_size}/{device})",
                             [d for d, _ in points], [s for _, s in points]))
    save_line_plots([Panel(f"Speedup over one {device}", devices, "speedup", series,
                           integer_x=True, y_from_zero=True)], path, title=title)


def describe_devices(on_gpus: bool, cpu_threads: int) -> str:
    """A short title for the plot: the GPU model, or the cores and threads."""
    if on_gpus:
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()}-core CPU, {cpu_threads} thread(s) per process"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    runs = parser.add_argument_group("What to measure")
    runs.add_argument("--networks", nargs="+", type=network_spec, metavar="NETWORK:BATCH_SIZE:IMAGE_SIZE",
                      help=f"networks with their batch size per device and image size (default: "
                           f"{DEFAULT_GPU_NETWORK} on GPUs, {DEFAULT_CPU_NETWORK} on CPU processes)")
    runs.add_argument("--gpu_count", type=int, default=torch.cuda.device_count(),
                      help="GPUs per machine: runs 1, 2, 4 .. of them (default: all of this machine's; "
                           "0: CPU processes instead)")
    runs.add_argument("--worker_file", help="hostfile of tools/launch.py, for runs on several machines")
    runs.add_argument("--worker_count", type=int, default=1,
                      help="machines: after one machine, runs 2, 4 .. of the first hosts of --worker_file")
    cpu = parser.add_argument_group("CPU processes (without GPUs)")
    cpu.add_argument("--cpu-processes", type=int, default=2,
                     help="processes per machine, each standing for a GPU: runs 1, 2, 4 .. of them")
    cpu.add_argument("--cpu-threads", type=int, default=1, help="threads of each CPU process")
    timing = parser.add_argument_group("Timing and output")
    timing.add_argument("--time-limit", type=float, default=600,
                        help="seconds after which a run is stopped, measured or not (MXNet's 10 minutes)")
    timing.add_argument("--windows", type=int, default=5,
                        help="speed lines to average after the first; a run stops once it has them")
    timing.add_argument("--disp-batches", type=int, default=10, help="batches per speed line")
    timing.add_argument("--output-dir", default="scaling",
                        help="where results.md, results.csv, speedup.png and logs/ go (default: scaling/)")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """Reject impossible requests up front, fill in the default network; return the hosts of --worker_file
    (none for one machine)."""
    for flag, value, minimum in (("--gpu_count", args.gpu_count, 0), ("--worker_count", args.worker_count, 1),
                                 ("--cpu-processes", args.cpu_processes, 1),
                                 ("--cpu-threads", args.cpu_threads, 1), ("--time-limit", args.time_limit, 1),
                                 ("--windows", args.windows, 1), ("--disp-batches", args.disp_batches, 1)):
        if value < minimum:
            parser.error(f"{flag} must be at least {minimum}, not {value:g}")
    available = torch.cuda.device_count()
    if args.gpu_count > available:
        parser.error(f"--gpu_count {args.gpu_count}, but this machine has {available} GPU(s) "
                     "(--gpu_count 0 measures CPU processes)")
    if args.networks is None:
        args.networks = [parse_network_spec(DEFAULT_GPU_NETWORK if args.gpu_count else DEFAULT_CPU_NETWORK)]
    if args.worker_count == 1:
        return []
    if not args.worker_file:
        parser.error(f"--worker_count {args.worker_count} needs --worker_file, the hosts to run on")
    try:
        hosts = [str(host) for host in parse_hostfile(args.worker_file)]
    except LaunchError as e:
        parser.error(str(e))
    if len(hosts) < args.worker_count:
        parser.error(f"--worker_count {args.worker_count}, but {args.worker_file} lists {len(hosts)} host(s)")
    return hosts


def main(args: argparse.Namespace, hosts: list[str]) -> list[Result]:
    """Run every network over every set-up; write and print the table, write the plot."""
    on_gpus = args.gpu_count > 0
    specs = args.networks
    setups = plan_setups(args.gpu_count if on_gpus else args.cpu_processes, args.worker_count)
    device_names = ("GPU", "GPUs") if on_gpus else ("CPU process", "CPU processes")
    os.makedirs(os.path.join(args.output_dir, "logs"), exist_ok=True)
    results = []
    with tqdm(total=len(specs) * len(setups), desc="benchmark", unit="run", disable=None) as bar:
        for spec in specs:
            for setup in setups:
                result = run_setup(spec, setup, args, on_gpus, hosts)
                results.append(result)
                outcome = f"{result.speed:.1f} samples/sec" if result.speed is not None else result.problem
                tqdm.write(f"{spec.label}: {setup.machines} machine(s) x {setup.per_machine} "
                           f"{device_names[setup.per_machine > 1]}: {outcome}  [{result.log_path}]",
                           file=sys.stderr)
                bar.update(1)
    description = describe_devices(on_gpus, args.cpu_threads)
    table = results_table(results, "markdown")
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(f"{description}, torch {torch.__version__}\n\n{table}")
    with open(os.path.join(args.output_dir, "results.csv"), "w") as f:
        f.write(results_table(results, "csv"))
    plot_speedup(results, os.path.join(args.output_dir, "speedup.png"), device_names, description)
    print(table, end="")
    return results


def raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):  # stop the run under way too, as on Ctrl-C
        signal.signal(stop_signal, raise_interrupt)
    parser = get_args_parser()
    arguments = parser.parse_args()
    try:
        results = main(arguments, check_args(parser, arguments))
    except KeyboardInterrupt:  # the run under way has been stopped, with everything it started
        print("benchmark.py: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(1 if any(r.speed is None for r in results) else 0)
