"""Keep compile work off the cores while a host device times.

Compile tasks register their process in a machine-wide folder of their user; a host
device, before it times, stops (SIGSTOP) every registered compile process and its
children, and continues them (SIGCONT) right after. The timing then has the whole
machine, and compiling uses every core the rest of the time. A flock keeps a
registration from slipping in while a timing is under way (flock, not filelock: the gate
needs a shared and an exclusive mode, and a lock the kernel drops when its holder dies;
filelock's shared lock is an SQLite database).

Nothing another user does can turn the gate against its owner:
- the folder is private: /dev/shm/halide-farm-gate-UID (or FARM_GATE_DIR), made with
  mode 0700 (one of this user's that an older farm left open is made 0700); one that is
  a symlink, not a directory or not this user's is refused (GateError names it and says
  what to do), and every file in it is opened with O_NOFOLLOW;
- only processes of this user are stopped, and each is named by its pid and start time,
  so a reused pid is not mistaken for it.

Nothing stays stopped when the process that stopped it dies, however it dies: it lists
each process in its marker before it stops it, and every host device has a watchdog
process (`python -m farm.devices.gate watch`, in a session of its own) that outlives it and,
within a second of its death, continues what its marker lists.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from farm.errors import MissingPrerequisite

WATCH_EVERY_S = 0.5  # how often a watchdog looks at the device process it guards
STOP_WAIT_S = 1.0  # how long a timing waits for the compiles it stopped to be stopped


class GateError(MissingPrerequisite):
    """The gate's folder is not private to this user."""

    cause = "gate-folder"


def gate_dir() -> Path:
    configured = os.environ.get("FARM_GATE_DIR")
    if configured:
        path = Path(configured)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:  # not $XDG_RUNTIME_DIR: logind removes it at logout, under a run left going
        base = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
        path = Path(base) / f"halide-farm-gate-{os.getuid()}"
    for folder in (path, path / "compilers"):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        else:
            if folder in _seen:  # removed under a running farm (logind's RemoveIPC at a
                # logout empties /dev/shm of the user's files): made again, and said
                print(f"farm: the compile gate's folder {folder} vanished; made it again "
                      "(compiles that registered before are not paused until they "
                      "register again)", file=sys.stderr)
        _check_private(folder)
        _seen.add(folder)
    return path


_seen: set[Path] = set()  # the gate folders this process has used


def _check_private(folder: Path) -> None:
    st = os.lstat(folder)
    fix = f"remove it (rm -r {folder}) or set FARM_GATE_DIR to a folder of your own"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise GateError(f"the compile gate's folder {folder} is not a directory (a symlink or "
                        f"a file): {fix}")
    if st.st_uid != os.getuid():
        raise GateError(f"the compile gate's folder {folder} belongs to uid {st.st_uid}, not "
                        f"to you (uid {os.getuid()}): {fix}")
    if st.st_mode & 0o077:  # ours, made by an older farm: make it private
        os.chmod(folder, 0o700)
    # what another user put in it while it was open (a gate.lock that would block every
    # compile, a marker naming processes) is refused, not used
    for entry in os.scandir(folder):
        try:
            owner = entry.stat(follow_symlinks=False).st_uid
        except FileNotFoundError:  # gone since listed: a timing's marker renamed into
            continue  # place, a compile unregistered; nothing left to refuse
        if owner != os.getuid():
            raise GateError(f"the compile gate's folder {folder} holds {entry.name}, which "
                            f"belongs to uid {owner}, not to you: {fix}")


def _open(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _start_time(pid: int) -> float | None:
    """When the process started: tells a live pid from a reused one (None: gone, or not
    this user's)."""
    try:
        p = psutil.Process(pid)
        if p.uids().real != os.getuid():
            return None
        return p.create_time()
    except psutil.Error:
        return None


def _alive(pid: int, start: float) -> bool:
    return _start_time(pid) == start


@contextmanager
def _lock(mode: int) -> Iterator[None]:
    fd = _open(gate_dir() / "gate.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def compiling() -> Iterator[None]:
    """Mark this process as compile work for the duration of the block."""
    pid = os.getpid()
    entry = gate_dir() / "compilers" / f"{pid}-{_start_time(pid)!r}"
    with _lock(fcntl.LOCK_SH), suppress(FileExistsError):  # waits while a device times
        os.close(_open(entry, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    try:
        yield
    finally:
        entry.unlink(missing_ok=True)


def _registered() -> list[tuple[int, float]]:
    found = []
    for entry in (gate_dir() / "compilers").iterdir():
        pid_text, _, start_text = entry.name.partition("-")
        try:
            pid, start = int(pid_text), float(start_text)
        except ValueError:
            entry.unlink(missing_ok=True)
            continue
        if _alive(pid, start):
            found.append((pid, start))
        else:
            entry.unlink(missing_ok=True)  # died without unregistering, or not this user's
    return found


def _write_marker(owner: tuple[int, float], stopped: list[tuple[int, float]]) -> None:
    """The marker names the process that stopped the compiles and each one it stopped,
    written (to a temporary name, then renamed over the old one) before it stops it."""
    folder = gate_dir()
    tmp = folder / f".stopped-{os.getpid()}"
    fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        json.dump({"owner": list(owner), "stopped": [list(s) for s in stopped]}, f)
    os.replace(tmp, folder / "stopped")  # replaces a planted symlink, never its target


def _read_marker() -> dict | None:
    try:
        fd = _open(gate_dir() / "stopped", os.O_RDONLY)
    except OSError:  # none (or a planted symlink, refused by O_NOFOLLOW)
        return None
    with os.fdopen(fd) as f:
        try:
            data = json.load(f)
            return data if isinstance(data, dict) else None
        except ValueError:
            return None


def _signal(pid: int, start: float, sig: int) -> bool:
    """Signal process `pid` if it is the one that started at `start`. Through a pidfd where
    the kernel has them (Linux 5.3): the process is checked after its pidfd is open, so a
    pid reused between the check and the signal is never hit; else by pid."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):  # no pidfds here
        fd = None
    try:
        if not _alive(pid, start):
            return False
        if fd is not None:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _children(pid: int) -> list[tuple[int, float]]:
    try:
        kids = psutil.Process(pid).children(recursive=False)
    except psutil.Error:
        return []
    found = []
    for k in kids:
        start = _start_time(k.pid)
        if start is not None:
            found.append((k.pid, start))
    return found


def _wait_stopped(pid: int) -> None:
    """Return once process `pid` has stopped (or ended), or after STOP_WAIT_S: SIGSTOP takes
    effect when the kernel next schedules its target, so on a busy machine a compile could
    otherwise run into the first moments of a timing, or fork a child not yet listed."""
    end = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
                return
        except psutil.Error:
            return
        time.sleep(0.001)


@contextmanager
def exclusive() -> Iterator[int]:
    """Run the block with every registered compile process stopped (gives how many)."""
    me = (os.getpid(), _start_time(os.getpid()) or 0.0)
    stopped: list[tuple[int, float]] = []
    with _lock(fcntl.LOCK_EX):
        _recover()  # what a dead device left stopped, before its marker is replaced
        try:
            # Stop a parent (and see it stopped) before listing its children, so none
            # escapes by forking.
            todo = _registered()
            while todo:
                pid, start = todo.pop()
                if pid == me[0]:
                    continue
                _write_marker(me, [*stopped, (pid, start)])
                if _signal(pid, start, signal.SIGSTOP):
                    stopped.append((pid, start))
                    _wait_stopped(pid)
                    todo.extend(_children(pid))
            yield len(stopped)
        finally:
            for pid, start in stopped:
                _signal(pid, start, signal.SIGCONT)
            (gate_dir() / "stopped").unlink(missing_ok=True)


def recover() -> int:
    """Continue the compiles a dead device left stopped (its marker lists them); how many."""
    with _lock(fcntl.LOCK_EX):  # not while a live device times: its marker is current
        return _recover()


def _recover() -> int:
    marker = _read_marker()
    if marker is None:
        return 0
    try:
        owner_pid, owner_start = marker["owner"]
        stopped = [(int(p), float(s)) for p, s in marker["stopped"]]
    except (KeyError, TypeError, ValueError):
        stopped, owner_pid, owner_start = [], 0, 0.0
    if owner_pid and _alive(int(owner_pid), float(owner_start)):
        return 0  # its owner is alive and will continue them
    resumed = sum(_signal(pid, start, signal.SIGCONT) for pid, start in stopped)
    (gate_dir() / "stopped").unlink(missing_ok=True)
    return resumed


_watchdogs: dict[int, subprocess.Popen] = {}  # this process's, by its pid (forks differ)


def start_watchdog() -> subprocess.Popen:
    """A process, in a session of its own, that continues what this process leaves stopped
    once it dies (by any means, SIGKILL and a lost Ray included); one per process."""
    gate_dir()  # refuse a folder that is not private before anything relies on it
    pid = os.getpid()
    if pid not in _watchdogs or _watchdogs[pid].poll() is not None:
        _watchdogs[pid] = subprocess.Popen(
            [sys.executable, "-m", "farm.devices.gate", "watch", str(pid), repr(_start_time(pid))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
    return _watchdogs[pid]


def watch(pid: int, start: float) -> None:
    """Wait for process `pid` (started at `start`) to end, then recover()."""
    while _alive(pid, start):
        time.sleep(WATCH_EVERY_S)
    recover()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        watch(int(sys.argv[2]), float(sys.argv[3]))
