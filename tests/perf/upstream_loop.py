"""Halide's own autotuning loop (adams2019_autotune_loop.sh from the halide wheel), run
unchanged but for its batch size, on C++ generators of the farm's benchmarks
(tests/perf/upstream/generators.cpp). The "upstream" side of the throughput comparison.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from farm.machine.halide_env import halide_env
from farm.model import weights
from farm.model.featurization import SCHEDULE_FEATURES, STAGE_FLOATS

HERE = Path(__file__).parent


def prepare(work: Path) -> dict:
    """Build the generator executable and the folder layout the loop expects (~20 s once)."""
    env = halide_env()
    work.mkdir(parents=True, exist_ok=True)
    gen = work / "farm_benchmarks.generator"
    source = HERE / "upstream" / "generators.cpp"
    if not gen.exists() or gen.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(
            ["c++", "-std=c++17", "-O1", "-fno-rtti", "-I", str(env.include_dir),
             str(source), str(env.lib_dir / "libHalide_GenGen.a"), "-L", str(env.lib_dir),
             "-lHalide", f"-Wl,-rpath,{env.lib_dir}", "-lpthread", "-ldl", "-o", str(gen)],
            check=True)
    # The loop wants HALIDE_DISTRIB_PATH/{include,tools} and one folder holding both the
    # tool binaries and the plugin; the wheel splits these.
    distrib, autosched = work / "distrib", work / "autosched_bin"
    distrib.mkdir(exist_ok=True)
    autosched.mkdir(exist_ok=True)
    for link, target in ((distrib / "include", env.include_dir),
                         (distrib / "tools", env.tools_dir)):
        if not link.exists():
            link.symlink_to(target)
    for tool in [*(env.root / "bin").iterdir(), env.plugin]:
        link = autosched / tool.name
        if not link.exists():
            link.symlink_to(tool)
    start = work / "baseline.weights"
    weights.write(weights.baseline(), start)
    script = work / "loop_batch.sh"
    return {"generator": gen, "distrib": distrib, "autosched": autosched, "weights": start,
            "script": env.tools_dir / "adams2019_autotune_loop.sh", "patched": script}


def run_batches(paths: dict, bench: str, batch: int, batches: int, samples: Path) -> float:
    """Run `batches` batches of `batch` samples into `samples`; return the wall time."""
    text = paths["script"].read_text()
    assert "BATCH_SIZE=32\n" in text, "the loop script no longer sets BATCH_SIZE=32"
    patched = text.replace("BATCH_SIZE=32\n", f"BATCH_SIZE={batch}\n")
    paths["patched"].write_text(patched)
    paths["patched"].chmod(0o755)
    samples.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for _ in range(batches):  # the script runs one batch per call and resumes numbering
        with open(samples / "loop.log", "a") as log:
            subprocess.run([str(paths["patched"]), str(paths["generator"]), bench, "",
                            str(paths["weights"]), str(paths["autosched"]),
                            str(paths["distrib"]), str(samples)],
                           stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - start


def count(samples: Path) -> tuple[int, int]:
    """(samples with a positive runtime, distinct schedules among them)."""
    keys, n = set(), 0
    for path in glob.glob(os.path.join(samples, "**", "*.sample"), recursive=True):
        data = Path(path).read_bytes()
        runtime = np.frombuffer(data[-12:-8], dtype="<f4")[0]
        if not runtime > 0:
            continue
        n += 1
        stages = np.frombuffer(data[:-12], dtype="<f4").reshape(-1, STAGE_FLOATS)
        keys.add(hashlib.sha256(stages[:, :SCHEDULE_FEATURES].tobytes()).hexdigest())
    return n, len(keys)
