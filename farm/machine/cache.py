"""The farm's per-machine cache directory (compiled harnesses, runtimes, generators, weights).

Nothing is written through a symlink planted in it: a subfolder that is a link is refused
(the cache root itself may be one, set by its owner), and every file is made new and
renamed into place.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from collections.abc import Callable
from pathlib import Path

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
    (a failed or killed `make` leaves no `path` behind)."""
    if path.exists():
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
        if not path.exists():
            for orphan in path.parent.glob(f".tmp*-{path.name}"):  # of a killed maker
                orphan.unlink(missing_ok=True)  # (we hold the lock: nobody makes it)
            # a new name (keeping the extension): no file or link is there to write through
            tmp = path.with_name(f".tmp{os.getpid()}{secrets.token_hex(4)}-{path.name}")
            try:
                make(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        os.close(lock)  # (releases the flock)
    return path
