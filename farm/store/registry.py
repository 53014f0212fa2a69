"""The model registry: per device class, the current model and where every model came from.

A folder that may sit on a shared file system (FARM_MODELS_DIR; by default the data
folder $XDG_DATA_HOME/halide-farm/models, else ~/.local/share/halide-farm/models: a
team's models are data, not a cache to be cleared):

  CLASS/models/SHA16/model.weights   the weights, as promoted
  CLASS/models/SHA16/model.json      ModelRecord: the run it came from, its rounds,
                                     samples and verdicts, when it was promoted
  CLASS/current.json                 CurrentRecord: which model is the class's current one
  CLASS/promotions.log               one JSON line per promotion (who, when, what)

CLASS is the class's name as `farm devices` prints it (farm.devices.classes), through
farm.paths.path_name. Every file is written to a temporary name and renamed into place,
so a reader sees the old current model or the new one, never half of either; two
promotions at once each land whole, and the later rename decides which is current.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from farm import atomic
from farm.errors import MissingPrerequisite
from farm.model import weights as weights_module
from farm.model.weights import Weights
from farm.paths import path_name, user_dir
from farm.store.checks import COUNT, TEXT, RecordError
from farm.store.jsonrecord import JsonRecord, read_json


@dataclass
class ModelRecord(JsonRecord):
    """A promoted model: where it came from."""

    device_class: str
    sha256: str
    source: str  # the run directory it was promoted from (absolute), or the file
    promoted_at: str  # ISO 8601, UTC
    run_id: str = ""
    kind: str = ""  # where the model came from: a RunKind's value, or "class-model"
    pipelines: list[str] = field(default_factory=list)
    rounds: int = 0
    samples: int = 0  # rows measured ok
    verdicts: list[str] = field(default_factory=list)  # one line each, as the run judged it
    extra: dict[str, Any] = field(default_factory=dict)

    CHECKS: ClassVar = {"device_class": TEXT, "sha256": TEXT, "source": TEXT,
                        "promoted_at": TEXT, "run_id": TEXT, "kind": TEXT, "rounds": COUNT,
                        "samples": COUNT}

    @property
    def evidence(self) -> dict | None:
        """How the model did on pipelines it never saw, as `farm models train` judged it
        (farm.workflows.class_model.Evidence.to_json); None when nothing was recorded."""
        found = self.extra.get("evidence") if isinstance(self.extra, dict) else None
        return found if isinstance(found, dict) else None

    def describe(self) -> str:
        what = f"{self.kind} " if self.kind else ""
        return (f"{what}{self.source}" + (f" ({self.rounds} rounds, {self.samples} samples)"
                                          if self.rounds else "")
                + f", promoted {self.promoted_at[:19].replace('T', ' ')} UTC")


@dataclass
class CurrentRecord(JsonRecord):
    sha256: str
    promoted_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    CHECKS: ClassVar = {"sha256": TEXT, "promoted_at": TEXT}


@dataclass(frozen=True)
class Model:
    record: ModelRecord
    weights_path: Path
    current: bool = False

    def load(self) -> Weights:
        w = weights_module.load(self.weights_path)
        if w.sha256 != self.record.sha256:
            raise MissingPrerequisite(
                f"the registry's model {self.weights_path} is not the weights it promoted "
                f"(sha256 {w.sha256[:16]}, recorded {self.record.sha256[:16]}): promote it "
                "again (farm models promote RUN_DIR)", cause="model-registry")
        return w


def models_dir() -> Path:
    return user_dir("FARM_MODELS_DIR", "XDG_DATA_HOME", ".local/share", "models")


class Registry:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else models_dir()

    def _class_dir(self, device_class: str) -> Path:
        return self.root / path_name(device_class)

    def classes(self) -> list[str]:
        """The classes that have a model, by name."""
        if not self.root.is_dir():
            return []
        found = set()
        for folder in self.root.iterdir():
            for m in self._read_models(folder):
                found.add(m.record.device_class)
        return sorted(found)

    def models(self, device_class: str) -> list[Model]:
        """The class's models, oldest promotion first; the current one marked."""
        return self._read_models(self._class_dir(device_class), device_class)

    def current(self, device_class: str) -> Model | None:
        return next((m for m in self.models(device_class) if m.current), None)

    def promote(self, weights: Weights, record: ModelRecord) -> Model:
        """Make `weights` the current model of `record.device_class`: complete, with its
        line in the class's promotions.log, or not made at all. The audit line is written
        before current.json switches (a log that cannot be written stops the promotion);
        no folder is made through a link (a class folder that is one is refused first)."""
        return self.register(weights, record, current=True)

    def register(self, weights: Weights, record: ModelRecord, current: bool) -> Model:
        """Add `weights` to the class's models, with its audit line; the class's current
        model too when `current` (else it stays as it was: see promote)."""
        folder = self._class_dir(record.device_class)
        model_dir = folder / "models" / weights.sha256[:16]
        made = not model_dir.exists()
        try:
            atomic.real_dir(model_dir, self.root)  # refuses a link on the way, makes none
            weights_module.write(weights, model_dir / "model.weights")
            atomic.write_json(model_dir / "model.json", record.to_json())
            line = json.dumps({"at": record.promoted_at, "sha256": weights.sha256,
                               "source": record.source, "by": _user(),
                               **({} if current else {"current": False})}) + "\n"
            fd = os.open(folder / "promotions.log",
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "a") as f:
                f.write(line)
            if current:
                atomic.write_json(folder / "current.json", CurrentRecord(
                    weights.sha256, record.promoted_at).to_json())
        except OSError as e:
            if made:  # not made at all: no model left behind that no log line names
                shutil.rmtree(model_dir, ignore_errors=True)
            raise MissingPrerequisite(
                f"the model registry {self.root} cannot be written ({e.strerror}): fix its "
                "permissions, or set FARM_MODELS_DIR to a folder you can write",
                cause="model-registry") from None
        return Model(record, model_dir / "model.weights", current=current)

    def _read_models(self, folder: Path, device_class: str | None = None) -> list[Model]:
        current = _read(folder / "current.json", CurrentRecord)
        out = []
        models = folder / "models"
        if not models.is_dir():
            return []
        for model_dir in sorted(models.iterdir()):
            record = _read(model_dir / "model.json", ModelRecord)
            if record is None or (device_class is not None
                                  and record.device_class != device_class):
                continue
            out.append(Model(record, model_dir / "model.weights",
                             current=current is not None and current.sha256 == record.sha256))
        return sorted(out, key=lambda m: m.record.promoted_at)


def class_start(device_class: str, registry: Registry | None = None
                ) -> tuple[Weights, str]:
    """A new run's start weights when no --weights is given: the current model of
    `device_class`, else Halide's baseline weights; and the line that says which."""
    model = (registry or Registry()).current(device_class)
    if model is None:
        return weights_module.baseline(), (
            f"start weights: Halide's baseline weights (class {device_class} has no current "
            "model; `farm models promote RUN_DIR` makes one)")
    return model.load(), (f"start weights: the current model of class {device_class}, "
                          f"{model.record.sha256[:16]}, {model.record.describe()} "
                          f"(--weights {weights_module.BASELINE} for Halide's)")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_record(path: Path, cls, key: str | None = None):
    """The record at `path` (under `key` of its JSON object, when given), or None for one
    that is not a farm record."""
    try:
        data = read_json(path, follow=False)
        if key is not None:
            data = data.get(key) if isinstance(data, dict) else None
        return cls.from_json(data)
    except (OSError, ValueError, RecursionError, RecordError, AttributeError, TypeError):
        return None


def _read(path: Path, cls):
    """The record at `path`, or None for one that is not a farm record: a shared folder's
    bad file (a link, a FIFO, JSON nested too deep) must stall nobody's command."""
    return read_record(path, cls)


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
