"""Durable, atomic file writes: a reader sees the old file or the new one, never half of one.

The bytes go to a hidden temporary file beside the target (`.NAME.tmp...`, which the
sample store and readers ignore), are flushed and fsynced, the file is renamed over the
target, and the directory is fsynced so the rename itself survives a power cut. If
anything fails before the rename, the temporary file is removed and the target is as it
was; a full disk is a DiskFull error that says so. Weights files (farm.model.weights), the
run's JSON records (farm.store.rundir) and Parquet round files (farm.store.samples) all go
through here.

No write here follows a symlink planted where it writes: the temporary file is new
(O_EXCL) and the rename replaces a link at the target instead of writing through it.
`real_dir` refuses a folder of a run directory or of the cache that is a link, which
would take what is written into it elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from farm.errors import BadInput, DiskFull


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and call."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data`, atomically and durably (its folder must exist)."""

    def fill(tmp: Path) -> None:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    _write(Path(path), fill, synced=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def replace_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` atomically, not durably: for what is written again when
    lost (a cache, a log, a copy of a benchmark's files). Like every write here it makes a
    new file and renames it, so a symlink planted at `path` is replaced, never written
    through."""

    def fill(tmp: Path) -> None:
        with open(tmp, "xb") as f:  # O_EXCL: a link planted at the temporary name is refused
            f.write(data)

    _write(Path(path), fill, synced=True, durable=False)


def write_with(path: str | os.PathLike, fill: Callable[[Path], None]) -> None:
    """Replace `path` with the file that `fill(tmp)` writes (and closes) at a temporary path."""
    _write(Path(path), fill, synced=False)


def _write(path: Path, fill: Callable[[Path], None], synced: bool,
           durable: bool = True) -> None:
    tmp = temporary_name(path)
    try:
        fill(tmp)
        if not synced:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if out_of_space(e):
            raise DiskFull(f"no space left on the device of {path.parent} while writing "
                           f"{path.name}: free some there and rerun the same command (what "
                           "was written before is intact)") from None
        raise
    if durable:
        fsync_dir(path.parent)


def out_of_space(e: BaseException) -> bool:
    # pyarrow's writers raise OSError without an errno: their message says it
    return isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT) or
                                       "No space left on device" in str(e))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file under `folder`, then each folder, `folder` last: what is renamed
    into place afterwards (best/) is whole after a power cut. Symlinks are not followed."""
    for top, _, files in os.walk(str(folder), topdown=False):
        for name in files:
            fd = os.open(os.path.join(top, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(top)


def real_dir(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """`path` as a folder, made if needed, that is no symbolic link, and nor is any folder
    between `root` (a run directory, the cache) and it, made too: what is written there
    stays inside `root`. A BadInput naming the link (or the file) otherwise."""
    path = Path(path)
    chain = [path]
    if root is not None:
        parts = path.relative_to(root).parts
        chain = [Path(root).joinpath(*parts[:i]) for i in range(1, len(parts) + 1)]
    (chain[0] if chain else path).parent.mkdir(parents=True, exist_ok=True)
    for folder in chain:
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        mode = os.lstat(folder).st_mode
        if stat.S_ISLNK(mode):
            raise BadInput(f"{folder} is a symbolic link, and the farm writes through none: "
                           "remove it (or replace it with a folder) and rerun")
        if not stat.S_ISDIR(mode):
            raise BadInput(f"{folder} is a file, not a folder: move it away and rerun")
    return path


def private_dir(path: Path, what: str, fix: str) -> Path:
    """`path` as a folder of this user's alone, made (0700) if needed: no link, owned by
    this user, its mode tightened to 0700 when looser (one made by an older farm). Others'
    files there could block it or show false state. An OSError naming `what` and `fix`."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"{what} {path} cannot be made ({e.strerror}): {fix}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"{what} {path} is not a directory (a link or a file): "
                      f"{fix}")
    if st.st_uid != os.getuid():
        raise OSError(errno.EPERM, f"{what} {path} belongs to uid {st.st_uid}, not to you "
                      f"(uid {os.getuid()}): {fix}")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make renames and new entries in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a directory; nothing more to do
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def writable_dir(path: str, option: str = "--out") -> Path:
    """`path` as a directory we can write into, created if needed."""
    out = Path(path)
    _refuse_a_file(out, option)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = temporary_name(out / ".farm-write-test")  # new: a planted link is not used
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as e:
        raise BadInput(f"{option} {path} is not a writable directory ({e.strerror}); "
                       f"choose another {option}") from None
    return out


def check_writable_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """What writable_dir would refuse, refused without making anything: a command that
    checks its input before it starts (and may still refuse something) leaves no folder."""
    out = Path(path)
    _refuse_a_file(out, option)
    if out.is_dir():
        return writable_dir(str(out), option)  # it exists: only probed
    parent = _nearest_existing(out)
    if not os.access(parent, os.W_OK | os.X_OK):  # (a read-only file system too)
        raise BadInput(f"{option} {path} cannot be made: {parent} is not writable; choose "
                       f"another {option}")
    return out


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists."""
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def _refuse_a_file(out: Path, option: str) -> None:
    """A BadInput when `out`, or a folder it would be made in, is a file."""
    found = _nearest_existing(out)
    if found.is_dir():
        return
    what = "names a file" if found == out else f"is inside {found}, a file"
    raise BadInput(f"{option} {out} {what}, not a folder; choose another {option}")


def read_regular(path: str | os.PathLike, limit: int, follow: bool = True) -> bytes:
    """The bytes of `path`, read only if it is a regular file of at most `limit` bytes: a
    FIFO planted where a file belongs would block the reader forever, a link to
    /dev/zero fill its memory. ValueError saying which; OSError when it cannot be opened
    (ELOOP for a link, with `follow` False: a file of the run that must be the run's)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit:,} bytes"
        raise ValueError(f"over {size}, more than such a file holds")
    return data


def write_json(path: Path, data) -> None:
    """Write `data` as JSON, atomically and durably (farm.atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
