"""Keep compile work off the cores while a host device times.

Compile tasks register their process in a machine-wide directory; a host
device, before it times, stops (SIGSTOP) every registered compile process and
its children, and continues them (SIGCONT) right after. The timing then has
the whole machine, and compiling uses every core the rest of the time.
A flock keeps a registration from slipping in while a timing is under way.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def gate_dir() -> Path:
    configured = os.environ.get("FARM_GATE_DIR")
    if configured:
        path = Path(configured)
    else:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        path = Path(base) / f"halide-farm-gate-{os.getuid()}"
    (path / "compilers").mkdir(parents=True, exist_ok=True)
    return path


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks: tells a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids.extend(int(k) for k in text.split())
    except OSError:
        pass
    return kids


@contextmanager
def _lock(mode: int) -> Iterator[None]:
    with open(gate_dir() / "gate.lock", "a") as f:
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def compiling() -> Iterator[None]:
    """Mark this process as compile work for the duration of the block."""
    pid = os.getpid()
    entry = gate_dir() / "compilers" / f"{pid}-{_start_time(pid)}"
    with _lock(fcntl.LOCK_SH):  # waits while a device is timing
        entry.touch()
    try:
        yield
    finally:
        entry.unlink(missing_ok=True)


def _registered() -> list[int]:
    pids = []
    for entry in (gate_dir() / "compilers").iterdir():
        pid_text, _, start = entry.name.partition("-")
        if pid_text.isdigit() and _start_time(int(pid_text)) == start:
            pids.append(int(pid_text))
        else:
            entry.unlink(missing_ok=True)  # the process died without unregistering
    return pids


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@contextmanager
def exclusive() -> Iterator[int]:
    """Run the block with every registered compile process stopped (gives how many)."""
    stopped: list[int] = []
    marker = gate_dir() / "stopped"
    with _lock(fcntl.LOCK_EX):
        marker.write_text(f"{os.getpid()}-{_start_time(os.getpid())}")
        try:
            # Stop a parent before listing its children, so none escapes by forking.
            todo = _registered()
            while todo:
                pid = todo.pop()
                if pid != os.getpid() and _signal(pid, signal.SIGSTOP):
                    stopped.append(pid)
                    todo.extend(_children(pid))
            yield len(stopped)
        finally:
            for pid in stopped:
                _signal(pid, signal.SIGCONT)
            marker.unlink(missing_ok=True)


def recover() -> None:
    """Continue compile work a killed device left stopped."""
    marker = gate_dir() / "stopped"
    try:
        owner = marker.read_text()
    except OSError:
        return
    pid_text, _, start = owner.partition("-")
    if pid_text.isdigit() and _start_time(int(pid_text)) == start:
        return  # its owner is alive and will continue them
    todo = _registered()
    while todo:
        pid = todo.pop()
        _signal(pid, signal.SIGCONT)
        todo.extend(_children(pid))
    marker.unlink(missing_ok=True)
