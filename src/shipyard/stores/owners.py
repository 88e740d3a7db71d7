"""Which process owns a run or a claimed ONNX conversion, and whether it still lives.

An owner is stored as ``host|pid|start|pidns|boot``: the host name, the process id, the
process's start time (clock ticks since boot, from /proc), its PID namespace and the boot id.
The start time tells a reused pid from the process that died; the namespace and boot id tell
that a pid can be looked up here at all (a container with the same host name, or the same host
after a reboot). Where /proc is missing the start time is "0" and only the pid is checked.

    owner = current_owner()
    owner_alive(owner)        # True here; None for a process on another host
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_SEP = "|"
_cache: tuple[int, str] | None = None


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str
    pidns: str
    boot: str

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"


def _proc_start(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot; None if no such (live) process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "0"
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its exit status is left
        return None
    return fields[19]


def _read(path: str) -> str:
    try:
        return os.readlink(path) if path.startswith("/proc/self/ns") else Path(path).read_text()
    except OSError:
        return ""


def current_owner() -> str:
    """This process, as stored in `owner` columns (recomputed after a fork)."""
    global _cache
    pid = os.getpid()
    if _cache is None or _cache[0] != pid:
        start = _proc_start(pid) or "0"
        pidns = _read("/proc/self/ns/pid").strip()
        boot = _read("/proc/sys/kernel/random/boot_id").strip()[:8]
        text = _SEP.join((socket.gethostname(), str(pid), start, pidns, boot))
        _cache = (pid, text)
    return _cache[1]


def parse_owner(text: str | None) -> Owner | None:
    if not text:
        return None
    parts = text.split(_SEP)
    if len(parts) != 5 or not parts[1].isdigit():
        return None
    return Owner(parts[0], int(parts[1]), parts[2], parts[3], parts[4])


def describe(text: str | None) -> str:
    """A stored owner for people: "host pid 123"."""
    owner = parse_owner(text)
    return str(owner) if owner is not None else (text or "unknown process")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie does not)."""
    if os.path.exists("/proc/self/stat"):
        return _proc_start(pid) is not None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def owner_alive(text: str | None) -> bool | None:
    """Whether the owning process still runs: True or False when it can be told from here
    (same host, same PID namespace, same boot), None when it cannot (another host)."""
    owner, me = parse_owner(text), parse_owner(current_owner())
    if owner is None or me is None:
        return None
    if (owner.host, owner.pidns) != (me.host, me.pidns):
        return None
    if owner.boot and me.boot and owner.boot != me.boot:
        return False  # the machine rebooted since: that process is gone
    if os.path.exists("/proc/self/stat"):
        start = _proc_start(owner.pid)
        if start is None:
            return False
        if owner.start != "0" and start != "0":
            return start == owner.start  # same pid, other start: the pid was reused
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
