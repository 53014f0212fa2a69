"""The Parquet sample dataset of a run: RUN_DIR/samples/.

One file per committed round (`round-000007.parquet`), written to a hidden
temporary name and renamed, so a crash leaves the whole round or none of it.
Compaction merges round files into range files (`rounds-000001-000032.parquet`)
so a run of 1,000 rounds does not leave 1,000 files; a round file that a range
file covers (a compaction interrupted before its clean-up) is ignored.

The dataset outlives the code that wrote it. Each file carries the schema
version it was written with (`farm.schema_version` in its Parquet metadata).
Columns are only ever added, never renamed or dropped: a file of an older
version reads with the newer columns as nulls, and a file of a newer version
than this farm knows is refused with a message saying to upgrade.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from farm import atomic
from farm.errors import DatasetError

SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("run_id", pa.string()),
    ("round", pa.int32()),
    ("index", pa.int32()),  # the candidate's place in its round; 0 is beam search
    ("benchmark", pa.string()),
    ("pipeline_id", pa.int32()),
    ("schedule_id", pa.int64()),
    ("seed", pa.int64()),
    ("attempts", pa.int32()),  # autoschedules tried before a new schedule (or giving up)
    ("beam_size", pa.int32()),
    ("random_dropout", pa.int32()),
    ("parallelism", pa.int32()),
    ("target", pa.string()),
    ("schedule_target", pa.string()),
    ("weights_sha256", pa.string()),
    ("device_id", pa.string()),
    ("device_kind", pa.string()),
    ("node_id", pa.string()),
    ("host", pa.string()),
    ("compile_host", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("log", pa.string()),  # tail of the compile or run log of a failed candidate
    ("compile_s", pa.float64()),
    ("autoschedule_s", pa.float64()),
    ("codegen_s", pa.float64()),
    ("link_s", pa.float64()),
    ("run_s", pa.float64()),
    ("runtime_ms", pa.float64()),  # best repeat; positive whenever status is ok
    ("runtimes_ms", pa.list_(pa.float64())),
    ("schedule_key", pa.string()),
    ("duplicate_of", pa.int64()),  # schedule_id of the measured twin of a duplicate
    ("schedule_source", pa.string()),
    ("featurization", pa.binary()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    # version 2
    ("planner", pa.string()),  # how the candidate was planned: b<beam>-d<dropout>@<weights>
    # version 3
    ("cause", pa.string()),  # a failed row's cause: a short, stable key (farm.tuning.rows.cause)
    # version 4: when the device timed it, under its lease (null: never timed)
    ("timing_started_at", pa.timestamp("us", tz="UTC")),
    ("timing_ended_at", pa.timestamp("us", tz="UTC")),
    # version 5: the cost model's prediction for the schedule by the weights that planned
    # its round (the model's own units, not ms), recorded at commit; null without a
    # featurization or where the model could not be run
    ("predicted", pa.float64()),
    # version 6: the compile's peak resident memory in MB (farm.build.process); null where
    # nothing was compiled or it was not watched
    ("compile_memory_mb", pa.float64()),
])
SCHEMA_VERSION = 6
# The columns each version added; a file of version v has every column up to v.
ADDED_IN = {2: ("planner",), 3: ("cause",), 4: ("timing_started_at", "timing_ended_at"),
            5: ("predicted",), 6: ("compile_memory_mb",)}
REQUIRED = [f.name for f in SCHEMA if not any(f.name in c for c in ADDED_IN.values())]
_VERSION_KEY = b"farm.schema_version"

# The columns each reader of the dataset needs, declared here beside the schema.
STATE_COLUMNS = ("round", "index", "status", "runtime_ms", "schedule_key", "schedule_id",
                 "duplicate_of", "benchmark")  # farm.tuning.loop: what a resumed run knows
TRAIN_COLUMNS = ("sample_id", "round", "status", "runtime_ms", "pipeline_id", "schedule_id",
                 "schedule_key", "featurization", "benchmark")
# (farm.model.retrain, farm.model.acceptance: training)
FINALIST_COLUMNS = ("sample_id", "round", "index", "status", "runtime_ms", "schedule_key",
                    "seed", "beam_size", "random_dropout", "parallelism", "planner",
                    "attempts", "weights_sha256", "benchmark")  # rebuild a sample (finalize)
REPORT_COLUMNS = ("round", "index", "status", "runtime_ms", "schedule_key", "created_at",
                  "planner", "benchmark", "cause", "error", "device_id", "timing_started_at",
                  "timing_ended_at", "predicted")  # farm.report.text
SUMMARY_COLUMNS = ("status", "schedule_key", "benchmark")  # farm.tuning.summary.summary
COLUMN_SETS = {"STATE_COLUMNS": STATE_COLUMNS, "TRAIN_COLUMNS": TRAIN_COLUMNS,
               "FINALIST_COLUMNS": FINALIST_COLUMNS, "REPORT_COLUMNS": REPORT_COLUMNS,
               "SUMMARY_COLUMNS": SUMMARY_COLUMNS}


def _check_column_sets() -> None:
    for name, cols in COLUMN_SETS.items():
        unknown = [c for c in cols if c not in SCHEMA.names]
        if unknown:
            raise AssertionError(f"samples.{name} names columns not in SCHEMA: {unknown}")


_check_column_sets()

_ROUND = re.compile(r"round-(\d{6})\.parquet")
_RANGE = re.compile(r"rounds-(\d{6})-(\d{6})\.parquet")
COMPACT_AFTER = 32  # round files before they are merged
DAMAGED = "_damaged"  # samples/_damaged/: files a user moved aside; their rounds are lost
READ_TRIES = 5  # a reader racing a compaction lists the files again this many times


class SampleStore:
    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def _files(self) -> tuple[dict[int, Path], dict[tuple[int, int], Path]]:
        singles: dict[int, Path] = {}
        ranges: dict[tuple[int, int], Path] = {}
        if not self.dir.is_dir():
            return singles, ranges
        for path in self.dir.iterdir():
            if path.name.startswith((".", "_")):
                continue
            if m := _ROUND.fullmatch(path.name):
                singles[int(m.group(1))] = path
            elif m := _RANGE.fullmatch(path.name):
                ranges[(int(m.group(1)), int(m.group(2)))] = path
            else:
                raise DatasetError(
                    f"{path} does not belong in a sample dataset (expected round-NNNNNN.parquet "
                    "files); move it out of the folder")
        covered = {r for lo, hi in ranges for r in range(lo, hi + 1)}
        return {r: p for r, p in singles.items() if r not in covered}, ranges

    def files(self) -> list[Path]:
        singles, ranges = self._files()
        return sorted([*singles.values(), *ranges.values()])

    def committed_rounds(self) -> list[int]:
        singles, ranges = self._files()
        return sorted({*singles, *(r for lo, hi in ranges for r in range(lo, hi + 1))})

    def lost_rounds(self) -> list[int]:
        """Rounds whose file was moved into samples/_damaged/ (a corrupt file, say): the
        run goes on without their samples."""
        found: set[int] = set()
        folder = self.dir / DAMAGED
        for path in folder.iterdir() if folder.is_dir() else ():
            if m := _ROUND.fullmatch(path.name):
                found.add(int(m.group(1)))
            elif m := _RANGE.fullmatch(path.name):
                found.update(range(int(m.group(1)), int(m.group(2)) + 1))
        return sorted(found - set(self.committed_rounds()))

    def rounds_done(self) -> int:
        """How many rounds the run has done: the committed ones and the lost ones."""
        return len(self.committed_rounds()) + len(self.lost_rounds())

    def commit_round(self, round_no: int, rows: list[dict]) -> Path:
        """Write one round atomically. A committed round is never written again."""
        if round_no in self.committed_rounds():
            raise DatasetError(f"round {round_no} is already committed in {self.dir}")
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        path = self.dir / f"round-{round_no:06d}.parquet"
        _write_atomic(table, path)
        return path

    def read(self, columns: Iterable[str] | None = None, filter=None) -> pa.Table:
        """All committed rows (or `columns` of them); a corrupt file is an error naming it."""

        columns = list(columns) if columns is not None else None
        for attempt in range(READ_TRIES):
            files = self.files()
            if not files:
                return SCHEMA.empty_table().select(columns) if columns else SCHEMA.empty_table()
            try:
                return _read(files, columns, filter)
            except FileNotFoundError:  # a compaction replaced round files as we read them:
                if attempt == READ_TRIES - 1:  # the rows are in its range file now
                    raise DatasetError(f"the files of {self.dir} kept changing while they "
                                       "were read; try again") from None
        raise AssertionError("unreachable")

    def compact(self, min_files: int = COMPACT_AFTER) -> Path | None:
        """Merge consecutive round files into one range file once there are `min_files` of
        them. Never across a gap (a round moved to _damaged/): a range file's name says
        every round in it, so one spanning a lost round would hide it, and that round,
        restored, would be ignored."""
        singles, _ = self._files()
        rounds: list[int] = []
        for r in sorted(singles):
            if rounds and r != rounds[-1] + 1:
                if len(rounds) >= min_files:
                    break
                rounds = []
            rounds.append(r)
        if len(rounds) < min_files:
            return None
        table = _read([singles[r] for r in rounds], None, None)
        target = self.dir / f"rounds-{rounds[0]:06d}-{rounds[-1]:06d}.parquet"
        _write_atomic(table, target)
        for r in rounds:  # covered by the range file from here on, even if we crash now
            singles[r].unlink(missing_ok=True)
        return target


def _read(files: list[Path], columns: list[str] | None, filter) -> pa.Table:
    """Rows of `files` in this version's schema; columns a file predates read as nulls."""
    import pyarrow.dataset as ds

    for path in files:
        _check_file(path)
    try:
        dataset = ds.dataset([str(p) for p in files], format="parquet", schema=SCHEMA)
        table = dataset.to_table(columns=columns, filter=filter)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:  # a column of another type among them
        if any(not p.exists() for p in files):
            raise FileNotFoundError(str(e)) from None  # gone mid-read: a compaction
        raise DatasetError(f"cannot read the sample dataset in {files[0].parent}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                           f"{_DAMAGED_FIX}") from None
    for name, most in MAX_TEXT_CHARS.items():  # cut, never refused: the rows are the run's
        if name in table.column_names and \
                (pc.max(pc.utf8_length(table[name])).as_py() or 0) > most:
            table = table.set_column(table.column_names.index(name), name,
                                     pc.utf8_slice_codeunits(table[name], 0, most))
    if _missing(table):
        found = next((p for p in files if _missing(ds.dataset(
            str(p), format="parquet", schema=SCHEMA).to_table(columns=columns,
                                                               filter=filter))), None)
        raise DatasetError(f"{found or files[0].parent} has rows without "
                           f"{', '.join(_missing(table))}, which every row the farm writes "
                           f"has; {_DAMAGED_FIX}")
    return table


# What every row the farm writes has, and every ok row: a row without them is no sample
# of this farm's, and the readers (reports, training, resuming) would fail on it.
_NEVER_NULL = ("sample_id", "round", "index", "status")
_OK_NEVER_NULL = ("runtime_ms",)


def _missing(table: pa.Table) -> list[str]:
    """What rows of `table` lack of what every row (every ok row) the farm writes has."""
    names = table.column_names
    bad = [n for n in _NEVER_NULL if n in names and table[n].null_count]
    if "status" in names:
        ok = pc.fill_null(pc.equal(table["status"], "ok"), False)
        bad += [n for n in _OK_NEVER_NULL if n in names and table[n].filter(ok).null_count]
        if "runtime_ms" in names:
            runtimes = table["runtime_ms"].filter(ok)
            if pc.any(pc.or_(pc.less_equal(runtimes, 0),
                             pc.invert(pc.is_finite(runtimes)))).as_py():
                bad.append("a finite positive runtime_ms")
    return bad


def file_version(schema: pa.Schema) -> int:
    """The schema version a file was written with (files of the first release carry none)."""
    raw = (schema.metadata or {}).get(_VERSION_KEY)
    if not raw:
        return 1
    try:
        return int(raw)
    except ValueError:
        raise DatasetError(f"a sample file's {_VERSION_KEY.decode()} is {raw[:40]!r}, not a "
                           f"version number; {_DAMAGED_FIX}") from None


_DAMAGED_FIX = (f"restore the file from a backup, or move it into the folder's {DAMAGED}/ "
                "subfolder: the run then goes on without that file's rounds "
                "(docs/reliability.md)")


def _check_file(path: Path) -> None:
    if not stat.S_ISREG(os.lstat(path).st_mode):  # (FileNotFoundError: gone, as below)
        raise DatasetError(f"{path} is not a regular file (a link, a FIFO: no file the farm "
                           f"writes); {_DAMAGED_FIX}")
    try:  # the footer, read once: the schema and the row groups' sizes and statistics
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except FileNotFoundError:
        raise  # not corrupt: gone, as a compaction removes round files
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{path} is corrupt ({e}); {_DAMAGED_FIX}") from None
    version = file_version(schema)
    if version > SCHEMA_VERSION:
        raise DatasetError(f"{path} was written by a newer farm (sample schema version "
                           f"{version}; this farm reads up to {SCHEMA_VERSION}); upgrade "
                           "halide-farm to read this run")
    missing = [name for name in REQUIRED if name not in schema.names]
    if missing:
        raise DatasetError(f"{path} is not a farm sample file (missing columns: "
                           f"{', '.join(missing[:5])}); move it out of the run")
    _check_sizes_and_rounds(path, schema, meta)


MAX_ROW_BYTES = 4 << 20  # a row's featurization, schedule and error: far less, even for
# a pipeline of hundreds of stages; four rows of 100 MB errors (a 27 KB file) once took a
# report 3.8 GB of memory
# A row's text as read: what the farm writes is far shorter (an error's first lines, a log's
# tail); repeated text compresses to nothing, so a file's footer cannot bound it
MAX_TEXT_CHARS = {"error": 16 << 10, "log": 64 << 10, "schedule_source": 1 << 20}


def _check_sizes_and_rounds(path: Path, schema: pa.Schema, meta: pq.FileMetaData) -> None:
    """From the file's footer (`meta`), before any row is read: rows of a sane size, and of
    the rounds its name says (round-NNNNNN.parquet, rounds-A-B.parquet)."""
    size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    if meta.num_rows and size > MAX_ROW_BYTES * meta.num_rows:
        raise DatasetError(f"{path} holds {size / 2**20:.0f} MB in {meta.num_rows} rows, more "
                           f"than rows of the farm's hold; {_DAMAGED_FIX}")
    named = _ROUND.fullmatch(path.name) or _RANGE.fullmatch(path.name)
    if named is None or "round" not in schema.names:
        return
    lo, hi = int(named.group(1)), int(named.groups()[-1])
    column = schema.names.index("round")
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is not None and stats.has_min_max and not (lo <= stats.min <= stats.max
                                                            <= hi):
            raise DatasetError(f"{path} holds rows of rounds {stats.min}-{stats.max}, not of "
                               f"the round(s) {lo}-{hi} its name says; {_DAMAGED_FIX}")


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata({_VERSION_KEY: str(SCHEMA_VERSION).encode()})
    atomic.write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


# A failed row's cause: its status and what in its error says where it failed, as a short
# key that stays the same across rows, runs and hosts (no paths, ids or numbers but an exit
# status), so failures group by it. Per status, the first pattern that matches names it.
_RUN = ((r"\(exit status \d+, (\w+)\)", 1),  # farm.devices.timing.HarnessExit's name
        (r"killed by (SIG\w+)", 1),
        (r"exit(?:ed with)? status (\d+)", "exit-{}"),
        (r"the timing harness (?:stopped|reported)", "output"))
_COMPILE = ((r"^compile skipped", "skipped"),  # farm.execution.scheduler.SKIP_AFTER_TIMEOUTS
            (r"^compile \((\w+)\)", 1),  # farm.build.compiler's steps
            (r"ran out of its .* of CPU", "cpu"),
            (r"cancelled after .* wall-clock", "wall-clock"),
            (r"the compile process died", "compiler-died"))
_CAUSES = {"run_error": _RUN, "compile_error": _COMPILE, "compile_timeout": _COMPILE,
           "crashed": ((r"compile task failed", "compile-task"),
                       (r"compile worker died", "compile-worker"),
                       (r"the compile process was killed", "killed")),
           "device_lost": ((r"Ray's memory monitor", "memory"),
                           (r"adb|device offline|unauthorized|not found", "adb"),
                           (r"no answer within", "no-answer"))}


def cause(status: str, error: str | None) -> str | None:
    """The cause of a failed row (None for ok and duplicate rows): e.g.
    "run_error:halide_error", "compile_error:link", "compile_timeout:cpu"; the bare status
    when nothing in the error says more."""
    if status in ("ok", "duplicate"):
        return None
    for pattern, detail in _CAUSES.get(str(status), ()):
        found = re.search(pattern, error or "", re.M | re.I)
        if found:
            name = found.group(1).lower() if detail == 1 else str(detail).format(
                *found.groups())
            return f"{status}:{name}"
    return str(status)
