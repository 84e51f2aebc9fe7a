"""Run one worker's command and stop everything it started when tools/launch.py goes away.

launch.py runs this file's text as `python3 -c SOURCE GRACE COMMAND...` on each host, so the hosts need
no copy of it, with a pipe on stdin that stays open for as long as launch.py wants the worker to run.
The command runs in a new process group. That group gets SIGTERM, then SIGKILL after GRACE seconds, when
stdin reaches its end (launch.py stopped the worker or died, or the ssh connection dropped), when this
process gets SIGTERM, SIGINT or SIGHUP, or when the command exits (to stop what it left running).
Exits with the command's exit code, 128 + N when signal N ended it.
"""
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


def stop_group(child: subprocess.Popen, grace: float) -> None:
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        child.poll()  # reap the group leader: until then it counts as a member of the group
        if not group_alive(child.pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


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
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
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
