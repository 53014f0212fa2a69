"""best/: the fastest schedule's folder, published as a whole and recovered after a crash.

A new best/ (a campaign's best/NAME/) is filled in a staging folder and swapped in with
two renames; the previous one waits aside as .best.old (.best-NAME.old) meanwhile.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Protocol

from farm import atomic
from farm.atomic import write_json
from farm.errors import BadInput, RunDirError
from farm.store.records import RetimingRecord


class _Run(Protocol):
    """What of a run directory its best/ folders use (RunDir has it; rundir imports this
    module, so not RunDir itself)."""

    path: Path

    @property
    def holds_lock(self) -> bool: ...

    def best_path(self, pipeline: str = "") -> Path: ...

    def retiming_path(self, pipeline: str = "") -> Path: ...

MAX_SCHEDULE_BYTES = 2**20  # a best schedule's text shown (the page, open_run)


class BestFolders:
    """A run's best/ folders (`RunDir.best`): the run directory names them (best_path,
    retiming_path); this publishes them whole, recovers them and reads their schedules."""

    def __init__(self, run: _Run):
        self.run = run
        self.path = run.path

    def schedule_text(self, path: Path) -> str | None:
        """The text of a best schedule at `path` (None when there is none); a RunDirError
        saying why when it is not the run's own regular file of a sane size (a link could
        name any file, and the text goes on a page that is mailed)."""
        if not os.path.lexists(path):
            return None
        try:
            return atomic.read_regular(path, MAX_SCHEDULE_BYTES, follow=False).decode(
                errors="replace")
        except OSError as e:
            why = "a symbolic link, not the run's own file" if e.errno == errno.ELOOP \
                else e.strerror
            raise RunDirError(f"{path} is not shown: {why}") from None
        except ValueError as e:
            raise RunDirError(f"{path} is not shown: {e}") from None

    def staging(self, pipeline: str = "") -> Path:
        """An empty folder to fill with a new best/ (best/NAME/) before publish:
        .best.new (.best-NAME.new)."""
        fresh = self.path / (f".best-{self.run.best_path(pipeline).name}.new" if pipeline
                             else ".best.new")
        remove(fresh)
        fresh.mkdir()
        return fresh

    def publish(self, staged: Path, record: RetimingRecord, pipeline: str = "") -> None:
        """Write the re-timing record into `staged` and make it best/ (best/NAME/), as a
        whole: only once every file in it and the folder itself are on disk, so a power
        cut never leaves a best/ whose runtime.json names empty files. The previous one
        is moved aside to .best.old (.best-NAME.old) meanwhile: recover puts it back after
        a crash between the two renames."""
        best = self.run.best_path(pipeline)
        write_json(staged / self.run.retiming_path().name, record.to_json())
        atomic.fsync_tree(staged)
        old = _aside(staged)
        remove(old)
        atomic.real_dir(best.parent, self.path)  # best/ itself: no link out of the run
        if os.path.lexists(best):
            os.replace(best, old)
        os.replace(staged, best)
        for folder in {best.parent, staged.parent}:
            atomic.fsync_dir(folder)
        remove(old)

    def recover(self) -> None:
        """What a crash inside publish left: a previous best/ (best/NAME/) moved aside
        as .best.old (.best-NAME.old) is put back when the new one is missing, and dropped
        when the new one is in place."""
        for old in sorted(self.path.glob(".best*.old")):
            name = old.name.removeprefix(".best").removesuffix(".old")
            if name and not name.startswith("-"):
                continue
            best = self.path / "best" / name[1:] if name else self.path / "best"
            if os.path.lexists(best) or old.is_symlink() or not old.is_dir():
                remove(old)
                continue
            atomic.real_dir(best.parent, self.path)
            os.replace(old, best)
            for folder in {best.parent, self.path}:
                atomic.fsync_dir(folder)

    def recover_reading(self) -> None:
        """recover, for a reader: only while no driver holds the run (a driver's .best.old
        is its swap in progress), and never an error (a run directory the reader may not
        write is read as it is)."""
        if self.run.holds_lock or not any(self.path.glob(".best*.old")):
            return
        try:
            fd = os.open(self.path / ".lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None  # no driver ever opened it
        except OSError:
            return
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            self.recover()
        except (OSError, BadInput):
            pass
        finally:
            if fd is not None:
                os.close(fd)  # (releases the flock)


def _aside(staged: Path) -> Path:
    """Where publish moves the previous best/ of `staged` (.best.new: .best.old)."""
    return staged.with_name(staged.name.removesuffix(".new") + ".old")


def remove(path: Path) -> None:
    """Remove a file, link or folder at `path` (a link, not what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
