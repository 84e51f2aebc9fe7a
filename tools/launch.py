#!/usr/bin/env python3
"""Start one training command on several machines, watch it, and stop it everywhere: MXNet's
tools/launch.py, with torch.distributed as the engine.

    # two CPU workers on this machine
    python tools/launch.py -n 2 --launcher local python train_mnist.py --kv-store dist_sync
    # two machines listed in the file `hosts`, each training on its GPUs 0 and 1
    python tools/launch.py -n 2 -H hosts python train_cifar10.py --gpus 0,1 --kv-store dist_device_sync

One worker process runs per machine, in the same working directory as here (or in --sync-dst-dir). Its
output lines come back prefixed with `[host rank]`. When a worker fails, or on Ctrl-C, every worker on
every host is stopped (SIGTERM, then SIGKILL: a stopped or hung worker goes too, with every process it
started), and launch.py exits with the failed worker's exit code. With --max-restarts N, a failure instead
starts the command again on every host with `--resume` appended, up to N times; a worker that exits with
code 75 (PREEMPTED: it saved a checkpoint and stopped on purpose) is no failure: launch.py stops the others
and exits with 75 too, and the same command with --resume continues later.

The ssh launcher needs, on every host, ssh logins without a prompt (keys; ~/.ssh/config applies) and
`python3` on the PATH forwarded from here: each worker runs under tools/launch_guard.py, sent along as
`python3 -c`, which stops the worker's process group when launch.py stops it, dies, or loses the connection.

The environment each worker gets, on top of the forwarded variables and --env:

    MASTER_ADDR, MASTER_PORT   where machine 0 listens for the rendezvous (a port found free there)
    NNODES                     the number of machines (-n)
    NODE_RANK                  this machine, 0 .. NNODES-1
    WORLD_SIZE=NNODES, RANK=NODE_RANK, LOCAL_RANK=0
                               so a script with one process per machine (the CPU, or one GPU) can call
                               init_process_group(init_method='env://') as it is.

A script that runs G processes on each machine (one per GPU in --gpus) starts them itself and gives the
one for the g-th GPU LOCAL_RANK=g, RANK=NODE_RANK*G+g and WORLD_SIZE=NNODES*G, leaving MASTER_* as they
are. Those processes must stay in the worker's process group (no setsid): stopping a worker stops its group.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.hosts import Host, LaunchError, parse_hostfile  # noqa: E402
from tools.launch_guard import kill_session  # noqa: E402

GUARD_SOURCE = Path(__file__).with_name("launch_guard.py").read_text()
STOP_GRACE_S = 5.0  # a stopped worker gets SIGTERM, then SIGKILL this much later
SSH_TIMEOUT_S = 20.0  # for the reachability probe
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FORWARDED_NAMES = ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                   "VIRTUAL_ENV", "PYTHONUNBUFFERED")
FORWARDED_PREFIXES = ("CUDA_", "NCCL_", "GLOO_", "TORCH_")
FREE_PORT_SNIPPET = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"
ENV_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)[=:](?P<value>.*)", re.DOTALL)
OUTPUT_LOCK = threading.Lock()  # workers' lines come out whole, never interleaved
PREEMPTED = 75  # a worker's exit code for "saved a checkpoint and stopped on purpose" (EX_TEMPFAIL)
RESUME_OPTION = "--resume"  # what a restarted command gets: continue from the newest checkpoint


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Worker:
    rank: int
    host: Host
    process: subprocess.Popen
    relays: list[threading.Thread]  # copying its stdout and stderr here


def assign_hosts(hosts: list[Host], num_workers: int) -> list[Host]:
    """The host of each worker, rank by rank: the hostfile's slots in order."""
    slots = [host for host in hosts for _ in range(host.slots)]
    if num_workers > len(slots):
        raise LaunchError(f"-n {num_workers} workers, but the hostfile has room for {len(slots)} "
                          "(add hosts or slots=N)")
    chosen = slots[:num_workers]
    if chosen[0].is_loopback and not all(host.is_loopback for host in chosen):
        raise LaunchError(f"the first host, {chosen[0]}, is where the others meet, but they cannot reach it "
                          "by a loopback name: write its network name in the hostfile")
    return chosen


def parse_env(assignments: list[str]) -> dict[str, str]:
    """`--env NAME=VALUE`, or MXNet's `NAME:VALUE`."""
    env = {}
    for item in assignments:
        match = ENV_ASSIGNMENT.fullmatch(item)
        if not match:
            raise LaunchError(f"--env '{item}' is not NAME=VALUE")
        env[match["name"]] = match["value"]
    return env


def forwarded_env() -> dict[str, str]:
    """The variables of this shell that ssh workers get too (local workers get all of them)."""
    return {name: value for name, value in os.environ.items()
            if name in FORWARDED_NAMES or name.startswith(FORWARDED_PREFIXES)}


def rendezvous_env(rank: int, num_workers: int, master_addr: str, master_port: int) -> dict[str, str]:
    return {"MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port), "NNODES": str(num_workers),
            "NODE_RANK": str(rank), "WORLD_SIZE": str(num_workers), "RANK": str(rank), "LOCAL_RANK": "0"}


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def ssh_command(host: Host) -> list[str]:
    """ssh to `host` without ever prompting, and giving up within 15 s when the host stops answering
    (so a machine that dies fails its worker); the remote command is appended after it."""
    port = ["-p", str(host.port)] if host.port is not None else []
    return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3", *port]


def remote_command(env: dict[str, str], args: list[str], cwd: str | None = None) -> str:
    """One shell command line running `args` with `env` on the remote host, every word quoted."""
    command = shlex.join(["env", *(f"{k}={v}" for k, v in env.items()), *args])
    return f"cd {shlex.quote(cwd)} && exec {command}" if cwd else f"exec {command}"


def guard_args(python: str, command: list[str]) -> list[str]:
    return [python, "-c", GUARD_SOURCE, str(STOP_GRACE_S), *command]


def run_on_hosts(hosts: list[Host], commands: list[list[str]], what: str) -> list[str]:
    """Run one short command per host at once; the stdout of each, or LaunchError naming every host that
    failed with the last line ssh or the command wrote."""
    processes = [subprocess.Popen(c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for c in commands]
    outputs, problems = [], []
    for host, process in zip(hosts, processes):
        try:
            out, err = process.communicate(timeout=SSH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            err += f"no answer in {SSH_TIMEOUT_S:.0f} s"
        if process.returncode != 0:
            reason = (err.strip().splitlines() or [f"exit code {process.returncode}"])[-1]
            problems.append(f"{host} ({reason})")
        outputs.append(out)
    if problems:
        raise LaunchError(f"{what} {'; '.join(problems)}")
    return outputs


def probe_hosts(hosts: list[Host], env: dict[str, str]) -> int:
    """Check that every host answers over ssh before anything starts, and return a port that is free on
    the first host (the rendezvous)."""
    commands = [[*ssh_command(host), "--", host.name,
                 remote_command(env, ["python3", "-c", FREE_PORT_SNIPPET]) if i == 0 else "true"]
                for i, host in enumerate(hosts)]
    return int(run_on_hosts(hosts, commands, "cannot reach by ssh:")[0])


def sync_directory(hosts: list[Host], src: str, dst: str) -> None:
    if shutil.which("rsync") is None:
        raise LaunchError("--sync-dst-dir copies with rsync, which is not installed here")
    commands = [["rsync", "-az", "--mkpath", "-s", "-e", shlex.join(ssh_command(host)),
                 src.rstrip("/") + "/", f"{host.name}:{dst.rstrip('/')}/"] for host in hosts]
    run_on_hosts(hosts, commands, "cannot copy the working directory with rsync to")


def relay(stream: IO[bytes], prefix: str, out: IO[str]) -> None:
    for line in iter(stream.readline, b""):
        text = line.decode(errors="replace").rstrip("\n")
        with OUTPUT_LOCK:
            out.write(f"{prefix}{text}\n")
            out.flush()


def start_worker(rank: int, host: Host, args: list[str], env: dict[str, str] | None) -> Worker:
    """Start `args` in its own session, with stdin a pipe that launch.py closes to stop the worker."""
    process = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    prefix = f"[{host.address} {rank}] "
    relays = [threading.Thread(target=relay, args=(stream, prefix, out), daemon=True)
              for stream, out in ((process.stdout, sys.stdout), (process.stderr, sys.stderr))]
    for thread in relays:
        thread.start()
    return Worker(rank, host, process, relays)


def start_workers(args: argparse.Namespace, worker_hosts: list[Host], env: dict[str, str], command: list[str],
                  master_addr: str, master_port: int) -> list[Worker]:
    """Start `command` once per worker, each under the guard, with its rendezvous variables; when that is
    cut short (Ctrl-C), stop those already started."""
    workers: list[Worker] = []
    try:
        for rank, host in enumerate(worker_hosts):
            worker_env = {**env, **rendezvous_env(rank, args.num_workers, master_addr, master_port)}
            if args.launcher == "ssh":
                remote = remote_command(worker_env, guard_args("python3", command),
                                        args.sync_dst_dir or os.getcwd())
                workers.append(start_worker(rank, host, [*ssh_command(host), "--", host.name, remote], None))
            else:
                workers.append(start_worker(rank, host, guard_args(sys.executable, command), worker_env))
    except BaseException:
        stop_workers(workers)
        raise
    return workers


def wait_for_failure(workers: list[Worker]) -> Worker | None:
    """Wait until every worker has exited (None) or one has failed (that worker)."""
    while True:
        codes = [w.process.poll() for w in workers]
        failed = [w for w, code in zip(workers, codes) if code]
        if failed or None not in codes:
            return failed[0] if failed else None
        time.sleep(0.1)


def wait_for_exit(workers: list[Worker], seconds: float) -> None:
    """Give the workers up to `seconds` to exit by themselves."""
    deadline = time.monotonic() + seconds
    while any(w.process.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)


def stop_workers(workers: list[Worker]) -> list[int]:
    """Close each running worker's stdin so its guard stops the command; SIGKILL what is left after the
    guard's grace: a local worker's whole session (its guard, the command and all they started), an ssh
    worker's ssh (whose end makes the remote guard stop the command). Returns the stop signals that
    arrived meanwhile: they must not cut this short and leave workers behind."""
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in STOP_SIGNALS}
    try:
        stop_running(workers)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received


def stop_running(workers: list[Worker]) -> None:
    running = [w for w in workers if w.process.poll() is None]
    for w in running:
        try:
            w.process.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + STOP_GRACE_S + 5.0  # 5 s more for ssh to pass the end of stdin on
    try:
        for w in running:
            w.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    for w in running:
        if w.process.poll() is None:
            kill_session(w.process.pid)  # started with start_new_session: its pid is its session's
        w.process.wait()
    for w in workers:  # let the last lines through
        for thread in w.relays:
            thread.join(timeout=1.0)


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(code: int) -> str:
    """'exited with code 3', or 'exited with signal SIGKILL' for 128 + N (what the guard and shells return
    when signal N ended the command)."""
    try:
        if code > 128:
            return f"exited with signal {signal.Signals(code - 128).name}"
    except ValueError:  # not a signal's number
        pass
    return f"exited with code {code}"


def with_resume(command: list[str]) -> list[str]:
    return command if RESUME_OPTION in command else [*command, RESUME_OPTION]


def raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py", add_help=add_help,
        description="Run a training command on several machines with torch.distributed.",
        epilog="example: python tools/launch.py -n 2 -H hosts python train_mnist.py --kv-store dist_sync")
    workers = parser.add_argument_group("Workers")
    workers.add_argument("-n", "--num-workers", type=int, required=True,
                         help="number of workers: one per machine, or per slot of the hostfile")
    workers.add_argument("-s", "--num-servers", type=int,
                         help="ignored: torch.distributed needs no parameter servers")
    workers.add_argument("--launcher", choices=("ssh", "local"),
                         help="ssh: on the hosts of --hostfile; local: all workers on this machine "
                              "(default: ssh with a hostfile, local without)")
    workers.add_argument("--max-restarts", type=int, default=0, metavar="N",
                         help="when a worker fails, stop all and start them again with --resume appended to "
                              "the command (continue from the newest checkpoint), up to N times; a worker "
                              f"that exits with code {PREEMPTED} (preempted: it saved a checkpoint and "
                              "stopped) is no failure: launch.py stops the others and exits with "
                              f"{PREEMPTED} too")
    hosts = parser.add_argument_group("Hosts (ssh launcher)")
    hosts.add_argument("-H", "--hostfile",
                       help="file with one host per line: 'host', 'host:port' (ssh port) or 'host slots=N'")
    hosts.add_argument("--sync-dst-dir",
                       help="copy the working directory with rsync to this directory on every host "
                            "first, and run there")
    environment = parser.add_argument_group("Environment")
    environment.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                             help="set a variable for every worker (repeatable); PATH, PYTHONPATH, "
                                  "LD_LIBRARY_PATH, OMP_NUM_THREADS, CUDA_*, NCCL_*, GLOO_*, TORCH_* ... "
                                  "are forwarded from here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command each worker runs")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Reject contradictory options with parser.error, fill in the default launcher."""
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command to run")
    if args.num_workers < 1:
        parser.error(f"-n/--num-workers must be at least 1, not {args.num_workers}")
    if args.max_restarts < 0:
        parser.error(f"--max-restarts must be 0 or more, not {args.max_restarts}")
    args.launcher = args.launcher or ("ssh" if args.hostfile else "local")
    if args.launcher == "ssh" and not args.hostfile:
        parser.error("the ssh launcher needs -H/--hostfile")
    if args.launcher == "local" and (args.hostfile or args.sync_dst_dir):
        parser.error("-H/--hostfile and --sync-dst-dir are for the ssh launcher")
    return args


def rendezvous(args: argparse.Namespace, hosts: list[Host], env: dict[str, str]) -> tuple[str, int]:
    """Where worker 0 will listen: a port free there now (the ssh launcher checks every host answers)."""
    if args.launcher == "local":
        return "127.0.0.1", free_local_port()
    return hosts[0].address, probe_hosts(hosts, env)


def prepare_hosts(args: argparse.Namespace, hosts: list[Host], env: dict[str, str]) -> tuple[str, int]:
    """Check the hosts and copy the working directory to them; return where worker 0 will listen."""
    where = rendezvous(args, hosts, env)
    if args.sync_dst_dir:
        sync_directory(hosts, os.getcwd(), args.sync_dst_dir)
    return where


def main(args: argparse.Namespace) -> int:
    """Launch, watch and stop the workers, restarting them up to --max-restarts times; return the first
    failed worker's exit code of the last start (0 if none)."""
    if args.num_servers is not None:
        print("launch.py: note: -s/--num-servers is ignored: torch.distributed has no parameter servers",
              file=sys.stderr)
    env = {"PYTHONUNBUFFERED": "1", **parse_env(args.env)}
    if args.launcher == "ssh":
        worker_hosts = assign_hosts(parse_hostfile(args.hostfile), args.num_workers)
        env = {**forwarded_env(), **env}
    else:
        worker_hosts = [Host("localhost")] * args.num_workers
        env = {**os.environ, **env}
    hosts = list(dict.fromkeys(worker_hosts))

    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_interrupted)
    workers: list[Worker] = []
    command = args.command
    try:
        master_addr, master_port = prepare_hosts(args, hosts, env)
        restarts = 0
        while True:
            print(f"launch.py: {args.num_workers} worker(s) on {', '.join(map(str, hosts))}, "
                  f"rendezvous at {master_addr}:{master_port}", file=sys.stderr)
            workers = start_workers(args, worker_hosts, env, command, master_addr, master_port)
            failed = wait_for_failure(workers)
            if failed is None:
                return 0
            code = exit_code(failed.process.returncode)
            what = f"launch.py: worker {failed.rank} on {failed.host.address} {describe_exit(code)}"
            if code == PREEMPTED:
                print(f"{what} (preempted: it saved a checkpoint and stopped); stopping the other workers, "
                      f"the same command with {RESUME_OPTION} continues", file=sys.stderr)
                wait_for_exit(workers, STOP_GRACE_S)  # they may be stopping too, saving their part
                return code
            if restarts == args.max_restarts:
                no_restart_left = f" (--max-restarts {restarts}: no restart left)" if restarts else ""
                print(f"{what}, stopping the other workers{no_restart_left}", file=sys.stderr)
                return code
            restarts += 1
            print(f"{what}; restarting all workers with {RESUME_OPTION} "
                  f"(restart {restarts} of {args.max_restarts})", file=sys.stderr)
            if received := stop_workers(workers):
                raise Interrupted(received[0])
            # a fresh port: the old one may still be held, and the new process group must form
            master_addr, master_port = rendezvous(args, hosts, env)
            command = with_resume(args.command)
    except Interrupted as e:
        print(f"launch.py: {e} received, stopping all workers", file=sys.stderr)
        return 128 + e.signum
    finally:
        stop_workers(workers)


if __name__ == "__main__":
    parser = get_args_parser()
    try:
        sys.exit(main(check_args(parser, parser.parse_args())))
    except LaunchError as e:
        sys.exit(f"launch.py: error: {e}")
