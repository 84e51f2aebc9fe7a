"""Run one worker's command and stop everything it started when tools/launch.py goes away.

launch.py runs this file's text as `python3 -c SOURCE GRACE COMMAND...` on each host, so the hosts need
no copy of it, with a pipe on stdin that stays open for as long as launch.py wants the worker to run.
The command runs in a new process group of this process's session. That group gets SIGTERM (and SIGCONT,
so that a stopped process receives it), then SIGKILL after GRACE seconds, when stdin reaches its end
(launch.py stopped the worker or died, or the ssh connection dropped), when this process gets SIGTERM,
SIGINT or SIGHUP, or when the command exits (to stop what it left running). Where this process leads its
session (launch.py and sshd start it so) every other process of the session gets SIGKILL last, which
catches those that moved to a process group of their own.
Exits with the command's exit code, 128 + N when signal N ended it.

It runs under whatever `python3` a host has, so it keeps to what Python 3.7 knows.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def session_processes(sid: int) -> list[int]:
    """The processes of session `sid`, read from /proc (Linux); [] where there is no /proc."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    members = []
    for pid in pids:
        try:
            if os.getsid(pid) == sid:
                members.append(pid)
        except OSError:  # gone meanwhile
            pass
    return members


def kill_session(sid: int, keep: int | None = None) -> None:
    """SIGKILL every process of session `sid` but `keep`, and the process group `sid` (all that is known of
    the session without /proc)."""
    for pid in session_processes(sid):
        if pid != keep:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if sid != keep:
        try:
            os.killpg(sid, signal.SIGKILL)
        except OSError:
            pass


def group_ends_within(child: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        child.poll()  # reap the group leader: until then it counts as a member of the group
        if not group_alive(child.pid):
            return True
        time.sleep(0.05)
    return False


def stop_group(child: subprocess.Popen, grace: float) -> None:
    try:
        os.killpg(child.pid, signal.SIGTERM)
        os.killpg(child.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once it runs again
    except ProcessLookupError:
        pass
    if not group_ends_within(child, grace):
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()
    if os.getsid(0) == os.getpid():
        kill_session(os.getpid(), keep=os.getpid())


def wait_for_end_of_input(stop: threading.Event) -> None:
    while os.read(0, 4096):  # unbuffered: a daemon thread must not hold sys.stdin's lock at exit
        pass
    stop.set()


def main() -> int:
    grace, command = float(sys.argv[1]), sys.argv[2:]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    try:
        # a process group of its own (process_group=0 needs Python 3.11); no other thread runs yet
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=os.setpgrp)
    except OSError as e:
        print(f"launch.py: cannot run {command[0]}: {e.strerror}", file=sys.stderr)
        return 127
    threading.Thread(target=wait_for_end_of_input, args=(stop,), daemon=True).start()
    while child.poll() is None and not stop.wait(0.1):
        pass
    stop_group(child, grace)
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
