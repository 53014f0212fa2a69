"""A run directory: its layout, its manifest, and the lock that keeps one driver on it.

RUN_DIR/
  manifest.json        what the run is (benchmark, target, batch size, ...) and each invocation
  samples/             the Parquet sample dataset (farm.store)
  weights/             round-000000.weights (start), round-NNNNNN.weights (after round N),
                       latest.weights, best.weights
  rounds/              round-NNNNNN.json: timings, trainer loss and ordering rate per round
  training/            the trainer's output per round and candidate
  cache/samples/       the samples as Halide .sample files (a cache, rebuilt when deleted)
  best/                the fastest schedule: .schedule.h, library, header, runtime.json
  generator.py         a copy of a user's generator file (built-in runs name theirs)
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import secrets
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from farm.errors import RunDirError
from farm.store import SampleStore

MANIFEST_VERSION = 1


@dataclass
class Manifest:
    run_id: str
    benchmark: str  # as given: a built-in name or path.py:name
    generator: str  # the generator's name
    benchmark_sha256: str
    target: str
    schedule_target: str
    batch_size: int
    parallelism: int
    start_weights_sha256: str
    created_at: str
    pipeline_id: int | None = None
    version: int = MANIFEST_VERSION
    invocations: list[dict] = field(default_factory=list)

    # Settings that decide which samples belong together; --rounds and --budget may change.
    FIXED = ("generator", "benchmark_sha256", "target", "batch_size", "parallelism",
             "start_weights_sha256")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return secrets.token_hex(4)


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_file = None

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
        """best.json: which weights best.weights are, and why (written by farm.finalize)."""
        return self.path / "weights" / "best.json"

    def round_record_path(self, round_no: int) -> Path:
        return self.path / "rounds" / f"round-{round_no:06d}.json"

    def training_dir(self, round_no: int) -> Path:
        """The trainer's (bounded) output for each candidate trained after `round_no`."""
        return self.path / "training" / f"round-{round_no:06d}"

    @functools.cached_property
    def sample_files(self):
        """RUN_DIR/cache/samples: the samples as Halide .sample files, a rebuildable cache."""
        from farm.costmodel import SampleFiles

        return SampleFiles(self.path / "cache" / "samples")

    @property
    def best_dir(self) -> Path:
        return self.path / "best"

    # lifecycle
    def open(self) -> None:
        """Create the folder if needed and take its lock (exclusive, released on exit)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for sub in ("samples", "weights", "rounds", "training"):
                (self.path / sub).mkdir(exist_ok=True)
            lock = open(self.path / ".lock", "a+")  # noqa: SIM115 - held until close()
        except OSError as e:
            raise RunDirError(f"--out {self.path} cannot be written ({e.strerror}); choose "
                              "another --out") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise RunDirError(f"{self.path} is in use by {holder}; wait for it to finish or "
                              "stop it (a killed driver releases the lock by itself)") from None
        lock.seek(0)
        stale = lock.read().strip()
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} on {socket.gethostname()} since {now_iso()}\n")
        lock.flush()
        self._lock_file = lock
        self.took_over = stale  # the previous holder's line, if it died holding the lock

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

    # manifest
    def read_manifest(self) -> Manifest | None:
        try:
            data = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise RunDirError(f"{self.manifest_path} is unreadable ({e}); restore it or use "
                              "a new --out") from None
        try:
            return Manifest(**data)
        except TypeError as e:
            raise RunDirError(f"{self.manifest_path} is not a farm manifest ({e})") from None

    def write_manifest(self, manifest: Manifest) -> None:
        write_json(self.manifest_path, asdict(manifest))

    def begin(self, wanted: Manifest, invocation: dict) -> Manifest:
        """Start a new run, or resume one whose fixed settings match `wanted`."""
        existing = self.read_manifest()
        if existing is None:
            if self.samples.committed_rounds():
                raise RunDirError(f"{self.path} has samples but no manifest.json; it is not "
                                  "a run this farm can resume")
            manifest = wanted
        else:
            for key in Manifest.FIXED:
                old, new = getattr(existing, key), getattr(wanted, key)
                if old != new:
                    raise RunDirError(
                        f"{self.path} holds a run with {key} {_short(old)}, not {_short(new)}; "
                        "resume it with the same settings (only --rounds and --budget may "
                        "change) or use a new --out")
            manifest = existing
        manifest.invocations.append(invocation)
        self.write_manifest(manifest)
        return manifest


def invocation_record(versions: dict, devices: list[dict]) -> dict:
    return {"argv": list(sys.argv), "cwd": os.getcwd(), "at": now_iso(),
            "host": socket.gethostname(), "versions": versions, "devices": devices,
            "started": time.time()}


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} is unreadable ({e})") from None


def _short(value) -> str:
    text = str(value)
    return text[:16] if len(text) == 64 else text
