"""Device leases: a device is timed by one job at a time, whichever jobs share the cluster.

A lease is a flock on a file per device, in a folder of the device's node. Every job's
actor for a device runs on that device's node (the pool pins it there: a phone's adb and
a host's CPU are that node's), so a lock of the node covers every job of the cluster.
Chosen over a detached Ray actor because the kernel drops a flock the moment its holder
dies, however it dies: a killed job's lease is free at once, with no heartbeat to wait
out, and nothing outlives the jobs to be cleaned up. (A detached actor would also be one
more process per cluster that can die with the lease table in it.)

A flock does not queue: a holder that lets go and asks again would win the race against
a job that waits. So every job first takes the device's turnstile, then its lease, and
only then lets the turnstile go. A waiting job holds the turnstile while it waits, so a
holder that gives way must queue behind it: two jobs on one device alternate.

A holder keeps its lease while it times and for a short while after (its next candidate
is usually compiling), and gives it up at once when another job waits. A job alone on a
device thus holds one lease per stretch of work. Every lease is logged when it ends (one
JSON line: device, holder, from, to); the lease of a holder that died is logged by the
next one to take it. `farm devices` reads who holds and who waits (`state`).

The folder is FARM_LEASE_DIR, else $XDG_STATE_HOME/halide-farm/leases (by default
~/.local/state/halide-farm/leases): it is state that `farm devices` reads after the jobs,
not a cache.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from farm.atomic import private_dir, read_regular
from farm.devices.base import safe_name
from farm.errors import MissingPrerequisite
from farm.paths import user_dir

LINGER_S = 5.0  # an idle holder keeps its lease this long, unless another job waits
WATCH_S = 0.2  # how often an idle holder looks for a job that waits
HOLDER_BYTES = 1 << 16  # at most, of a holder's record (its run's path, ids, times)
LOG_LIMIT = 8 << 20  # bytes of a device's lease log before it is rotated to LOG.1


class LeaseError(MissingPrerequisite):
    """The lease folder cannot be used."""

    cause = "lease-folder"


def lease_dir() -> Path:
    """The lease folder, held as the gate's is (farm.atomic.private_dir): this user's, no
    link; a planted holder file would show a false holder, a planted lock block a device."""
    path = user_dir("FARM_LEASE_DIR", "XDG_STATE_HOME", ".local/state", "leases")
    try:
        return private_dir(path, "the device lease folder",
                           "remove it, or set FARM_LEASE_DIR to a folder of your own")
    except OSError as e:
        raise LeaseError(e.strerror or str(e)) from None


@dataclass(frozen=True)
class Holder:
    """Who holds (or waits for) a lease: a job's device actor."""

    run: str  # what it times for: a run directory, or the command
    job: str = ""  # the Ray job id ("" outside Ray)
    pid: int = 0
    started: float = 0.0  # the process's start time: a reused pid is not mistaken for it
    node: str = ""
    since: float = 0.0  # when it took the lease, or began to wait (time.time())

    @classmethod
    def here(cls, run: str, job: str = "") -> Holder:
        pid = os.getpid()
        return cls(run, job, pid, _start_time(pid) or 0.0, socket.gethostname())

    def alive(self) -> bool:
        return self.pid > 0 and _start_time(self.pid) == self.started


@dataclass(frozen=True)
class LeaseState:
    """A device's lease as `farm devices` shows it."""

    device: str
    holder: Holder | None
    waiting: tuple[Holder, ...]
    recent: tuple[dict, ...] = ()  # its last logged leases, oldest first (`history`)


class Lease:
    """One job's lease on one device. `use()` wraps each timing; the lease is taken when a
    timing needs it and given up as the module says. Thread-safe."""

    def __init__(self, device_id: str, holder: Holder, folder: str | Path | None = None,
                 linger_s: float = LINGER_S):
        self.device_id = device_id
        self.folder = Path(folder) if folder else lease_dir()
        self.me = holder
        self.linger_s = linger_s
        self._stem = self.folder / safe_name(device_id)
        self._fd: int | None = None  # the lease lock, while held
        self._since = 0.0
        self._mutex = threading.RLock()
        self._using = 0
        self._idle_since = 0.0
        self.waited_s = 0.0  # in all, waiting for other jobs
        self._watching = False
        self._log_failed = False  # said once

    @property
    def held(self) -> bool:
        return self._fd is not None

    @contextmanager
    def use(self) -> Iterator[float]:
        """Hold the lease for the block (waiting for it if another job has it); yields the
        seconds waited."""
        with self._mutex:
            self._using += 1
        waited = 0.0
        try:
            if not self.held:  # (two timings of one actor never wait here at once)
                waited = self._take()
            yield waited
        finally:
            with self._mutex:
                self._using -= 1
                self._idle_since = time.monotonic()
                if not self._using and self.held and self.wanted():
                    self._give_up()

    def wanted(self) -> bool:
        """Another job waits for this device (it holds the turnstile)."""
        fd = _lock_file(self._stem.with_suffix(".turn"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # (and its lock with it)
        return False

    def release(self) -> None:
        """Give the lease up now (the job is done with the device)."""
        with self._mutex:
            if self.held:
                self._give_up()

    def _take(self) -> float:
        start = time.monotonic()
        with self._waiting():
            turn = _lock_file(self._stem.with_suffix(".turn"))
            try:
                fcntl.flock(turn, fcntl.LOCK_EX)  # behind the jobs already waiting
                fd = _lock_file(self._stem.with_suffix(".lock"))
                fcntl.flock(fd, fcntl.LOCK_EX)  # behind the holder
            finally:
                os.close(turn)
        with self._mutex:
            self._fd, self._since = fd, time.time()
            self._log_dead_holder()
            _write_json(self._stem.with_suffix(".holder"),
                        asdict(_with_since(self.me, self._since)))
            if not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, daemon=True).start()
        waited = time.monotonic() - start
        self.waited_s += waited
        return waited

    def _give_up(self) -> None:
        """(holding the mutex) The lock is dropped whatever happens to the log line: a log
        that cannot be written (a FIFO, a folder planted there) costs the line, said once,
        never the device."""
        assert self._fd is not None
        with suppress(OSError):
            os.unlink(self._stem.with_suffix(".holder"))
        try:
            self._log(self.me, self._since, time.time(), "released")
        except LeaseError as e:
            if not self._log_failed:
                self._log_failed = True
                print(f"farm: {e} (this lease is not logged)", file=sys.stderr)
        finally:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def _watch(self) -> None:
        """An idle holder gives way to a job that waits, or after lingering."""
        while True:
            time.sleep(WATCH_S)
            with self._mutex:
                if self.held and not self._using and (
                        time.monotonic() - self._idle_since > self.linger_s or self.wanted()):
                    self._give_up()

    @contextmanager
    def _waiting(self) -> Iterator[None]:
        """Registered as waiting: a file named after this process, locked while it waits
        (made under another name and locked first, so no reader sees it unlocked)."""
        folder = self._stem.with_suffix(".waiting")
        try:  # made here, and never through a link: files are made and deleted in it
            private_dir(folder, "the device's waiting list",
                        f"remove it (rm -r {folder}); the farm makes it again")
        except OSError as e:
            raise LeaseError(e.strerror or str(e)) from None
        name = f"{self.me.pid}-{threading.get_ident()}.json"
        tmp = folder / f".{name}"
        fd = _lock_file(tmp)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps(asdict(_with_since(self.me, time.time()))).encode())
        os.replace(tmp, folder / name)
        try:
            yield
        finally:
            with suppress(OSError):
                os.unlink(folder / name)
            os.close(fd)

    def _log_dead_holder(self) -> None:
        """The lease of a holder that died before it gave it up: logged by its successor
        (holding the lock now), ending when the successor took it."""
        previous = _read_holder(self._stem.with_suffix(".holder"))
        if previous is not None and not previous.alive():
            self._log(previous, previous.since, self._since, "holder died")

    def _log(self, who: Holder, start: float, end: float, ended: str) -> None:
        log = self._stem.with_suffix(".log")
        with suppress(FileNotFoundError):
            st = os.lstat(log)
            if stat.S_ISREG(st.st_mode) and st.st_size > LOG_LIMIT:
                os.replace(log, log.with_suffix(".log.1"))
        line = {"device": self.device_id, "run": who.run, "job": who.job, "pid": who.pid,
                "node": who.node, "from": _iso(start), "to": _iso(end), "ended": ended}
        fd = _regular_file(log, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(line) + "\n")


def state(device_id: str, folder: Path | None = None, recent: int = 0) -> LeaseState:
    """Who holds `device_id` and who waits for it, from its node's lease folder (run this
    on that node), with its last `recent` logged leases. A holder or waiter whose process
    is gone is not shown."""
    stem = (folder or lease_dir()) / safe_name(device_id)
    holder = _read_holder(stem.with_suffix(".holder"))
    waiting = []
    folder_of_waiters = stem.with_suffix(".waiting")
    with suppress(FileNotFoundError):  # (no real folder: nobody can wait; _waiting says so)
        entries = sorted(folder_of_waiters.iterdir()) if stat.S_ISDIR(
            os.lstat(folder_of_waiters).st_mode) else []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            w = _read_holder(entry)
            if w is not None and w.alive():
                waiting.append(w)
    return LeaseState(device_id, holder if holder and holder.alive() else None,
                      tuple(sorted(waiting, key=lambda w: w.since)),
                      tuple(history(device_id, folder)[-recent:]) if recent else ())


def history(device_id: str, folder: Path | None = None) -> list[dict]:
    """The device's logged leases, oldest first (the rotated log's, then the current's)."""
    stem = (folder or lease_dir()) / safe_name(device_id)
    lines = []
    for log in (stem.with_suffix(".log.1"), stem.with_suffix(".log")):
        with suppress(OSError, ValueError):  # gone, or no log a lease wrote (a FIFO, ...)
            text = read_regular(log, 2 * LOG_LIMIT, follow=False).decode(errors="replace")
            for line in text.splitlines():
                with suppress(ValueError):
                    lines.append(json.loads(line))
    return lines


def _lock_file(path: Path) -> int:
    """A lease's lock file, opened (made if needed): see _regular_file."""
    return _regular_file(path, os.O_RDWR)


def _regular_file(path: Path, flags: int) -> int:
    """A file of the lease folder opened with `flags` (made if needed): a regular file,
    never through a link, never blocking on a FIFO; anything else there is a LeaseError
    naming it and the fix (a lasting fault: the device cannot be leased until it is
    removed)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, 0o600)
    except OSError as e:
        raise LeaseError(f"the device lease file {path} cannot be used ({e.strerror}): "
                         f"remove it (rm -r {path}); the farm makes it again") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LeaseError(f"the device lease file {path} is not a regular file: remove it "
                         f"(rm -r {path}); the farm makes it again")
    return fd


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)  # replaces a planted link, never writes through it


def _read_holder(path: Path) -> Holder | None:
    """A holder's or waiter's record; None for anything but a small regular file (a FIFO
    there hung `farm devices` and a run's first timing)."""
    try:
        data = json.loads(read_regular(path, HOLDER_BYTES, follow=False))
        return Holder(**{k: data[k] for k in Holder.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _with_since(h: Holder, since: float) -> Holder:
    return Holder(h.run, h.job, h.pid, h.started, h.node, since)


def _start_time(pid: int) -> float | None:
    """When process `pid` started; None when it is gone (a zombie, killed and not yet
    reaped, is gone: it holds no lock)."""
    try:
        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else p.create_time()
    except psutil.Error:
        return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")
