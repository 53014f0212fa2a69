"""The farm's per-machine cache directory (compiled harnesses, runtimes, generators, weights).

Nothing is written through a symlink planted in it: a subfolder that is a link is refused
(the cache root itself may be one, set by its owner), and every file is made new and
renamed into place.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from farm.atomic import replace_bytes
from farm.errors import BadInput, DiskFull, MissingPrerequisite
from farm.paths import user_dir


def cache_root() -> Path:
    return user_dir("FARM_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def cache_dir(*parts: str) -> Path:
    from farm.atomic import real_dir

    root = cache_root()
    path = root.joinpath(*parts)
    try:
        root.mkdir(parents=True, exist_ok=True)
        real_dir(path, root)
    except BadInput as e:  # a link where a subfolder should be
        raise MissingPrerequisite(f"the farm's cache: {e}", cause="cache") from None
    except OSError as e:
        from farm.atomic import out_of_space

        if out_of_space(e):
            raise DiskFull(f"no space left on the device of the farm's cache {path}: free "
                           "some there (or set FARM_CACHE_DIR elsewhere)") from None
        raise MissingPrerequisite(
            f"the farm's cache folder {path} cannot be made ({e.strerror}): fix its "
            "permissions, or set FARM_CACHE_DIR to a folder of your own", cause="cache") \
            from None
    return path


def build_once(path: Path, make: Callable[[Path], None]) -> Path:
    """`path`, made by `make(tmp)` once per machine, even when several workers ask at once:
    the first holds a lock while it makes a temporary file, renamed into place when done
    (a failed or killed `make` leaves no `path` behind). An entry whose bytes are not those
    it was made with (its digest, PATH.sha256, written beside it) is made again, and said
    once on stderr: damaged bytes would have been used unchecked."""
    if intact(path):
        return path
    lock_path = path.with_name(path.name + ".lock")
    try:  # opened, never truncated, and never through a link planted as the lock
        lock = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o666)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise MissingPrerequisite(f"the farm's cache: {lock_path} is a symbolic link, and "
                                  "the farm writes through none: remove it", cause="cache") \
            from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not intact(path):
            if os.path.lexists(path) and not _regular(path):  # a FIFO would block a reader
                print(f"farm: the cache entry {path} is not a regular file (a folder, a "
                      "link, a FIFO): made again", file=sys.stderr)
                _remove(path)
            elif path.exists() and _digest_path(path).exists():  # (none: an older farm's)
                print(f"farm: the cache entry {path} is not what was made there (its bytes "
                      "changed): made again", file=sys.stderr)
            for orphan in path.parent.glob(f".tmp*-{path.name}"):  # of a killed maker
                orphan.unlink(missing_ok=True)  # (we hold the lock: nobody makes it)
            # a new name (keeping the extension): no file or link is there to write through
            tmp = path.with_name(f".tmp{os.getpid()}{secrets.token_hex(4)}-{path.name}")
            digest = _digest_path(path)
            try:
                make(tmp)
                replace_bytes(digest, _digest(tmp).encode())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        os.close(lock)  # (releases the flock)
    return path


_checked: dict[Path, tuple[int, int, int]] = {}  # entries found intact: (inode, size, mtime)


def intact(path: Path) -> bool:
    """Whether the cache entry `path` is there with the bytes it was made with (its
    digest beside it); checked once per process while the file stays the same file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):  # never read: a FIFO blocks, a link points anywhere
        return False
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    if _checked.get(path) == key:
        return True
    try:
        ok = _digest_path(path).read_text().strip() == _digest(path)
    except OSError:  # no digest: made by an older farm, or damaged
        ok = False
    if ok:
        _checked[path] = key
    return ok


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    """A folder, link or special file where a cache entry belongs (never what a link
    points to)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
