"""Retrain and evaluate the Adams2019 cost model with the halide wheel's own trainer.

The samples come from the run's Parquet dataset, written as Halide .sample
files into a temporary folder for `adams2019_retrain_cost_model`.
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

import pyarrow as pa
import pyarrow.compute as pc

from farm import featurization
from farm.errors import WorkFailed
from farm.halide_env import halide_env
from farm.weights import Weights, check

# Training passes over all samples at most, per round: Halide's loop trains BATCH_SIZE epochs
# on every sample each batch, which grows without bound (an epoch over 100,000 samples takes
# about 86 s on a 2-core host, see PERFORMANCE.md).
EPOCH_SAMPLE_BUDGET = 32 * 4096
MIN_DISTINCT = 8  # the trainer skips a pipeline with fewer distinct schedules
TRAIN_COLUMNS = ["sample_id", "status", "runtime_ms", "pipeline_id", "schedule_id",
                 "schedule_key", "featurization"]
_LOSS = re.compile(r"Loss:\s*(\S+)\s+Rate:\s*(\S+)")


@dataclass(frozen=True)
class TrainResult:
    weights: Weights | None  # the new weights; None when the trainer did not run
    loss: float | None = None
    ordering_rate: float | None = None  # fraction of sample pairs the model orders right
    samples: int = 0
    distinct: int = 0
    skipped: str = ""  # why the trainer did not run
    log: str = ""
    seconds: float = 0.0


def usable(table: pa.Table) -> pa.Table:
    """The rows a trainer can learn from: measured, with a positive runtime."""
    mask = pc.and_(pc.equal(table["status"], "ok"), pc.greater(table["runtime_ms"], 0))
    return table.filter(mask)


def write_samples(table: pa.Table, directory: Path, schedules: pa.Table | None = None,
                  ) -> list[Path]:
    """Write each usable row as `<sample_id>.sample`; with `schedules` (sample_id,
    schedule_source), write `<sample_id>.schedule.h` beside each that has one."""
    rows = usable(table)
    paths = []
    cols = {name: rows[name].to_pylist() for name in
            ("sample_id", "runtime_ms", "pipeline_id", "schedule_id")}
    feats = rows["featurization"]
    for i, sample_id in enumerate(cols["sample_id"]):
        path = directory / f"{_file_name(sample_id)}.sample"
        path.write_bytes(featurization.sample_bytes(
            feats[i].as_py(), cols["runtime_ms"][i], cols["pipeline_id"][i],
            cols["schedule_id"][i]))
        paths.append(path)
    if schedules is not None:
        for sample_id, source in zip(schedules["sample_id"].to_pylist(),
                                     schedules["schedule_source"].to_pylist(), strict=True):
            if source:
                (directory / f"{_file_name(sample_id)}.schedule.h").write_text(source)
    return paths


def default_epochs(batch_size: int, samples: int) -> int:
    """Epochs per retrain: the batch size, as Halide's loop does, until the run holds more
    than 4096 samples; then fewer, so each round's training stays about as long."""
    return max(1, min(batch_size, EPOCH_SAMPLE_BUDGET // max(1, samples)))


def retrain(table: pa.Table, initial: Weights, epochs: int, rate: float = 0.0001,
            log_path: Path | None = None) -> TrainResult:
    """Train from `initial` on every usable row of `table` (as Halide's loop does)."""
    return _train(table, initial, epochs, rate, log_path)


def evaluate(table: pa.Table, weights: Weights, log_path: Path | None = None) -> TrainResult:
    """How well `weights` order these samples: one epoch at learning rate 0."""
    return _train(table, weights, 1, 0.0, log_path)


def _train(table, initial: Weights, epochs: int, rate: float, log_path) -> TrainResult:
    rows = usable(table)
    distinct = len(set(rows["schedule_key"].to_pylist()))
    if distinct < MIN_DISTINCT:
        return TrainResult(None, samples=rows.num_rows, distinct=distinct,
                           skipped=f"only {distinct} distinct schedules measured; Halide's "
                           f"trainer needs {MIN_DISTINCT}")
    trainer = halide_env().tool("adams2019_retrain_cost_model")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="farm-train-") as tmp:
        tmp = Path(tmp)
        paths = write_samples(rows, tmp)
        initial_path = tmp / "initial.weights"
        initial_path.write_bytes(initial.data)
        out = tmp / "out.weights"
        argv = [str(trainer), f"--epochs={epochs}", f"--rates={rate:g}",
                f"--num_cores={os.cpu_count() or 1}", f"--initial_weights={initial_path}",
                f"--weights_out={out}", f"--best_benchmark={tmp / 'best.txt'}",
                f"--best_schedule={tmp / 'best.schedule.h'}"]
        proc = subprocess.run(argv, input="\n".join(map(str, paths)) + "\n",
                              capture_output=True, text=True, cwd=tmp)
        log = proc.stdout + proc.stderr
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(log)
        if proc.returncode != 0 or not out.exists():
            raise WorkFailed(f"{trainer.name} failed (exit {proc.returncode}) on "
                             f"{len(paths)} samples: {log[-1500:]}")
        if "randomizing" in log.lower():
            raise WorkFailed(f"{trainer.name} could not read the initial weights and "
                             "randomized them; the run's weights folder may be damaged")
        weights = check(out.read_bytes(), f"weights from {trainer.name}")
    loss, ordering = _last_loss(log)
    return TrainResult(weights, loss, ordering, len(paths), distinct, log=log,
                       seconds=time.perf_counter() - start)


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


def _file_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sample_id)


def export_samples(samples, out_dir: Path) -> int:
    """Write every measured sample of a run (a SampleStore) as Halide .sample files, each
    with its .schedule.h, so Halide's own tools read them. Returns how many."""
    table = samples.read([*TRAIN_COLUMNS, "schedule_source"])
    rows = usable(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    return len(write_samples(rows, out_dir, schedules=rows.select(["sample_id",
                                                                   "schedule_source"])))
