"""tools/launch.py with real processes: local workers, the rendezvous contract with gloo, faults and Ctrl-C,
restarts (--max-restarts) and preemption (exit code 75), workers that stop responding, bad hostfiles and
unreachable hosts, and ssh to a throw-away sshd on loopback (tests/sshd_fixture.sh) where 127.0.0.1 and
127.0.0.2 play two machines."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from common.hosts import Host, LaunchError, parse_hostfile
from tools.launch import assign_hosts, describe_exit, parse_env, remote_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "tools", "launch.py")
SSHD_FIXTURE = os.path.join(ROOT, "tests", "sshd_fixture.sh")
PREFIXED_LINE = re.compile(r"\[(?P<host>\S+) (?P<rank>\d+)\] (?P<text>.*)")

PRINT_ENV = """
import os
names = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "NNODES", "NODE_RANK", "LOCAL_RANK", "GREETING")
print(*(f"{name}={os.environ.get(name)}" for name in names), f"CWD={os.getcwd()}")
"""
ALL_REDUCE = """
import torch
import torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
total = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(total)
print(f"rank={dist.get_rank()} world={dist.get_world_size()} sum={total.item():g}")
dist.destroy_process_group()
"""
# Each worker leaves its pid in DIR/RANK.pid; with `fail`, rank 1 exits 3 once rank 0 is up; the rest sleep.
SLEEP_OR_FAIL = """
import os, sys, time
directory, mode, rank = sys.argv[1], sys.argv[2], os.environ["RANK"]
with open(os.path.join(directory, "tmp" + rank), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(directory, "tmp" + rank), os.path.join(directory, rank + ".pid"))
if mode == "fail" and rank == "1":
    while not os.path.exists(os.path.join(directory, "0.pid")):
        time.sleep(0.05)
    sys.exit(3)
time.sleep(600)
"""

# Restarts: each start appends "RANK RESUMED MASTER_PORT PID" to DIR/starts. Rank 1 fails as FAILURE says
# (`kill`: SIGKILL on its first start, once rank 0 is up; `always`: exit code 3 on every start; `preempt`:
# exit code 75 on its first start, as rank 0 does a second later, after writing DIR/0.saved); the others
# sleep on a first start. A start with --resume exits 0.
RESTARTABLE = """
import os, signal, sys, time
directory, failure, rank = sys.argv[1], sys.argv[2], os.environ["RANK"]
resumed = sys.argv[-1] == "--resume"
with open(os.path.join(directory, "starts"), "a") as f:
    f.write(f"{rank} {int(resumed)} {os.environ['MASTER_PORT']} {os.getpid()}\\n")
if failure == "always" and rank == "1":
    sys.exit(3)
if resumed:
    sys.exit(0)
if failure == "preempt":
    if rank == "0":
        time.sleep(1)
        open(os.path.join(directory, "0.saved"), "w").close()
    sys.exit(75)
if failure == "kill" and rank == "1":
    while len(open(os.path.join(directory, "starts")).readlines()) < 2:  # rank 0 is up
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(600)
"""
# Rank 1 starts a child in a process group of its own, then stops itself (SIGSTOP); a SIGTERM that reaches
# it writes DIR/1.terminated. Rank 0 exits with code 3 once that happened. Pids go to DIR/RANK.pid and
# DIR/child.pid.
STOPPED_WORKER = """
import os, signal, subprocess, sys, time
directory, rank = sys.argv[1], os.environ["RANK"]
def write(name, text=""):
    with open(os.path.join(directory, "tmp" + rank), "w") as f:
        f.write(text)
    os.replace(os.path.join(directory, "tmp" + rank), os.path.join(directory, name))
if rank == "1":
    def terminated(signum, frame):
        write("1.terminated")
        sys.exit(1)
    signal.signal(signal.SIGTERM, terminated)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], process_group=0)
    write("child.pid", str(child.pid))
    write("1.pid", str(os.getpid()))
    os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(600)
write("0.pid", str(os.getpid()))
while not os.path.exists(os.path.join(directory, "1.pid")):
    time.sleep(0.05)
sys.exit(3)
"""
# Rank 0 stops its own guard (SIGSTOP), so that only launch.py can end it; rank 1 then exits with code 3.
STOPPED_GUARD = """
import os, signal, sys, time
directory, rank = sys.argv[1], os.environ["RANK"]
if rank == "0":
    os.kill(os.getppid(), signal.SIGSTOP)
    with open(os.path.join(directory, "tmp"), "w") as f:
        f.write(f"{os.getpid()} {os.getppid()}")
    os.replace(os.path.join(directory, "tmp"), os.path.join(directory, "0.pid"))
    time.sleep(600)
while not os.path.exists(os.path.join(directory, "0.pid")):
    time.sleep(0.05)
sys.exit(3)
"""


def launch(*args: str, env: dict[str, str] | None = None, cwd: str = ROOT,
           timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, LAUNCH, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def outputs_by_rank(stdout: str) -> dict[int, tuple[str, str]]:
    """{rank: (host, the worker's last line)} from launch.py's `[host rank] text` lines."""
    found = {}
    for line in stdout.splitlines():
        match = PREFIXED_LINE.fullmatch(line)
        assert match, f"line without its [host rank] prefix: {line!r}"
        found[int(match["rank"])] = (match["host"], match["text"])
    return found


def fields(text: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in text.split())


def alive(pid: int) -> bool:
    """Whether process `pid` still runs: a zombie (killed, its exit status not yet collected by whoever
    adopted it) does not."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except ProcessLookupError:
        return False
    except OSError:  # no /proc here, or it just ended
        return True


def read_pids(directory, count: int, timeout: float = 30) -> list[int]:
    """Wait for workers 0..count-1 to write their pid files."""
    paths = [directory / f"{rank}.pid" for rank in range(count)]
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    return [int(p.read_text()) for p in paths]


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    """The pids still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """How to reach two workers: launch.py options, the environment to run it in, each rank's host."""
    args: list[str]
    env: dict[str, str]
    hosts: list[str]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on a free port of 127.0.0.1 and 127.0.0.2; yields (its directory, the port)."""
    if not os.path.exists("/usr/sbin/sshd") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["bash", SSHD_FIXTURE, "install"], capture_output=True, timeout=600)
    if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("no sshd or ssh here; `bash tests/sshd_fixture.sh install` (as root) installs them")
    directory, port = tmp_path_factory.mktemp("sshd"), free_port()
    started = subprocess.run(["bash", SSHD_FIXTURE, "start", str(directory), str(port)], capture_output=True,
                             text=True, timeout=60)
    if started.returncode != 0:
        pytest.skip(f"cannot start sshd: {started.stderr.strip()}")
    yield directory, port
    subprocess.run(["bash", SSHD_FIXTURE, "stop", str(directory)], timeout=30)


def ssh_cluster(sshd, tmp_path, addresses: list[str]) -> Cluster:
    directory, port = sshd
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# a throw-away sshd on loopback\n" + "".join(f"{a}:{port}\n" for a in addresses))
    env = {**os.environ, "PATH": f"{directory / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return Cluster(["-H", str(hostfile)], env, addresses)


@pytest.fixture(params=["local", "ssh"])
def cluster(request, tmp_path) -> Cluster:
    if request.param == "local":
        return Cluster(["--launcher", "local"], dict(os.environ), ["localhost", "localhost"])
    return ssh_cluster(request.getfixturevalue("sshd"), tmp_path, ["127.0.0.1", "127.0.0.2"])


# --- the hostfile, --env and quoting, in-process

def test_hostfile_formats(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# cluster\n\nnode1\nnode2:2222  # ssh port\nroot@node3 slots=2\n")
    hosts = parse_hostfile(str(hostfile))
    assert hosts == [Host("node1"), Host("node2", 2222), Host("root@node3", None, 2)]
    assert [h.address for h in assign_hosts(hosts, 4)] == ["node1", "node2", "node3", "node3"]
    with pytest.raises(LaunchError, match="room for 4"):
        assign_hosts(hosts, 5)
    with pytest.raises(LaunchError, match="localhost, is where the others meet"):
        assign_hosts([Host("localhost"), Host("node1")], 2)
    assert assign_hosts([Host("127.0.0.1"), Host("127.0.0.2")], 2) == [Host("127.0.0.1"), Host("127.0.0.2")]


@pytest.mark.parametrize("line", ["node1 slots=two", "node1:ssh", "node1:0", "-oProxyCommand=x", "a b"])
def test_malformed_hostfile_line_is_named(tmp_path, line):
    hostfile = tmp_path / "hosts"
    hostfile.write_text(f"node0\n\n{line}\n")
    with pytest.raises(LaunchError, match=f"line 3: '{re.escape(line)}'"):
        parse_hostfile(str(hostfile))


def test_env_assignments():
    assert parse_env(["A=1", "B=x=y", "OMP_NUM_THREADS:3", "EMPTY="]) == \
        {"A": "1", "B": "x=y", "OMP_NUM_THREADS": "3", "EMPTY": ""}
    with pytest.raises(LaunchError, match="'1A=b'"):
        parse_env(["1A=b"])


def test_remote_command_quotes_every_word(tmp_path):
    """What ssh hands the remote shell runs exactly these words, whatever characters they hold."""
    words = ["a b", "$HOME", "'quoted'", "; touch pwned", "`id`"]
    line = remote_command({"GREETING": "hello world; $USER"}, [sys.executable, "-c",
                          "import os, sys; print(sys.argv[1:], os.environ['GREETING'], os.getcwd())", *words],
                          cwd=str(tmp_path))
    result = subprocess.run(["sh", "-c", line], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.stdout == f"{words} hello world; $USER {tmp_path}\n"
    assert not (tmp_path / "pwned").exists()


# --- real workers

def test_local_workers_get_the_rendezvous_environment(tmp_path):
    result = launch("-n", "2", "-s", "2", "--launcher", "local", "--env", "GREETING=hi",
                    sys.executable, "-c", PRINT_ENV, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "-s/--num-servers is ignored" in result.stderr
    workers = outputs_by_rank(result.stdout)
    assert sorted(workers) == [0, 1]
    envs = {rank: fields(text) for rank, (host, text) in workers.items()}
    for rank, env in envs.items():
        assert workers[rank][0] == "localhost"
        assert env["RANK"] == env["NODE_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == env["NNODES"] == "2"
        assert env["LOCAL_RANK"] == "0" and env["GREETING"] == "hi" and env["CWD"] == str(tmp_path)
    assert envs[0]["MASTER_PORT"] == envs[1]["MASTER_PORT"] != "None"


def test_gloo_all_reduce_through_env_init():
    result = launch("-n", "2", "--launcher", "local", sys.executable, "-c", ALL_REDUCE, timeout=120)
    assert result.returncode == 0, result.stderr
    assert {rank: text for rank, (_, text) in outputs_by_rank(result.stdout).items()} == \
        {0: "rank=0 world=2 sum=3", 1: "rank=1 world=2 sum=3"}


def test_failing_worker_stops_the_others(cluster, tmp_path):
    start = time.monotonic()
    result = launch("-n", "2", *cluster.args, sys.executable, "-c", SLEEP_OR_FAIL, str(tmp_path), "fail",
                    env=cluster.env, timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode == 3, result.stderr
    assert f"worker 1 on {cluster.hosts[1]} exited with code 3" in result.stderr
    assert wait_gone(read_pids(tmp_path, 2), timeout=1) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGKILL, None)])
def test_stopping_launch_stops_every_worker(cluster, tmp_path, signum, code):
    """Ctrl-C stops the workers through launch.py; when launch.py is killed outright, each worker's guard
    sees its stdin end and stops the worker itself."""
    process = subprocess.Popen([sys.executable, LAUNCH, "-n", "2", *cluster.args, sys.executable, "-c",
                                SLEEP_OR_FAIL, str(tmp_path), "sleep"], env=cluster.env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pids = read_pids(tmp_path, 2)
        process.send_signal(signum)
        returncode = process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    if code is not None:
        assert returncode == code
    assert wait_gone(pids) == []


def read_starts(directory) -> list[tuple[int, bool, int, int]]:
    """(rank, resumed, MASTER_PORT, pid) of each start of RESTARTABLE, in order."""
    return [(int(rank), resumed == "1", int(port), int(pid)) for rank, resumed, port, pid in
            (line.split() for line in (directory / "starts").read_text().splitlines())]


# --- restarts, preemption, and workers that stop responding

def test_failed_worker_restarts_every_worker_with_resume(cluster, tmp_path):
    result = launch("-n", "2", *cluster.args, "--max-restarts", "1", sys.executable, "-c", RESTARTABLE,
                    str(tmp_path), "kill", env=cluster.env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (f"launch.py: worker 1 on {cluster.hosts[1]} exited with signal SIGKILL; restarting all workers "
            "with --resume (restart 1 of 1)") in result.stderr.splitlines()
    starts = read_starts(tmp_path)
    first, second = starts[:2], starts[2:]
    assert sorted(rank for rank, *_ in first) == sorted(rank for rank, *_ in second) == [0, 1]
    assert [resumed for _, resumed, *_ in starts] == [False, False, True, True]
    first_ports, second_ports = ({port for _, _, port, _ in start} for start in (first, second))
    assert len(first_ports) == len(second_ports) == 1 and first_ports != second_ports
    assert wait_gone([pid for *_, pid in first], timeout=1) == []  # the first start's rank 0 was stopped


def test_restarts_run_out(tmp_path):
    result = launch("-n", "2", "--launcher", "local", "--max-restarts", "2", sys.executable, "-c",
                    RESTARTABLE, str(tmp_path), "always", timeout=60)
    assert result.returncode == 3, result.stderr
    failed = "launch.py: worker 1 on localhost exited with code 3"
    assert [line for line in result.stderr.splitlines() if "worker 1" in line] == [
        f"{failed}; restarting all workers with --resume (restart 1 of 2)",
        f"{failed}; restarting all workers with --resume (restart 2 of 2)",
        f"{failed}, stopping the other workers (--max-restarts 2: no restart left)"]
    assert [resumed for rank, resumed, *_ in read_starts(tmp_path) if rank == 1] == [False, True, True]


def test_preempted_worker_stops_the_job_without_restart(tmp_path):
    """Exit code 75 (a checkpoint saved after SIGTERM) is no failure: no restart, launch.py exits with 75,
    and the other workers get time to finish saving their part."""
    result = launch("-n", "2", "--launcher", "local", "--max-restarts", "1", sys.executable, "-c",
                    RESTARTABLE, str(tmp_path), "preempt", timeout=60)
    assert result.returncode == 75, result.stderr
    assert ("launch.py: worker 1 on localhost exited with code 75 (preempted: it saved a checkpoint and "
            "stopped)") in result.stderr
    assert "restarting" not in result.stderr
    assert len(read_starts(tmp_path)) == 2 and (tmp_path / "0.saved").exists()


def test_stopped_worker_and_everything_it_started_are_stopped(cluster, tmp_path):
    """A worker stopped with SIGSTOP still gets SIGTERM (SIGCONT lets it act on it), and a process it
    started in a process group of its own goes too."""
    start = time.monotonic()
    result = launch("-n", "2", *cluster.args, sys.executable, "-c", STOPPED_WORKER, str(tmp_path),
                    env=cluster.env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - start < 30
    assert (tmp_path / "1.terminated").exists()
    pids = [int((tmp_path / f"{name}.pid").read_text()) for name in ("0", "1", "child")]
    assert wait_gone(pids, timeout=1) == []


def test_stopped_guard_is_killed_with_its_worker(tmp_path):
    """When a worker's guard itself stops responding, launch.py kills its whole session, the worker too."""
    result = launch("-n", "2", "--launcher", "local", sys.executable, "-c", STOPPED_GUARD, str(tmp_path),
                    timeout=60)
    assert result.returncode == 3, result.stderr
    assert wait_gone([int(pid) for pid in (tmp_path / "0.pid").read_text().split()], timeout=1) == []


@pytest.mark.parametrize("code, description", [
    (3, "exited with code 3"), (137, "exited with signal SIGKILL"), (143, "exited with signal SIGTERM"),
    (255, "exited with code 255")])
def test_exit_descriptions(code, description):
    assert describe_exit(code) == description


# --- mistakes found before anything starts

def test_malformed_hostfile_is_a_one_line_error(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# machines\nnode1\nnode2 slots=two\n")
    result = launch("-n", "2", "-H", str(hostfile), "true")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"launch.py: error: hostfile {hostfile}, line 3: 'node2 slots=two' is not 'host', 'host:port' "
        "or 'host slots=N'"]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client here")
def test_unreachable_host_is_named_before_anything_starts(tmp_path):
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    hostfile = tmp_path / "hosts"
    hostfile.write_text(f"{closed}\n")
    result = launch("-n", "1", "-H", str(hostfile), "touch", str(tmp_path / "started"), timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"launch.py: error: cannot reach by ssh: {closed} (")
    assert not (tmp_path / "started").exists()


# --- ssh to two loopback machines

def test_ssh_workers_rendezvous_and_all_reduce(sshd, tmp_path):
    cluster = ssh_cluster(sshd, tmp_path, ["127.0.0.1", "127.0.0.2"])
    script = tmp_path / "worker.py"
    script.write_text(PRINT_ENV + ALL_REDUCE)
    result = launch("-n", "2", *cluster.args, "--env", "GREETING=hi", sys.executable, str(script),
                    env=cluster.env, cwd=str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [PREFIXED_LINE.fullmatch(line) for line in result.stdout.splitlines()]
    for rank, host in enumerate(cluster.hosts):
        env_line, reduce_line = [m["text"] for m in lines if int(m["rank"]) == rank and m["host"] == host]
        env = fields(env_line)
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["RANK"] == str(rank) and env["WORLD_SIZE"] == "2"
        assert env["GREETING"] == "hi" and env["CWD"] == str(tmp_path)
        assert reduce_line == f"rank={rank} world=2 sum=3"


def test_ssh_sync_dst_dir_copies_and_runs_there(sshd, tmp_path):
    if shutil.which("rsync") is None:  # checked here: the sshd fixture may have just installed it
        pytest.skip("no rsync here; `bash tests/sshd_fixture.sh install` (as root) installs it")
    cluster = ssh_cluster(sshd, tmp_path, ["127.0.0.2"])
    source, destination = tmp_path / "source", tmp_path / "copy with space" / "project"
    source.mkdir()
    (source / "hello.py").write_text("import os\nprint('hello from', os.getcwd())\n")
    result = launch("-n", "1", *cluster.args, "--sync-dst-dir", str(destination), sys.executable, "hello.py",
                    env=cluster.env, cwd=str(source))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"[127.0.0.2 0] hello from {destination}\n"
    assert (destination / "hello.py").read_text() == (source / "hello.py").read_text()
