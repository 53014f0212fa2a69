"""The farm's per-machine cache directory (compiled harnesses, runtimes, generators, weights)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from farm.errors import DiskFull, MissingPrerequisite


def cache_root() -> Path:
    root = os.environ.get("FARM_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "halide-farm"


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
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
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                for orphan in path.parent.glob(f".tmp*-{path.name}"):  # of a killed maker
                    orphan.unlink(missing_ok=True)  # (we hold the lock: nobody makes it)
                tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")  # keeps the extension
                try:
                    make(tmp)
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path
