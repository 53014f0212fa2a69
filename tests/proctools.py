"""Finding and killing the processes of a running `farm` command (for fault injection)."""

import contextlib
import os
import signal
import time
from pathlib import Path


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                found.extend(int(k) for k in kids)
                todo.extend(int(k) for k in kids)
        except OSError:
            pass
    return found


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def wait_for_process(root: int, prefix: str, timeout: float = 120, anywhere: bool = False
                     ) -> int:
    """A descendant of `root` whose title starts with `prefix` (Ray names workers
    `ray::candidate_task`, `ray::DeviceActor.candidates`, ...), or holds it (`anywhere`)."""
    end = time.time() + timeout
    while time.time() < end:
        for p in descendants(root):
            name = title(p)
            if name.startswith(prefix) or (anywhere and prefix in name):
                return p
        time.sleep(0.05)
    raise TimeoutError(f"no process {prefix!r} under {root}")


def kill_all(pids) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def wait_for_file(path: Path, timeout: float = 300) -> None:
    end = time.time() + timeout
    while not path.exists():
        if time.time() > end:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.1)


def kill_device_actor_mid_timing(roots: list[int], timeout: float = 300) -> int:
    """SIGKILL a device actor (under any of `roots`) while it times: while the benchmark
    process it started is running. Its pid."""
    end = time.time() + timeout
    while time.time() < end:
        for root in roots:
            for p in descendants(root):
                if title(p).startswith("ray::DeviceActor") and descendants(p):
                    os.kill(p, signal.SIGKILL)
                    return p
        time.sleep(0.01)
    raise TimeoutError(f"no device actor timed under {roots}")
