"""`farm models promote`: a run's handed-over weights become its device class's current
model (farm.store.registry), with where they came from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from farm.candidate import OK
from farm.devices.classes import class_name
from farm.errors import BadInput, RunDirError
from farm.model import weights as weights_module
from farm.store.registry import Model, ModelRecord, Registry, now_iso
from farm.store.rundir import RunDir, class_dirs


def run_of_class(run_dir: str | Path, device_class: str | None) -> RunDir:
    """The run directory of RUN_DIR for `device_class`: RUN_DIR itself, or one of the class
    folders a run over several classes keeps (classes/CLASS/)."""
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    if manifest is not None:
        recorded = class_name(manifest.device_class or "")
        if device_class and recorded and device_class != recorded:
            raise BadInput(f"{run.path} holds weights trained on device class {recorded}, "
                           f"not {device_class}: a class's model must be trained on its own "
                           "devices' timings (promote a run of that class)")
        return run
    found = {}
    for folder in class_dirs(run.path):
        m = RunDir(folder).read_manifest()
        if m is not None:
            found[class_name(m.device_class or folder.name)] = folder
    if not found:
        raise RunDirError(f"{run.path} is not a run directory (no manifest.json)")
    if device_class is None:
        raise BadInput(f"{run.path} holds the models of {len(found)} classes "
                       f"({', '.join(sorted(found))}): say which with --class")
    if device_class not in found:
        raise BadInput(f"{run.path} holds no model of class {device_class}; its classes: "
                       f"{', '.join(sorted(found))}")
    return RunDir(found[device_class])


def _evaluation_rows(run: RunDir) -> list[dict] | None:
    """The rows of `farm evaluate RUN_DIR` (its default --out): [] when it was not run,
    None when its file cannot be read."""
    rows_path = run.path / "evaluate" / "evaluate.parquet"
    if not rows_path.is_file():
        return []
    import pyarrow.parquet as pq

    try:
        return pq.read_table(rows_path).to_pylist()
    except (OSError, ValueError):  # not a Parquet file
        return None


def _evaluation(run: RunDir) -> tuple[list[str], list[dict]]:
    """The verdicts of `farm evaluate RUN_DIR` (its default --out), when it was run, and
    its rows."""
    from farm.workflows.evaluate import summary

    rows = _evaluation_rows(run)
    try:
        if rows is not None:
            return [f"farm evaluate: {line}" for line in summary(rows)], rows
    except (ValueError, KeyError, TypeError):  # not as evaluate writes it
        pass
    return [f"farm evaluate: {run.path / 'evaluate' / 'evaluate.parquet'} could not be "
            "read"], []


CONFIRM_ON = 4  # unseen corpus pipelines a promotion without evidence is judged on


def to_confirm(run_dir: str | Path, device_class: str | None = None,
               on: Sequence[str] = ()) -> tuple[Path, list[str]] | None:
    """What a promotion of RUN_DIR must be judged on first, when it has no evidence on
    pipelines its model never saw: (its run directory, the pipelines: `on`, else
    CONFIRM_ON corpus pipelines of other families); None when it has (its `farm evaluate
    --on` rows of the handed-over weights, or a `farm models train` output's evidence)."""
    if (Path(run_dir) / TRAINED_RECORD).is_file() and \
            not (Path(run_dir) / "manifest.json").exists():
        return None
    run = run_of_class(run_dir, device_class)
    if not run.best_weights.exists():
        return None  # promote() says why it cannot
    sha256 = weights_module.load(run.best_weights).sha256
    manifest = run.read_manifest()
    if manifest is not None and manifest.is_start_weights(sha256):
        return None  # nothing trained to judge: promote() refuses it
    if any(r.get("weights_sha256") == sha256 for r in _evaluation_rows(run) or []):
        return None
    from farm.workflows.evaluation import unseen_corpus

    names = list(on) or unseen_corpus(run, CONFIRM_ON)
    return (run.path, names) if names else None


def _slower_on(rows: list[dict], sha256: str) -> list[str]:
    """The pipelines on which rows of these weights (`farm evaluate --on`: the handed-over
    weights on pipelines the run never trained on) are significantly slower."""
    from farm.stats.verdict import SLOWER

    return sorted({str(r.get("benchmark")) for r in rows
                   if r.get("weights_sha256") == sha256 and r.get("verdict") == SLOWER})


def _refuse_slower(what: str, slower: list[str], force: bool) -> None:
    if slower and not force:
        raise BadInput(f"{what} is significantly slower than the baseline on "
                       f"{', '.join(slower)}, pipelines it never saw: as the class's model "
                       "it would make such pipelines start slower; --force promotes it anyway")


def promote(run_dir: str | Path, device_class: str | None = None,
            registry: Registry | None = None, force: bool = False) -> Model:
    """Make RUN_DIR's handed-over weights (weights/best.weights) the current model of its
    device class; `device_class`, when given, must be the run's. RUN_DIR may be the --out
    of `farm models train` too. A model whose evidence shows it significantly slower on a
    pipeline it never saw is refused unless `force`."""
    if (Path(run_dir) / TRAINED_RECORD).is_file() and \
            not (Path(run_dir) / "manifest.json").exists():
        return _promote_trained(Path(run_dir), device_class, registry, force)
    run = run_of_class(run_dir, device_class)
    manifest = run.read_manifest()
    assert manifest is not None  # (run_of_class found it)
    name = class_name(manifest.device_class or "")
    if not name:
        raise BadInput(f"{run.path} records no device class (a run of an older farm): its "
                       "weights cannot be told to fit a class")
    if not run.best_weights.exists():
        raise BadInput(f"{run.path} has not handed weights over yet (no "
                       f"{run.best_weights.relative_to(run.path)}): let its last command "
                       "finish, or rerun it to finish the run")
    w = weights_module.load(run.best_weights)  # a usable weights file, or refused
    handed = run.read_best_weights_record()
    if handed is not None and handed.weights_sha256 and handed.weights_sha256 != w.sha256:
        raise BadInput(f"{run.best_weights} is not the file {run.best_weights_record.name} "
                       f"records (sha256 {w.sha256[:16]}, recorded "
                       f"{handed.weights_sha256[:16]}): the run's hand-over was changed; "
                       "rerun its command to hand over again")
    if manifest.is_start_weights(w.sha256):
        why = f" ({handed.reason})" if handed and handed.reason else ""
        raise BadInput(f"{run.path} handed over its start weights{why}: nothing it trained "
                       "passed its checks, so there is no new model to promote")
    rows = run.samples.read(["status", "round", "benchmark"]).to_pylist()
    kind = manifest.kind.value  # the registry's word for where the model came from
    # what the run's own records say, marked as its claim: the registry did not re-time it
    evaluated, evaluation_rows = _evaluation(run)
    _refuse_slower(f"{run.best_weights}", _slower_on(evaluation_rows, w.sha256), force)
    verdicts = ([f"the run's claim: {handed.reason}"] if handed and handed.reason else []) \
        + evaluated
    record = ModelRecord(
        device_class=name, sha256=w.sha256, source=str(run.path.resolve()),
        promoted_at=now_iso(), run_id=manifest.run_id, kind=kind,
        pipelines=[p.name for p in manifest.pipelines] or [manifest.generator],
        rounds=len({r["round"] for r in rows}),
        samples=sum(r["status"] == OK for r in rows), verdicts=verdicts)
    return (registry or Registry()).promote(w, record)


TRAINED_RECORD = "evidence.json"  # what `farm models train` leaves in its --out


def _promote_trained(out: Path, device_class: str | None, registry: Registry | None,
                     force: bool) -> Model:
    """Make the model `farm models train --out OUT` registered its class's current one."""
    from dataclasses import replace

    from farm.store.registry import read_record

    record = read_record(out / TRAINED_RECORD, ModelRecord, key="record")
    if record is None:
        raise BadInput(f"{out / TRAINED_RECORD} is not the record `farm models train` "
                       "writes: train again into a new --out")
    if device_class and record.device_class != device_class:
        raise BadInput(f"{out} holds a model of class {record.device_class}, not "
                       f"{device_class}")
    w = weights_module.load(out / "weights" / "best.weights")
    if w.sha256 != record.sha256:
        raise BadInput(f"{out / 'weights' / 'best.weights'} is not the model {TRAINED_RECORD} "
                       f"records (sha256 {w.sha256[:16]}, recorded {record.sha256[:16]})")
    evidence = record.evidence or {}
    slower = [str(p) for p in evidence.get("slower") or []]
    _refuse_slower(f"the model of {out}", slower, force)
    return (registry or Registry()).promote(w, replace(record, promoted_at=now_iso()))
