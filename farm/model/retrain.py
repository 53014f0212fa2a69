"""Train the Adams2019 cost model with the halide wheel's own trainer.

What `adams2019_retrain_cost_model` does (retrain_cost_model.cpp in Halide's
repository): it reads `.sample` paths from stdin, loads every file, then runs
`--epochs` passes in which each pipeline with at least 8 distinct schedules gets
ONE gradient step on at most 1024 of them (a random contiguous window when it
has more). So an "epoch" is a step, not a pass over the data; a step costs the
same at 1,000 or 100,000 samples, and what grows with the run is loading the
files (see PERFORMANCE.md, *Training*). Hence:

- the run keeps its `.sample` files in RUN_DIR/cache/samples/, a cache rebuilt
  from the Parquet dataset, written once per sample instead of every round;
- a training call gets a fixed number of steps, and at most TRAIN_CAP schedules
  per pipeline (the fastest tenth, and a rest drawn with a seed the caller records), so
  its cost stays bounded and it is reproducible: TRAIN_CAP is the trainer's own window,
  1024, because with more it draws each step's window from an RNG seeded with time().
  Given at most 1024 schedules of each pipeline and initial weights, the trainer is a
  function of its inputs (the same weights, byte for byte: tests/test_costmodel.py);
- `--num_cores` is the parallelism the autoscheduler searches with: the model's
  pipeline features (tasks per core, idle cores) depend on it.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from farm import atomic
from farm.errors import WorkFailed
from farm.machine.halide_env import halide_env
from farm.model import featurization
from farm.model.weights import Weights, check
from farm.paths import path_name

MIN_DISTINCT = 8  # the trainer skips a pipeline with fewer distinct schedules
# schedules per pipeline handed to one training call: the trainer's window (module docstring)
TRAIN_CAP = 1024
BAGGED_SHARE = 0.8  # of each pipeline's rows a seed above 0 trains on (bagged)
DEFAULT_STEPS = 32  # gradient steps per training call (Halide's loop: the batch size)
TRAIN_TIMEOUT_S = 3600.0
LOG_HEAD, LOG_TAIL = 20, 60  # lines of the trainer's output kept (it prints one per schedule)
_LOSS = re.compile(r"Loss:\s*(\S+)\s+Rate:\s*(\S+)")


@dataclass(frozen=True)
class TrainResult:
    weights: Weights | None  # the new weights; None when the trainer did not run
    loss: float | None = None
    # The trainer's own figure, on its TRAINING data: of the schedules more than 1.3x slower
    # than their pipeline's fastest, the fraction it predicts slower than the fastest.
    train_rate: float | None = None
    samples: int = 0
    distinct: int = 0
    skipped: str = ""  # why the trainer did not run
    log: str = ""  # head and tail of the trainer's output
    seconds: float = 0.0


def usable(table: pa.Table) -> pa.Table:
    """The rows a trainer can learn from: measured, with a positive runtime."""
    mask = pc.and_(pc.equal(table["status"], "ok"), pc.greater(table["runtime_ms"], 0))
    return table.filter(mask)


def file_stem(text: str) -> str:
    """`text` as a file name's stem: its path_name (a long one cut and told apart by a
    hash, within the file system's 255 bytes: a legal 225-character pipeline name once
    made every training fail), with no space, since the trainer reads names with `>>`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path_name(text))


def file_name(sample_id: str) -> str:
    """A sample's training file's name."""
    return file_stem(sample_id) + ".sample"


class SampleFiles:
    """A folder of Halide .sample files, one per usable row, written once each.

    A cache: deleting it loses nothing, the next call writes it again from the rows.
    """

    def __init__(self, directory: str | os.PathLike, root: str | os.PathLike | None = None):
        self.dir = Path(directory)
        self.root = root  # a run directory it is in: no folder between them may be a link
        self._have: set[str] | None = None

    def sync(self, table: pa.Table) -> list[str]:
        """Write the files missing for the usable rows of `table`; their names, in order."""
        rows = usable(table)
        atomic.real_dir(self.dir, self.root)
        if self._have is None:
            self._have = {p.name for p in self.dir.iterdir() if p.suffix == ".sample"}
        ids = rows["sample_id"].to_pylist()
        names = [file_name(s) for s in ids]
        missing = [i for i, n in enumerate(names) if n not in self._have]
        if missing:
            runtimes, pipes = rows["runtime_ms"].to_pylist(), rows["pipeline_id"].to_pylist()
            schedules, feats = rows["schedule_id"].to_pylist(), rows["featurization"]
            for i in missing:  # never a truncated file under a .sample name, nor a link's
                atomic.replace_bytes(self.dir / names[i], featurization.sample_bytes(
                    feats[i].as_py(), runtimes[i], pipes[i], schedules[i]))
                self._have.add(names[i])
        return names


def capped(table: pa.Table, cap: int = TRAIN_CAP, seed: int = 0) -> pa.Table:
    """At most `cap` distinct schedules per pipeline: the fastest tenth, then a random rest.

    A training step sees at most 1024 schedules anyway; loading more costs time and no step.
    """
    rows = usable(table)
    keep: list[int] = []
    pipes = np.asarray(rows["pipeline_id"].to_numpy(zero_copy_only=False))
    runtimes = np.asarray(rows["runtime_ms"].to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(seed)
    for pipe in np.unique(pipes):
        idx = np.flatnonzero(pipes == pipe)
        if len(idx) <= cap:
            keep.extend(idx.tolist())
            continue
        order = idx[np.argsort(runtimes[idx], kind="stable")]
        fast = order[:cap // 10]
        rest = rng.choice(order[cap // 10:], cap - len(fast), replace=False)
        keep.extend(fast.tolist() + rest.tolist())
    return rows.take(pa.array(sorted(keep), type=pa.int64()))


def bagged(table: pa.Table, seed: int, share: float = BAGGED_SHARE) -> pa.Table:
    """`share` of each pipeline's usable rows, drawn with `seed` (0: every row): what a seed
    varies in a training. From fixed initial weights, Halide's trainer is a function of its
    rows (module docstring), so a seed that drew nothing would train the same model."""
    rows = usable(table)
    if seed == 0:
        return rows
    pipes = np.asarray(rows["pipeline_id"].to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for pipe in np.unique(pipes):
        idx = np.flatnonzero(pipes == pipe)
        keep.extend(rng.choice(idx, max(1, math.ceil(share * len(idx))), replace=False))
    return rows.take(pa.array(sorted(keep), type=pa.int64()))


def train(files: SampleFiles, table: pa.Table, initial: Weights, *, steps: int, rate: float,
          num_cores: int, timeout_s: float = TRAIN_TIMEOUT_S,
          log_path: Path | None = None) -> TrainResult:
    """Train from `initial` on the usable rows of `table` with Halide's trainer."""
    rows = usable(table)
    distinct = len(set(rows["schedule_key"].to_pylist()))
    if distinct < MIN_DISTINCT:
        return TrainResult(None, samples=rows.num_rows, distinct=distinct,
                           skipped=f"only {distinct} distinct schedules measured; Halide's "
                           f"trainer needs {MIN_DISTINCT}")
    trainer = halide_env().tool("adams2019_retrain_cost_model")
    names = files.sync(rows)
    start = time.perf_counter()
    sweep_dead_trainings()
    with tempfile.TemporaryDirectory(prefix=f"{TRAIN_DIR_PREFIX}{os.getpid()}-") as tmp_name:
        tmp = Path(tmp_name)
        initial_path = tmp / "initial.weights"
        initial_path.write_bytes(initial.data)
        out = tmp / "out.weights"
        argv = [str(trainer), f"--epochs={steps}", f"--rates={rate:g}",
                f"--num_cores={num_cores}", f"--initial_weights={initial_path}",
                f"--weights_out={out}", f"--best_benchmark={tmp / 'best.txt'}",
                f"--best_schedule={tmp / 'best.schedule.h'}"]
        try:  # names are relative to the cache folder, whose path may hold spaces
            proc = subprocess.run(argv, input="\n".join(names) + "\n", capture_output=True,
                                  text=True, cwd=files.dir, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise WorkFailed(f"{trainer.name} took over {timeout_s:g} s on {len(names)} "
                             "samples and was killed") from None
        log = bounded_log(proc.stdout + proc.stderr)
        if log_path is not None:  # a new file renamed into place: never through a link
            atomic.replace_bytes(atomic.real_dir(log_path.parent) / log_path.name,
                                 log.encode())
        if proc.returncode != 0 or not out.exists():
            raise WorkFailed(f"{trainer.name} failed (exit {proc.returncode}) on "
                             f"{len(names)} samples: {log[-1500:]}")
        if "randomizing" in log.lower():
            raise WorkFailed(f"{trainer.name} could not read the initial weights and "
                             "randomized them; the run's weights folder may be damaged")
        weights = check(out.read_bytes(), f"weights from {trainer.name}")
    loss, train_rate = _last_loss(log)
    return TrainResult(weights, loss, train_rate, len(names), distinct, log=log,
                       seconds=time.perf_counter() - start)


TRAIN_DIR_PREFIX = "farm-train-"  # then the pid of the process whose training it holds


def sweep_dead_trainings() -> None:
    """Remove the temporary folders of trainings whose process is gone (a driver killed
    with kill -9 leaves its folder behind; nothing else would ever remove it)."""
    import shutil

    import psutil

    for folder in Path(tempfile.gettempdir()).glob(f"{TRAIN_DIR_PREFIX}*"):
        pid = folder.name[len(TRAIN_DIR_PREFIX):].split("-", 1)[0]
        try:
            mine = folder.lstat().st_uid == os.getuid() and folder.is_dir() and \
                not folder.is_symlink()
        except OSError:
            continue
        if mine and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def bounded_log(text: str) -> str:
    """The trainer's output without its line per schedule, and at most head + tail lines."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("Unique sample:")]
    if len(lines) > LOG_HEAD + LOG_TAIL:
        cut = len(lines) - LOG_HEAD - LOG_TAIL
        lines = [*lines[:LOG_HEAD], f"[... {cut} lines ...]", *lines[-LOG_TAIL:]]
    return "\n".join(lines) + "\n"


def _last_loss(log: str) -> tuple[float | None, float | None]:
    matches = _LOSS.findall(log)
    if not matches:
        return None, None
    loss, rate = (_float(v) for v in matches[-1])
    return loss, rate


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
