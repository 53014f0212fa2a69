"""What an invocation may do to a run directory, refused before anything is written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from farm.devices.base import DeviceInfo
from farm.devices.classes import class_name
from farm.errors import BadInput, RunDirError
from farm.machine import limits
from farm.model import weights
from farm.search.allocation import EQUAL, GAIN
from farm.store.records import Manifest
from farm.store.registry import class_start
from farm.store.rundir import RunDir, class_dir, class_dirs, new_run_id, now_iso
from farm.tuning.settings import TuneSettings
from farm.tuning.source import PipelineSource


def by_class(devices: list[DeviceInfo]) -> dict[str, list[DeviceInfo]]:
    """The devices by device class (farm.devices.classes), in their order."""
    out: dict[str, list[DeviceInfo]] = {}
    for d in devices:
        out.setdefault(str(d.device_class), []).append(d)
    return out


def validate_root(root: Path, settings: TuneSettings, classes: dict[str, list[DeviceInfo]],
                  source: PipelineSource) -> None:
    """Refuse what this invocation cannot do to the run in `root` (with devices of several
    classes, to each class's run). `classes`: the devices by class, or none when they are
    not known yet (before Ray starts, with an address)."""
    check_numbers(settings)
    RunDir(root).check_out()
    if len(classes) <= 1 and not class_dirs(root):
        validate(RunDir(root), settings, next(iter(classes.values()), []), source)
        return
    if RunDir(root).manifest_path.exists():
        raise RunDirError(
            f"{root} holds the run of one device class, and the devices are of "
            f"{len(classes)} ({'; '.join(sorted(classes))}): continue it on its "
            "class's devices (--device), or tune several classes in a new --out")
    for name, members in sorted(classes.items()):
        validate(RunDir(class_dir(root, name)), settings, members, source)


def check_numbers(s: TuneSettings) -> None:
    """Every number of the settings within farm.limits' bounds (a library caller skips the
    command line's checks): refused before Ray starts."""
    for name, value, option in (
            ("rounds", s.rounds, "--rounds"), ("batch_size", s.batch_size, "--batch-size"),
            ("parallelism", s.parallelism, "--parallelism"),
            ("timeout_s", s.compile_timeout_s, "--compile-timeout"),
            ("timeout_s", s.timing.timeout_s, "--run-timeout"),
            ("train_steps", s.train_steps, "--train-steps"), ("retimes", s.retimes, "--retimes"),
            ("budget_s", s.budget_s or 1, "--budget"), ("screen", s.screen, "--screen")):
        if not value > 0:
            raise BadInput(f"{option} {value}: give a positive number")
        limits.check(name, value, option)


def with_start_weights(run: RunDir, s: TuneSettings, devices: list[DeviceInfo]
                       ) -> tuple[TuneSettings, str]:
    """The settings with the run's start weights when no --weights was given
    (s.from_registry), and a line that says where they come from ("" when unchanged): a
    resumed run's own (weights/round-000000.weights), a new run's class's current model
    (farm.store.registry), else Halide's."""
    if not s.from_registry:
        return s, ""
    if run.read_manifest() is not None:
        own = run.weights_path(0)
        if not own.exists():  # (written before its first round: a run that never began)
            return s, ""
        return replace(s, start_weights=weights.load(own)), (
            f"start weights: those the run began with ({own})")
    if not devices:  # (their class is not known yet: before Ray starts, with an address)
        return s, ""
    start, note = class_start(devices[0].device_class.name)
    return replace(s, start_weights=start), note


def with_allocation(run: RunDir, s: TuneSettings, source: PipelineSource) -> TuneSettings:
    """The settings with the run's allocation: a resumed run's recorded one when none is
    given (another is refused), else `gain` for a new campaign."""
    existing = run.read_manifest()
    if existing is None:  # (drawn pipelines come once each: no gain to follow)
        campaign = len(s.benchmarks) > 1 and not source.draws
        return s if s.allocation else replace(s, allocation=GAIN if campaign else EQUAL)
    if s.allocation and s.allocation != existing.allocation:
        raise RunDirError(f"{run.path} allocates its rounds by {existing.allocation}, not "
                          f"{s.allocation}: resume it without --allocation (or with "
                          f"{existing.allocation}), or use a new --out")
    return replace(s, allocation=existing.allocation)


def with_training_runs(run: RunDir, s: TuneSettings) -> TuneSettings:
    """The settings with the other runs the model trains on: a resumed run's recorded
    ones when none are given; others than those are refused."""
    existing = run.read_manifest()
    if existing is None:
        return s
    recorded = tuple(existing.also_train_on)
    if not s.also_train_on:
        return replace(s, also_train_on=recorded)
    if tuple(s.also_train_on) != recorded:
        raise RunDirError(f"{run.path} trains on " + (
            f"its own rows and those of {', '.join(recorded)}" if recorded else
            "its own rows only") + ": resume it without --also-train-on (or with the same "
            "runs), or use a new --out")
    return s


def _check_training_runs(s: TuneSettings, devices: list[DeviceInfo],
                         existing: Manifest | None) -> None:
    """Each --also-train-on is a run directory of this run's device class."""
    mine = devices[0].device_class.name if devices else (
        class_name(existing.device_class) if existing and existing.device_class else None)
    for other in s.also_train_on:
        m = RunDir(other).read_manifest()
        if m is None:
            raise RunDirError(f"--also-train-on {other} is not a run directory of one device "
                              "class (no manifest.json; for a run over several classes give "
                              "its classes/CLASS/ folder)")
        theirs = class_name(m.device_class or "")
        if mine and theirs != mine:
            raise BadInput(f"--also-train-on {other} holds samples timed on device class "
                           f"{theirs or 'unknown'}, not {mine}: a class's model trains only "
                           "on its own devices' timings")
        RunDir(other).samples.read(["round"])  # a damaged file: refused now, not after round 1


def resolved(run: RunDir, s: TuneSettings, devices: list[DeviceInfo],
             source: PipelineSource) -> tuple[TuneSettings, str]:
    """The settings this invocation runs with: its start weights, training runs and
    allocation as given, else as the run recorded them (or their new-run defaults); and a
    line that says where the start weights come from ("" when given)."""
    s, note = with_start_weights(run, s, devices)
    s = with_allocation(run, with_training_runs(run, s), source)
    return s, "\n".join(n for n in (note, training_runs_note(s)) if n)


def training_runs_note(s: TuneSettings) -> str:
    """What --also-train-on adds to the run's own rows, said before round 1: which runs,
    how many measured rows of how many pipelines each ("" with none)."""
    parts = []
    for other in s.also_train_on:
        rows = RunDir(other).samples.read(["status", "benchmark"])
        ok = [b for st, b in zip(rows["status"].to_pylist(), rows["benchmark"].to_pylist(),
                                 strict=True) if st == "ok"]
        parts.append(f"{len(ok):,} measured rows of {len(set(ok))} pipeline(s) of {other}")
    return ("the model trains on the run's own rows and on " + "; ".join(parts)) \
        if parts else ""


def validate(run: RunDir, settings: TuneSettings, devices: list[DeviceInfo],
             source: PipelineSource) -> Manifest | None:
    """Refuse, before anything is written, what this invocation cannot do to the run:
    devices of another class, settings that would mix samples, a benchmark named twice
    or whose generator changed. Gives the run's manifest (None for a new run)."""
    settings = resolved(run, settings, devices, source)[0]
    names = [b.label for b in settings.benchmarks]
    if len(set(names)) != len(names):
        raise BadInput(f"a benchmark is named twice: {', '.join(names)}")
    existing = run.read_manifest()
    _check_class(run, devices, existing)
    if existing is not None:  # before the manifest's settings are compared
        source.check_resume(run, existing)
    existing = run.check_resumable(wanted_manifest(settings, existing, source))
    if existing is not None:
        run.samples.read(["round"])  # its files checked before Ray starts, not after
    _check_training_runs(settings, devices, existing)
    for b in settings.benchmarks:
        rec = existing.pipeline(b.label) if existing else None
        if rec is not None and rec.sha256 != b.sha256:
            raise RunDirError(f"{b.ref} changed since {run.path} tuned it (its source's "
                              "sha256 differs): restore it, or tune it under another name "
                              "or in a new --out")
    return existing


def _check_class(run: RunDir, devices: list[DeviceInfo], existing: Manifest | None) -> None:
    """One device class per run directory: its timings train one model."""
    classes = sorted({str(d.device_class) for d in devices})
    if len(classes) > 1:
        raise BadInput(f"the devices are of {len(classes)} classes ({'; '.join(classes)}) "
                       "and this run trains one class's model: choose one class's devices "
                       "with --device (see `farm devices`)")
    recorded = existing.device_class if existing else None
    if recorded is not None and classes and recorded != classes[0]:
        raise RunDirError(f"{run.path} holds weights of device class {recorded}, not "
                          f"{classes[0]}: continue it on devices of its class (--device) "
                          "or start a new --out")


def wanted_manifest(s: TuneSettings, existing: Manifest | None,
                    source: PipelineSource) -> Manifest:
    """What the run is: what its source says (farm.tuning.source), with the settings."""
    who = source.identity(s, existing)
    return Manifest(run_id=new_run_id(), benchmark=who.benchmark, generator=who.generator,
                    benchmark_sha256=who.sha256,
                    target=s.target.compile, schedule_target=s.target.schedule,
                    batch_size=s.batch_size, parallelism=s.parallelism,
                    start_weights_sha256=s.start_weights.sha256, created_at=now_iso(),
                    campaign=who.campaign, also_train_on=list(s.also_train_on),
                    allocation=s.allocation or EQUAL)
