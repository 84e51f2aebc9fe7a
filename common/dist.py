"""Where each training process runs: rank, world size and device. The one place that parses `--gpus`.

How processes come to be (read from the environment, as torchrun and tools/launch.py set it):
- nothing set: one machine. `--gpus ''` or one GPU: this process trains alone; `--gpus 0,1,...`: it starts
  one process per GPU (DistributedDataParallel over NCCL).
- `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` without `LOCAL_WORLD_SIZE` (tools/launch.py): this
  process is machine RANK of WORLD_SIZE machines; it starts one process per GPU of its `--gpus` (or one
  CPU process), and global ranks are RANK * per_machine + i.
- torchrun (which also sets `LOCAL_RANK` and `LOCAL_WORLD_SIZE`): this process is one worker already;
  it takes GPU `--gpus[LOCAL_RANK]` (or the CPU).
GPUs use NCCL, CPUs gloo. A process on a GPU lets cuDNN pick the fastest convolution algorithms for the
run's fixed input shapes and computes float32 matmuls and convolutions in TF32 (`_use`); nothing changes on
the CPU. `data_threads` is how many processes decode data for each training process.

A collective waits at most `timeout` seconds (`run(..., timeout=)`, fit's --dist-timeout) for the other
processes; `collective(name, info)` turns what gloo raises when a peer stopped responding or died into a
one-line `DistTimeoutError` instead of a traceback, so that a hung run ends (and tools/launch.py can
restart it).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from common.cli import UserError

MXNET_DATA_THREADS = 4  # MXNet's --data-nthreads, kept on the CPU
MAX_GPU_DATA_THREADS = 12  # decoding processes per GPU process, however many cores the machine has


# what gloo and the TCP store say when a peer stopped answering (timeout) or died (its sockets closed)
PEER_LOST = re.compile(r"timed out|timeout|connection closed|connection reset|broken pipe|failed to recv",
                       re.IGNORECASE)


class DistTimeoutError(UserError):
    """A collective got no answer from another process in time: it stopped responding or died. The process
    then leaves at once (`run_main`): tearing down what still waits on the lost peer (DDP, the gloo process
    group) can block forever at interpreter exit."""
    leave_at_once = True


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    timeout: float | None = None  # seconds a collective waits for the others (None: torch's default)

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def parse_gpus(gpus: str | None) -> list[int]:
    """`--gpus '0,2'` -> [0, 2]; '' or None -> [] (the CPU). Raises UserError for malformed lists."""
    if not gpus or not gpus.strip():
        return []
    try:
        ids = [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise UserError(f"--gpus '{gpus}' is not a comma-separated list of GPU numbers") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise UserError(f"--gpus '{gpus}': GPU numbers must be distinct and non-negative")
    return ids


def check_gpus(ids: list[int]) -> None:
    """Raise ValueError with a one-line reason when a requested GPU does not exist."""
    if not ids:
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise UserError(f"--gpus {','.join(map(str, ids))} asked for a GPU but this machine has none "
                         "(use --gpus '' to train on the CPU)")
    missing = [i for i in ids if i >= available]
    if missing:
        raise UserError(f"--gpus asks for GPU {missing[0]} but this machine has {available} (0-{available - 1})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None


def plan(kv_store: str) -> tuple[int, int, int | None]:
    """(machine rank, machines, torchrun local rank or None) from the environment, checked against
    --kv-store: dist_* stores need a launcher's variables."""
    rank, world, local_world = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_WORLD_SIZE")
    if kv_store.startswith("dist") and rank is None:
        raise UserError(f"--kv-store {kv_store} trains across machines: start it with tools/launch.py (or "
                         "torchrun), which set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT")
    if rank is None:
        return 0, 1, None
    if world is None or not 0 <= rank < world:
        raise UserError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process group")
    if local_world is not None:  # torchrun: already one process per device
        return rank, world, _env_int("LOCAL_RANK") or 0
    return rank, world, None


def run(gpus_option: str, kv_store: str, batch_size: int, worker: Callable[[DistInfo], Any],
        timeout: float | None = None) -> Any:
    """Call `worker(info)` in every process this machine hosts and return rank 0's result (None elsewhere).
    In a process group, collectives wait at most `timeout` seconds for the others (None: torch's default)."""
    if timeout is not None and not timeout > 0:
        raise UserError(f"--dist-timeout {timeout:g} must be a positive number of seconds")
    gpus = parse_gpus(gpus_option)
    check_gpus(gpus)
    machine, machines, torchrun_local = plan(kv_store)
    if torchrun_local is not None:
        return _in_group(machine, machines, _device(gpus, torchrun_local), worker, timeout)
    per_machine = max(1, len(gpus))
    world = machines * per_machine
    if batch_size < world:
        raise UserError(f"--batch-size {batch_size} is smaller than the {world} processes it is split across")
    if world == 1:
        return worker(DistInfo(device=_use(_device(gpus, 0))))
    if machines == 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = os.environ.get("MASTER_PORT") or str(free_port())
    if per_machine == 1:  # one CPU process (or one GPU) per machine: no need to spawn
        return _in_group(machine, world, _device(gpus, 0), worker, timeout)
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    try:
        mp.spawn(_spawned, args=(machine * per_machine, world, gpus, worker, timeout, results),
                 nprocs=per_machine)
    except mp.ProcessExitedException as e:
        if e.exit_code > 0:  # a process that ended on purpose (75: stopped by a signal, after saving)
            raise SystemExit(e.exit_code) from None
        raise
    return results.get() if not results.empty() else None


def _device(gpus: list[int], local_rank: int) -> torch.device:
    """The device of the process with this local rank: its GPU of --gpus, or the CPU without GPUs."""
    return torch.device(f"cuda:{gpus[local_rank % len(gpus)]}") if gpus else torch.device("cpu")


def _use(device: torch.device) -> torch.device:
    """Make `device` this process's. On a GPU, with the defaults of the reference training scripts: cuDNN
    benchmarks its convolution algorithms once per input shape (a run's shapes are fixed), and float32 matmuls
    and convolutions run in TF32. The CPU keeps torch's defaults."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        # the flags, not torch.set_float32_matmul_precision (which also changes CPU matmuls) nor the newer
        # fp32_precision settings (after which reading these flags, as inductor does, raises)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def data_threads(requested: int | None, gpus_option: str) -> int:
    """The number of processes that decode data for each training process (--data-nthreads): `requested`
    when given; on the CPU (no `--gpus`) MXNet's 4; with GPUs, this machine's cores shared by its GPU
    processes (`--gpus`, or torchrun's LOCAL_WORLD_SIZE), at most MAX_GPU_DATA_THREADS and at least 1."""
    if requested is not None:
        return requested
    gpus = parse_gpus(gpus_option)
    if not gpus:
        return MXNET_DATA_THREADS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = _env_int("LOCAL_WORLD_SIZE") or len(gpus)
    return max(1, min(MAX_GPU_DATA_THREADS, cores // processes))


def _spawned(local_rank: int, first_rank: int, world: int, gpus: list[int], worker: Callable,
             timeout: float | None, results) -> None:
    result = _in_group(first_rank + local_rank, world, _device(gpus, local_rank), worker, timeout)
    if first_rank + local_rank == 0:
        results.put(result)


def _in_group(rank: int, world: int, device: torch.device, worker: Callable, timeout: float | None) -> Any:
    _use(device)
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                             rank=rank, world_size=world, device_id=device if device.type == "cuda" else None,
                             timeout=None if timeout is None else datetime.timedelta(seconds=timeout))
    try:
        return worker(DistInfo(rank=rank, world_size=world, device=device, timeout=timeout))
    finally:
        tdist.destroy_process_group()


def gather_objects(obj: Any, info: DistInfo) -> list:
    """`obj` of every process, in rank order (a collective: every process calls it)."""
    if not info.distributed:
        return [obj]
    objects = [None] * info.world_size
    tdist.all_gather_object(objects, obj)
    return objects


def gather_concatenated(parts: list[list[torch.Tensor]], info: DistInfo) -> list[torch.Tensor] | None:
    """Each of `parts` (lists of tensors, all empty or none) concatenated over every process's, in rank
    order; None when no process has any (a collective: every process calls it)."""
    mine = [torch.cat(part) for part in parts] if parts and parts[0] else None
    gathered = [g for g in gather_objects(mine, info) if g is not None]
    return [torch.cat(column) for column in zip(*gathered)] if gathered else None


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum `t` over all processes (a no-op when training alone)."""
    if info.distributed:
        t = t.clone()
        tdist.all_reduce(t)
    return t


@contextlib.contextmanager
def collective(name: str, info: DistInfo) -> Iterator[None]:
    """Run the collective(s) of the `with` block, named `name` ("the gradient all-reduce"); when a peer
    stopped responding or died, raise DistTimeoutError, one line naming the collective, this rank and the
    timeout, instead of gloo's traceback. Any other exception passes through unchanged."""
    try:
        yield
    except RuntimeError as e:  # torch.distributed.DistError and its subclasses are RuntimeErrors
        if not PEER_LOST.search(str(e)):
            raise
        waited = "torch's default timeout" if info.timeout is None else f"--dist-timeout {info.timeout:g} s"
        raise DistTimeoutError(f"rank {info.rank}: {name} got no answer from a peer within {waited} "
                               "(a process stopped responding or died)") from e
