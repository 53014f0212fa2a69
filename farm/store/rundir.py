"""A run directory: its layout, its manifest, and the lock that keeps one driver on it.

RUN_DIR/               (devices of several classes: one such folder per class, in
                       RUN_DIR/classes/CLASS/)
  manifest.json        what the run is (benchmark, target, batch size, ...) and each invocation
  samples/             the Parquet sample dataset (farm.store.samples)
  weights/             round-000000.weights (start), round-NNNNNN.weights (after round N),
                       latest.weights, provisional(-NNNNNN).weights, final-*.weights (the
                       final models), best.weights and best.json (why they are the best)
  rounds/              round-NNNNNN.json: timings, beam check and acceptance per round
  training/            the trainer's output per round and candidate, and of the final models
  cache/samples/       the samples as Halide .sample files (a cache, rebuilt when deleted)
  best/                the fastest schedule: .schedule.h, library, header, weights, and
                       runtime.json (the final re-timing); a campaign's: best/NAME/ per
                       pipeline
  generator.py         a copy of a user's generator file (built-in runs name theirs);
                       a campaign's: generators/NAME.py; a C++ generator's or an
                       executable's files: generator/ (generators/NAME/)
  report/              `farm report`'s plots, by default

RunDir owns these paths: code elsewhere asks it for a path instead of spelling one out.
A name in a path (NAME, CLASS) is farm.paths.path_name's: a pipeline named `../x` or
`gen:path=a/b` gets a folder of its own inside the run. RunDir is also the one writer
and reader of each JSON record (farm.store.records); every file it writes is written
atomically and durably (farm.atomic), through no symlink: a link planted as the lock or
as one of its folders is refused.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import secrets
import socket
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from farm import atomic
from farm.atomic import write_json
from farm.errors import BadInput, RunDirError
from farm.model.weights import Weights
from farm.model.weights import write as write_weights
from farm.paths import path_name
from farm.store.best import BestFolders
from farm.store.jsonrecord import read_json
from farm.store.records import (
    BestWeightsRecord,
    Manifest,
    RecordError,
    RetimingRecord,
    RoundRecord,
    RunKind,
)
from farm.store.samples import SampleStore

LOCK_WAIT_S = 2.0  # how long taking a run's lock waits out a reader's look at it (holder())

# What a resumed run may change: the settings of `farm autotune` that its manifest does not
# fix (Manifest.FIXED). The resume refusal (RunDir.check_resumable) lists them, and README.md
# quotes the same list in "Resuming with a setting ...": change both together
# (tests/test_autotune.py checks that they match).
RESUME_MAY_CHANGE = ("--rounds", "--budget", "--train-steps", "--compile-timeout",
                     "--run-timeout", "--isolation", "--pipeline-weight", "the devices",
                     "a campaign's BENCHes")


def resume_may_change() -> str:
    """RESUME_MAY_CHANGE as the refusal and the README say it: "A, B and C"."""
    *most, last = RESUME_MAY_CHANGE
    return f"{', '.join(most)} and {last}"


def _take(lock: TextIO, mode: int, wait_s: float) -> bool:
    """Take the flock `mode` on `lock` within `wait_s` seconds; whether it was taken."""
    end = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)


def _holder_line(lock: TextIO) -> str:
    """The line the lock's holder wrote into it ("pid N on HOST since T")."""
    lock.seek(0)
    return lock.read().strip() or "another process"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return secrets.token_hex(4)


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_file: TextIO | None = None
        self.took_over = ""  # open(): the line of a driver that died holding the lock
        self.best = BestFolders(self)  # best/: published whole, recovered after a crash

    @property
    def holds_lock(self) -> bool:
        """Whether this process drives the run (open() took its lock)."""
        return self._lock_file is not None

    # layout
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def samples(self) -> SampleStore:
        return SampleStore(self.path / "samples")

    def weights_path(self, round_no: int) -> Path:
        """Weights after `round_no` rounds of training (0: the start weights)."""
        return self.path / "weights" / f"round-{round_no:06d}.weights"

    @property
    def latest_weights(self) -> Path:
        return self.path / "weights" / "latest.weights"

    @property
    def provisional_weights(self) -> Path:
        """Weights that won on held-out ranking and await their beam-search check."""
        return self.path / "weights" / "provisional.weights"

    def provisional_used(self, round_no: int) -> Path:
        """The provisional weights whose beam search round `round_no` ran (candidate 1)."""
        return self.path / "weights" / f"provisional-{round_no:06d}.weights"

    @property
    def best_weights(self) -> Path:
        return self.path / "weights" / "best.weights"

    @property
    def best_weights_record(self) -> Path:
        """best.json: which weights best.weights are, and why (write_best_weights)."""
        return self.path / "weights" / "best.json"

    def final_weights(self, name: str) -> Path:
        """A final model's weights (farm.tuning.final_models.FINAL_SETTINGS), e.g.
        final-chain-fast."""
        return self.path / "weights" / f"{name}.weights"

    def final_training_log(self, name: str) -> Path:
        """The trainer's (bounded) output for a final model."""
        return self.path / "training" / f"{name}.log"

    def round_record_path(self, round_no: int) -> Path:
        return self.path / "rounds" / f"round-{round_no:06d}.json"

    def round_part_path(self, round_no: int) -> Path:
        """A committed round's record while its later steps are under way (RoundRecord.steps
        says which are done): what a resumed run goes on from."""
        return self.path / "rounds" / f".round-{round_no:06d}.part.json"

    def training_dir(self, round_no: int) -> Path:
        """The trainer's (bounded) output for each candidate trained after `round_no`."""
        return self.path / "training" / f"round-{round_no:06d}"

    def generator_copy(self, name: str | None = None, python: bool = True) -> Path:
        """A copy of the user's generator the run tunes (none for built-ins): generator.py,
        or for a C++ generator or an executable the folder generator/ with its files; a
        campaign's are generators/NAME.py and generators/NAME/."""
        suffix = ".py" if python else ""
        if name:
            return _named(self.path / "generators", name, suffix)
        return self.path / f"generator{suffix}"

    @property
    def report_dir(self) -> Path:
        """Where `farm report` writes its plots unless told otherwise."""
        return self.path / "report"

    @functools.cached_property
    def sample_files(self):
        """RUN_DIR/cache/samples: the samples as Halide .sample files, a rebuildable cache."""
        from farm.model.retrain import SampleFiles

        return SampleFiles(self.path / "cache" / "samples", root=self.path)

    def best_path(self, pipeline: str = "") -> Path:
        """best/, or best/NAME/ for a campaign's pipeline NAME."""
        return _named(self.path / "best", pipeline) if pipeline else self.path / "best"

    @property
    def best_dir(self) -> Path:
        return self.best_path()

    def retiming_path(self, pipeline: str = "") -> Path:
        """best/runtime.json (best/NAME/runtime.json): the final re-timing (best.publish)."""
        return self.best_path(pipeline) / "runtime.json"

    @property
    def retiming_record_path(self) -> Path:
        return self.retiming_path()

    def best_schedule(self, name: str, pipeline: str = "", library: str | None = None) -> Path:
        """best/NAME.schedule.h: the winner's schedule, named as its library (`library`,
        the re-timing record's NAME.a: the compiled pipeline's C name) when the record names
        one, else as its generator `name`."""
        stem = Path(library).stem if library else path_name(name)
        return self.best_path(pipeline) / f"{stem}.schedule.h"

    def retiming_weights(self, record: RetimingRecord) -> Path:
        """The weights that planned the re-timing's winner: best/NAME.weights (or, in runs
        of the first release, the run's weights file it names)."""
        if record.weights_file:
            return self.path / record.weights_file
        return self.path / "weights" / (record.weights or "")

    # lifecycle
    def open(self) -> None:
        """Create the folder if needed and take its lock (exclusive, released on exit);
        put back what a crash while publishing best/ left aside (best.recover)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for sub in ("samples", "weights", "rounds", "training"):
                atomic.real_dir(self.path / sub, self.path)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT | os.O_APPEND |
                         os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO there hung a resume
                os.close(fd)
                raise RunDirError(f"{self.path / '.lock'} is not a regular file (a FIFO, a "
                                  "device): no file the farm writes; remove it and rerun")
            lock = os.fdopen(fd, "a+")  # held until close()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RunDirError(f"{self.path / '.lock'} is a symbolic link, and the farm "
                                  "writes through none: remove it and rerun") from None
            raise RunDirError(f"--out {self.path} cannot be written ({e.strerror}); choose "
                              "another --out") from None
        if not _take(lock, fcntl.LOCK_EX, LOCK_WAIT_S):  # (a reader's look takes a moment)
            holder = _holder_line(lock)
            lock.close()
            raise RunDirError(f"{self.path} is in use by {holder}; wait for it to finish or "
                              "stop it (a killed driver releases the lock by itself)")
        lock.seek(0)
        stale = lock.read().strip()
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} on {socket.gethostname()} since {now_iso()}\n")
        lock.flush()
        self._lock_file = lock
        self.took_over = stale  # the previous holder's line, if it died holding the lock
        self.best.recover()

    def holder(self) -> str | None:
        """Who is running the run now ("pid N on HOST since T"), or None when nobody is."""
        try:
            fd = os.open(self.path / ".lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                         | os.O_NONBLOCK)  # a FIFO planted there hung `farm report --html`
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return None
            with os.fdopen(fd) as lock:
                if not _take(lock, fcntl.LOCK_SH, 0.0):
                    return _holder_line(lock)
                fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError:
            pass
        return None

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.seek(0)
            self._lock_file.truncate()
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    # records: one writer and one reader each
    def read_manifest(self) -> Manifest | None:
        return self._typed(self.manifest_path, Manifest, "restore it or use a new --out",
                           "farm manifest")

    def write_manifest(self, manifest: Manifest) -> None:
        write_json(self.manifest_path, manifest.to_json())

    def write_round(self, record: RoundRecord) -> None:
        write_json(self.round_record_path(record.round), record.to_json())

    def read_round(self, round_no: int) -> RoundRecord | None:
        """Round `round_no`'s record; None when it has none (e.g. it crashed before)."""
        return self._typed(self.round_record_path(round_no), RoundRecord)

    def write_round_part(self, record: RoundRecord) -> None:
        write_json(self.round_part_path(record.round), record.to_json())

    def read_round_part(self, round_no: int) -> RoundRecord | None:
        """The part record of a round whose later steps a crash interrupted; None when there
        is none, or it is unreadable (a resumed run then redoes every step)."""
        try:
            return self._typed(self.round_part_path(round_no), RoundRecord)
        except RunDirError:
            return None

    def drop_round_part(self, round_no: int) -> None:
        self.round_part_path(round_no).unlink(missing_ok=True)

    def write_best_weights(self, weights: Weights, record: BestWeightsRecord) -> None:
        """best.weights and best.json, which says which weights they are and why."""
        write_weights(weights, self.best_weights)
        write_json(self.best_weights_record, record.to_json())

    def read_best_weights_record(self) -> BestWeightsRecord | None:
        return self._typed(self.best_weights_record, BestWeightsRecord)

    def read_retiming(self, pipeline: str = "") -> RetimingRecord | None:
        """best/runtime.json (best/NAME/runtime.json); None before the first final
        re-timing."""
        self.best.recover_reading()
        return self._typed(self.retiming_path(pipeline), RetimingRecord)

    def _typed(self, path: Path, kind, fix: str = "restore it or move it out of the run",
               what: str = ""):
        data = self._read_record(path, fix)
        if data is None:
            return None
        try:
            return kind.from_json(data)  # checked: farm.store.checks
        except RecordError as e:
            raise RunDirError(f"{path} is not a {what or 'farm ' + kind.__name__} "
                              f"({e.field or 'the file'} {e.problem}); {fix}") from None

    @staticmethod
    def _read_record(path: Path, fix: str):
        try:
            return read_json(path)
        except FileNotFoundError:
            return None
        except RecursionError:  # JSON nested thousands deep
            raise RunDirError(f"{path} is unreadable (nested too deep); {fix}") from None
        except (OSError, ValueError) as e:
            raise RunDirError(f"{path} is unreadable ({e}); {fix}") from None

    def check_resumable(self, wanted: Manifest) -> Manifest | None:
        """The run's manifest (None for a new run) if `wanted` may start or resume it; a
        RunDirError saying why not. Reads only: a refused command leaves no trace."""
        self.check_out()
        existing = self.read_manifest()
        if existing is None:
            if self.samples.committed_rounds():
                raise RunDirError(f"{self.path} has samples but no manifest.json; it is not "
                                  "a run this farm can resume")
            return None
        if existing.kind != wanted.kind:
            raise RunDirError(f"{self.path} holds {existing.kind.describe()}, not "
                              f"{wanted.kind.describe()}: resume it with the command that "
                              "began it, or use a new --out")
        for key in Manifest.FIXED:
            old, new = getattr(existing, key), getattr(wanted, key)
            if old != new:
                why = Manifest.CHANGED.get(key, "")
                option = _OPTIONS.get(key, key)
                if key == "batch_size" and wanted.kind is RunKind.PRETRAINING:
                    option = "--per-pipeline"
                raise RunDirError(
                    f"{self.path} holds a run with {option} {_short(old)}, not {_short(new)}"
                    f"{why}; resume it with the same settings (only {resume_may_change()} "
                    "may change) or use a new --out")
        return existing

    def check_out(self) -> None:
        """Refuse, making nothing, an --out that cannot hold a run: a file, a folder that
        cannot be made or written, another command's output (Parquet files at its top, no
        manifest.json: `farm bench`'s, `farm evaluate`'s)."""
        atomic.check_writable_dir(self.path)
        if not self.path.is_dir() or is_run(self.path):
            return
        other = sorted(p.name for p in self.path.glob("*.parquet"))
        if other:
            raise RunDirError(f"--out {self.path} holds {', '.join(other[:3])} and no "
                              "manifest.json: another command's output, not a `farm "
                              "autotune` run; choose another --out")

    def begin(self, wanted: Manifest, invocation: dict) -> Manifest:
        """Start a new run, or resume one whose fixed settings match `wanted`."""
        manifest = self.check_resumable(wanted) or wanted
        manifest.invocations.append(invocation)
        self.write_manifest(manifest)
        return manifest


# a manifest's field as the user gives it on the command line
_OPTIONS = {"batch_size": "--batch-size", "parallelism": "--parallelism", "target": "--target",
            "generator": "generator", "benchmark_sha256": "generator source sha256",
            "start_weights_sha256": "start weights (--weights)"}


def is_run(path: str | os.PathLike) -> bool:
    """Whether `path` is a `farm autotune` run directory (of one device class, or a folder
    of runs per class)."""
    return RunDir(path).manifest_path.exists() or bool(class_dirs(path))


def refuse_a_run(out: str | os.PathLike, command: str) -> None:
    """A BadInput when `farm COMMAND --out OUT` would write its output into a run
    directory."""
    if is_run(out):
        raise BadInput(f"--out {out} is a `farm autotune` run directory; give `farm "
                       f"{command}` a folder of its own with --out")


def class_dir(root: Path, device_class: str) -> Path:
    """A device class's run directory in a run of several classes: ROOT/classes/CLASS/."""
    found = _named(root / "classes", device_class)
    for p in (found.parent, found):
        _not_a_link(p)
    return found


def class_dirs(root: str | os.PathLike) -> list[Path]:
    """The per-class run directories under `root` (none for a run of one class); a
    RunDirError for one that is a link (what the farm writes or reports there would land
    outside the run)."""
    folder = Path(root) / "classes"
    _not_a_link(folder)
    found = list(folder.iterdir()) if folder.is_dir() else []
    for p in found:
        _not_a_link(p)
    return sorted(p for p in found if p.is_dir())


def _not_a_link(path: Path) -> None:
    if path.is_symlink():
        raise RunDirError(f"{path} is a symbolic link, and a run's class folders are its "
                          "own: remove it (or replace it with the folder) and rerun")


def invocation_record(versions: dict, devices: list[dict]) -> dict:
    return {"argv": list(sys.argv), "cwd": os.getcwd(), "at": now_iso(),
            "host": socket.gethostname(), "versions": versions, "devices": devices,
            "started": time.time()}


def _named(folder: Path, name: str, suffix: str = "") -> Path:
    """FOLDER/NAME+SUFFIX, NAME as farm.paths.path_name makes it; a run written before
    path_name keeps the file or folder it has under the name itself (one name inside
    FOLDER, no link)."""
    new = folder / (path_name(name) + suffix)
    legacy = name + suffix
    if new.name == legacy or "/" in name or "\0" in name or legacy in (".", "..") or \
            os.path.lexists(new):
        return new
    old = folder / legacy
    return old if old.exists() and not old.is_symlink() else new


def _short(value) -> str:
    text = str(value)
    return text[:16] if len(text) == 64 else text
