"""Compiles under a memory budget (issue 39): two beam-32 compiles of a pipeline that needs
gigabytes, on a node with less free memory than both need.

A process holds all but --leave-gb of the machine's available memory. Then, twice, with a
fresh cache the first time (no compile measured yet) and the same cache the second (the
first run's peaks kept):

    farm bench GENERATOR --weights W --retimes 1 --out OUT

builds the manual schedule and beam-32 with the baseline and with W (a perturbed copy of
the baseline) at once. While it runs, the compile processes are sampled every 0.25 s: how
many held over 1 GB at once, and the machine's lowest available memory. Printed per run:
exit code, seconds, the most big compiles at once, the lowest available memory, the lines
on stderr, each variant's result, and any line of Ray's memory report that reached the
terminal (there should be none).

    python tests/perf/compile_memory.py GENERATOR [--leave-gb 9]

GENERATOR: e.g. Halide's python_bindings/apps/local_laplacian_generator.py:local_laplacian
(a beam-32 compile of it took 5-6 GB here). Nothing else may run meanwhile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BIG = 1 << 30


def hog(nbytes: int) -> subprocess.Popen:
    """A process holding `nbytes` resident until it is killed."""
    code = (f"import sys, time\nb = bytearray({nbytes})\n"
            "for i in range(0, len(b), 4096):\n    b[i] = 1\n"
            "print('held', flush=True)\ntime.sleep(10**6)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.most, self.lowest_gb, self.done = 0, float("inf"), threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            big = 0
            for p in psutil.process_iter(["cmdline", "memory_info"]):
                cmd = " ".join(p.info["cmdline"] or [])
                mem = p.info["memory_info"]
                if "farm.build.process" in cmd and mem is not None and mem.rss > BIG:
                    big += 1
            self.most = max(self.most, big)
            self.lowest_gb = min(self.lowest_gb, psutil.virtual_memory().available / 2**30)
            self.done.wait(0.25)


def bench(generator: str, weights: Path, out: Path, cache: Path) -> dict:
    sampler = Sampler()
    sampler.start()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "farm", "bench", generator, "--weights",
                           str(weights), "--retimes", "1", "--out", str(out)],
                          env={**os.environ, "FARM_CACHE_DIR": str(cache)},
                          capture_output=True, text=True, timeout=7200)
    sampler.done.set()
    sampler.join()
    report = [line for line in (proc.stdout + proc.stderr).splitlines()
              if "memory monitor" in line.lower() or "Memory on the node" in line]
    return {"rc": proc.returncode, "s": time.monotonic() - started, "most": sampler.most,
            "lowest_gb": sampler.lowest_gb, "stderr": proc.stderr.strip().splitlines(),
            "stdout": proc.stdout.strip().splitlines(), "report": report}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator")
    parser.add_argument("--leave-gb", type=float, default=9.0)
    args = parser.parse_args()
    from farm.model import weights

    with tempfile.TemporaryDirectory(prefix="farm-memory-") as tmp:
        root = Path(tmp)
        w = root / "perturbed.weights"
        weights.write(weights.perturbed(weights.baseline(), 3, 0.05), w)
        held = max(0, int(psutil.virtual_memory().available - args.leave_gb * 2**30))
        holder = hog(held)
        try:
            print(f"holding {held / 2**30:.1f} GB; available now "
                  f"{psutil.virtual_memory().available / 2**30:.1f} GB")
            for n in (1, 2):
                r = bench(args.generator, w, root / f"out{n}", root / "cache")
                print(f"\nrun {n} ({'fresh cache' if n == 1 else 'peaks kept'}): exit "
                      f"{r['rc']}, {r['s']:.0f} s, at most {r['most']} compiles over 1 GB "
                      f"at once, lowest available {r['lowest_gb']:.1f} GB, "
                      f"{len(r['stderr'])} line(s) on stderr, "
                      f"{len(r['report'])} line(s) of Ray's memory report")
                for line in r["stdout"][-8:] + r["stderr"][-3:]:
                    print(f"  | {line[:160]}")
            peaks = root / "cache" / "memory" / "compile-peaks.json"
            print(f"\nkept peaks: {peaks.read_text() if peaks.exists() else '(none)'}")
        finally:
            holder.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
