"""The samples folder that Halide's own autotuning loop leaves (adams2019_autotune_loop.sh,
and the scripts built on it), read as typed samples.

The loop writes SAMPLES/batch_B_I/N/ per sample N of batch B (I: the generator arguments'
set): PIPELINE_batch_BBBB_sample_NNNN.sample (the featurization, then f32 runtime, i32
pipeline id, i32 schedule id), the .schedule.h beside it, and bench.txt, RunGen's output.
Its runtime is in ms (featurization_to_sample turns RunGen's "best case of T sec/iter"
into ms; farm.model.featurization), and bench.txt beside it keeps RunGen's line. Its
pipeline id is the argument set's index (0 for every pipeline: Halide issue 7086), so the
farm tells pipelines apart by their features (farm.model.featurization.pipeline_id).

A file that is not such a sample is listed with the reason, never fatal. A run's samples
are written the same way (export_samples), so Halide's own tools and `farm import` read
them.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from farm import atomic
from farm.atomic import read_regular
from farm.model import featurization, retrain
from farm.store.samples import TRAIN_COLUMNS

FILE_NAME = re.compile(r"(?P<pipeline>.+)_batch_(?P<batch>\d+)_sample_(?P<sample>\d+)\.sample")
BATCH_DIR = re.compile(r"batch_(?P<batch>\d+)_(?P<args>\d+)")
BENCH_LINE = re.compile(r"best case of ([0-9.eE+-]+) sec/iter")
TRAILER = struct.calcsize("<fii")  # runtime, pipeline id, schedule id
# Halide's trainer reads at most 10M floats of a sample; a schedule and RunGen's output are
# a few KB
MAX_SAMPLE_BYTES = 40 << 20
MAX_SCHEDULE_BYTES = 4 << 20
MAX_BENCH_BYTES = 64 << 10


@dataclass(frozen=True)
class LoopSample:
    path: Path
    featurization: bytes
    runtime_ms: float
    pipeline: str  # the generator's name, from the file's name (or as the user names it)
    batch: int
    index: int  # its place in its batch (0: the batch's beam search)
    schedule_id: int  # as the loop numbered it: batch * 10000 + index
    schedule_source: str | None  # the .schedule.h beside it
    modified: float  # the file's mtime: when the loop wrote it


def read_folder(folder: Path, pipeline: str | None = None
                ) -> tuple[list[LoopSample], list[tuple[Path, str]]]:
    """Every .sample under `folder` as a LoopSample, and the files skipped with why.
    `pipeline` names the samples' pipeline when their file names do not."""
    good, bad = [], []
    for path in sorted(folder.rglob("*.sample")):
        try:
            good.append(read_sample(path, pipeline))
        except ValueError as e:
            bad.append((path, str(e)))
    return good, bad


def read_sample(path: Path, pipeline: str | None = None) -> LoopSample:
    """One .sample file; ValueError says why it is not one. Files are read only when
    regular and of a size such a file has (a FIFO hung the import, a link to /dev/zero
    filled its memory, a 1.5 GB file was read whole)."""
    try:
        data = read_regular(path, MAX_SAMPLE_BYTES, follow=False)
    except OSError as e:
        raise ValueError(f"cannot be read ({e.strerror or e})") from None
    feats = data[:-TRAILER] if len(data) > TRAILER else b""
    try:
        featurization.stages(feats)
    except ValueError as e:
        raise ValueError(f"{len(data)} bytes: {e}") from None
    sample_ms, _, schedule_id = struct.unpack("<fii", data[-TRAILER:])
    named = FILE_NAME.fullmatch(path.name)
    batch_dir = BATCH_DIR.fullmatch(path.parent.parent.name)
    name = pipeline or (named.group("pipeline") if named else None)
    if not name:
        raise ValueError("its name is not PIPELINE_batch_B_sample_N.sample: give "
                         "--benchmark NAME")
    batch = int(named.group("batch")) if named else (
        int(batch_dir.group("batch")) if batch_dir else schedule_id // 10000)
    index = int(named.group("sample")) if named else schedule_id % 10000
    runtime_ms = _runtime_ms(path.parent / "bench.txt", sample_ms)
    if not (math.isfinite(runtime_ms) and runtime_ms > 0):
        raise ValueError(f"its runtime {sample_ms!r} ms is not a positive time")
    try:
        source: str | None = read_regular(
            path.with_name(path.name[:-len(".sample")] + ".schedule.h"), MAX_SCHEDULE_BYTES,
            follow=False).decode(errors="replace")
    except (OSError, ValueError):  # none, or not a schedule a loop wrote
        source = None
    return LoopSample(path, feats, runtime_ms, name, batch, index, schedule_id, source,
                      path.stat().st_mtime)


def _runtime_ms(bench_txt: Path, sample_ms: float) -> float:
    """The runtime in ms: RunGen's own line when it is beside the sample (its seconds, in
    full where the .sample holds an f32), else the .sample's."""
    try:
        found = BENCH_LINE.search(read_regular(bench_txt, MAX_BENCH_BYTES, follow=False)
                                  .decode(errors="replace"))
    except (OSError, ValueError):  # none, or not RunGen's output (a FIFO, a huge file)
        found = None
    if found is not None:
        try:
            return float(found.group(1)) * 1000.0
        except ValueError:
            pass
    return float(sample_ms)


def export_samples(samples, out_dir: Path) -> int:
    """Write every measured sample of a run (a SampleStore) as Halide .sample files, each
    with its .schedule.h, named as Halide's loop names them, so Halide's own tools and
    `farm import` read them. Returns how many."""
    rows = retrain.usable(samples.read([*TRAIN_COLUMNS, "index", "schedule_source"]))
    atomic.real_dir(out_dir)
    for row in (r for batch in rows.to_batches(max_chunksize=256) for r in batch.to_pylist()):
        # the loop's PIPELINE_batch_B_sample_N, which `farm import` reads the pipeline from
        stem = f"{retrain.file_stem(row['benchmark'])}_batch_{row['round']:04d}_sample_" \
               f"{row['index']:04d}"
        atomic.replace_bytes(out_dir / f"{stem}.sample", featurization.sample_bytes(
            row["featurization"], row["runtime_ms"], row["pipeline_id"], row["schedule_id"]))
        if row["schedule_source"]:
            atomic.replace_bytes(out_dir / f"{stem}.schedule.h",
                                 row["schedule_source"].encode())
    return rows.num_rows
