"""The machines of a run on several hosts: the hostfile of tools/launch.py and benchmark.py's --worker_file
(`Host`, `parse_hostfile`), and `LaunchError`, a problem with them found before any worker starts.

A hostfile has one host per line: `host`, `host:port` (ssh port) or `host slots=N` (room for N workers);
`#` starts a comment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from common.cli import UserError

HOST_LINE = re.compile(r"(?P<name>[\w.@-]+?)(?::(?P<port>\d+))?(?:\s+slots=(?P<slots>\d+))?")


class LaunchError(UserError):
    """A problem found before any worker starts; the message names the host, line or option."""


@dataclass(frozen=True)
class Host:
    name: str  # what ssh connects to, maybe user@host
    port: int | None = None
    slots: int = 1

    @property
    def address(self) -> str:
        return self.name.rpartition("@")[2]

    @property
    def is_loopback(self) -> bool:
        return self.address == "localhost" or self.address.startswith("127.")

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


def parse_hostfile(path: str) -> list[Host]:
    """Lines `host`, `host:port` (ssh port) or `host slots=N` (room for N workers); `#` starts a comment."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise LaunchError(f"cannot read hostfile {path}: {e.strerror}") from None
    hosts = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = HOST_LINE.fullmatch(line)
        port = int(match["port"]) if match and match["port"] else None
        slots = int(match["slots"]) if match and match["slots"] else 1
        bad_port = port is not None and not 0 < port < 65536
        if not match or match["name"].startswith("-") or bad_port or slots < 1:
            raise LaunchError(f"hostfile {path}, line {number}: '{line}' is not 'host', 'host:port' "
                              "or 'host slots=N'")
        hosts.append(Host(match["name"], port, slots))
    if not hosts:
        raise LaunchError(f"hostfile {path} lists no hosts")
    return hosts
