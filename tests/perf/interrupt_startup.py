"""Ctrl-C in the first seconds of `farm autotune`: exit code, last line, what is left.

    python tests/perf/interrupt_startup.py [--delays 1 3 5 7 9] [--tries 5]

For each delay, `farm autotune median3x3 --rounds 1 --batch-size 4` is started in a new
folder, sent SIGINT that many seconds later, and waited for. Each try has a Ray temp
folder of its own, so the Ray processes it started (their command lines name it) are
found afterwards: "left" counts those still alive 30 s after the farm exited. Prints a
line per try and a table per delay. Times nothing: it may run beside other work, but it
loads the machine for a minute or two.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def alive_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(int(pid))
    return found


def one_try(delay: float) -> tuple[int, str, int]:
    work = Path(tempfile.mkdtemp(prefix="farm-int-"))
    ray_tmp = work / "ray"
    ray_tmp.mkdir()
    env = dict(os.environ, RAY_TMPDIR=str(ray_tmp))
    farm = str(Path(sys.executable).with_name("farm"))
    # SIGINT as a terminal delivers it: a shell's background job (this script under `&`)
    # ignores it, and so would the farm it starts
    proc = subprocess.Popen([farm, "autotune", "median3x3", "--rounds", "1", "--batch-size",
                             "4", "--out", str(work / "run")], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    end = time.time() + 30
    while alive_with(str(ray_tmp)) and time.time() < end:
        time.sleep(0.5)
    left = alive_with(str(ray_tmp))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(work, ignore_errors=True)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return proc.returncode, (lines[-1] if lines else ""), len(left)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", type=float, nargs="+", default=[1, 3, 5, 7, 9])
    ap.add_argument("--tries", type=int, default=5)
    args = ap.parse_args()
    table = collections.defaultdict(list)
    for t in range(args.tries):
        for delay in args.delays:  # interleaved: a slow minute hits every delay alike
            rc, last, left = one_try(delay)
            table[delay].append((rc, left))
            print(f"try {t + 1} at {delay:g} s: exit {rc}, {left} Ray processes left; "
                  f"{last[:150]}", flush=True)
    print("\ndelay  exits                 processes left")
    for delay, results in sorted(table.items()):
        exits = collections.Counter(rc for rc, _ in results)
        print(f"{delay:4g} s  {dict(exits)!s:<20}  {sum(left for _, left in results)}")


if __name__ == "__main__":
    main()
