"""`farm evaluate`: does a campaign's cost model transfer to a pipeline it has not seen?

A campaign tunes several pipelines of one device class into ONE cost model. Timing that
model on the campaign's own pipelines says how well it fits what it was trained on, not
what it does for a new pipeline. So each pipeline is timed with two models, both trained
the same way from the run's start weights:

- POOLED: trained on every pipeline's samples, the held-out one included;
- LEAVE-ONE-OUT: trained on the samples of every other group only. A group is one
  pipeline, or near twins left out together (catalog.TWINS, or --together): a model that
  has seen conv3x3a32 has as good as seen conv3x3a16.

Leave-one-out / baseline is what a new pipeline of the class can expect from the model;
pooled / baseline is what the campaign's own pipelines get, and the gap between the two is
what training on the pipeline itself adds. Each pipeline is compiled with beam search
(beam 32) planned by the start weights (the baseline), the pooled model, its leave-one-out
model and any extra weights given (e.g. its own single-pipeline run's best.weights, "own"),
and these schedules are re-timed interleaved on one device of the run's class, each with
a verdict against the baseline's (farm.stats.verdict).

Library code: every check that needs no work comes first (prepare), and errors are the
farm's typed ones (farm.errors); the command line prints them as one line.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from farm.candidate import BEAM_SEARCH, CandidateSpec
from farm.devices.base import DeviceInfo
from farm.devices.timing import TimingConfig
from farm.errors import BadInput, MissingPrerequisite, RunDirError
from farm.execution.session import DeviceSession, check_usable, find
from farm.machine.targets import TargetInfo
from farm.machine.targets import resolve as resolve_target
from farm.model import retrain as costmodel
from farm.model import weights
from farm.model.featurization import schedule_key
from farm.model.trainer import HalideTrainer, Trainer
from farm.model.weights import Weights
from farm.paths import path_name
from farm.pipelines import catalog
from farm.pipelines.benchmark import Benchmark
from farm.report.output import columns, pyplot, save_figure
from farm.report.progress import plural
from farm.stats import verdict
from farm.store.records import Manifest, PipelineRecord
from farm.store.rundir import RunDir, class_dirs
from farm.store.samples import TRAIN_COLUMNS
from farm.workflows.bench import BUILD_TIMEOUT_S, DEFAULT_RETIMES

# One recipe for every model: from the run's start weights, at rate 1e-3 for 4 x 32 steps,
# as the "final-fresh-long" model at the end of `farm autotune` (tuning.finalize.FINAL_SETTINGS;
# a test keeps the two equal), so the pooled model is what a campaign's own final training
# yields. Each step is one gradient step per pipeline (farm.model.retrain).
TRAIN_RATE = 1e-3
TRAIN_STEPS = 4 * costmodel.DEFAULT_STEPS
TRAIN_SEED = 0  # of costmodel.capped: which schedules a pipeline with very many hands over
COLUMNS = tuple(dict.fromkeys((*TRAIN_COLUMNS, "benchmark")))  # what training reads

BASELINE, POOLED, LOO, OWN = "baseline", "pooled", "leave-one-out", "own"
VARIANTS = (BASELINE, POOLED, LOO, OWN)
POOLED_MODEL = "pooled"
SAME_WEIGHTS, SAME_SCHEDULE = "same weights as baseline", "same schedule as baseline"

SCHEMA = pa.schema([
    ("benchmark", pa.string()),
    ("group", pa.string()),  # the pipelines left out together, "+"-joined
    ("variant", pa.string()),  # baseline, pooled, leave-one-out, own
    ("model", pa.string()),  # pooled, loo-GROUP, start (the baseline), or the file given
    ("weights_sha256", pa.string()),
    ("weights_file", pa.string()),
    ("trained_on", pa.int64()),  # rows the model was trained on (None: not trained here)
    ("group_rows_trained_on", pa.int64()),  # of which this pipeline's group's (LOO: 0)
    ("same_as", pa.string()),  # the variant whose schedule (and timings) this one shares
    ("median_ms", pa.float64()),
    ("min_ms", pa.float64()),
    ("retimes_ms", pa.list_(pa.float64())),
    ("vs_baseline", pa.float64()),  # median of paired ratios; < 1: faster than baseline
    ("vs_baseline_low", pa.float64()),
    ("vs_baseline_high", pa.float64()),
    ("pairs", pa.int64()),
    ("verdict", pa.string()),
    ("error", pa.string()),
    ("device_id", pa.string()),
    ("target", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True)
class Group:
    """Pipelines left out together (one, unless near twins)."""

    members: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.members)

    @property
    def model(self) -> str:
        """Its leave-one-out model's name (its weights file's too: farm.paths.path_name of
        it, with .weights)."""
        return f"loo-{self.name}"


def make_groups(names: Sequence[str], together: Sequence[str] | None = None,
                twins: Sequence[Sequence[str]] = catalog.TWINS) -> list[Group]:
    """The leave-one-out groups of pipelines `names`, in their order: those `together`
    names ("A,B" each), else the built-in `twins` of which the run has two or more; every
    other pipeline alone."""
    order = {n: i for i, n in enumerate(names)}
    wanted: list[tuple[str, ...]] = []
    if together:
        for text in together:
            members = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
            unknown = [m for m in members if m not in order]
            if unknown:
                raise BadInput(f"--together {text}: {', '.join(unknown)} is not a pipeline of "
                               f"the run (its pipelines: {', '.join(names)})")
            if len(members) < 2:
                raise BadInput(f"--together {text} names one pipeline; a group is two or "
                               "more, comma-separated (e.g. --together "
                               f"{','.join(names[:2])})")
            wanted.append(members)
    else:
        wanted = [g for g in (tuple(m for m in twin if m in order) for twin in twins)
                  if len(g) >= 2]
    owner: dict[str, tuple[str, ...]] = {}
    for members in wanted:
        for m in members:
            if m in owner:
                raise BadInput(f"{m} is in two --together groups ({','.join(owner[m])} and "
                               f"{','.join(members)}); give each pipeline in one group")
            owner[m] = members
    groups: list[Group] = []
    for n in names:
        members = tuple(sorted(owner.get(n, (n,)), key=order.__getitem__))
        if all(g.members != members for g in groups):
            groups.append(Group(members))
    return groups


def parse_weights_for(items: Sequence[str] | None, pipelines: Sequence[PipelineRecord]
                      ) -> dict[str, tuple[Weights, str]]:
    """--weights-for BENCH=PATH, each loaded: {pipeline name: (weights, PATH)}."""
    by_ref = {**{p.ref: p.name for p in pipelines}, **{p.name: p.name for p in pipelines}}
    out: dict[str, tuple[Weights, str]] = {}
    for item in items or ():
        bench, sep, path = item.partition("=")
        # a pipeline with generator parameters has `=` in its name (box:radius=2=PATH)
        cuts = [i for i, c in enumerate(item) if c == "=" and item[:i].strip() in by_ref]
        if cuts:
            bench, path = item[:cuts[-1]], item[cuts[-1] + 1:]
        bench, path = bench.strip(), path.strip()
        if not (sep and bench and path):
            raise BadInput(f"--weights-for {item!r}: write BENCH=PATH, e.g. --weights-for "
                           f"{pipelines[0].name}=RUN/weights/best.weights")
        if bench not in by_ref:
            raise BadInput(f"--weights-for {item}: {bench!r} is not a pipeline of the run "
                           f"(its pipelines: {', '.join(p.name for p in pipelines)})")
        name = by_ref[bench]
        if name in out:
            raise BadInput(f"--weights-for names {name} twice; give one file per pipeline")
        out[name] = (weights.load(path), path)
    return out


def training_rows(table: pa.Table, pipelines: Sequence[str],
                  held_out: Sequence[str] = ()) -> pa.Table:
    """The usable rows (costmodel.usable) of `pipelines`, except those of `held_out`."""
    rows = costmodel.usable(table)
    keep = [p for p in pipelines if p not in held_out]
    return rows.filter(pc.is_in(rows["benchmark"], value_set=pa.array(keep, pa.string())))


def rows_of(table: pa.Table, names: Sequence[str]) -> int:
    """How many rows of `table` belong to the pipelines `names` (by their benchmark)."""
    if not names or table.num_rows == 0:
        return 0
    mask = pc.is_in(table["benchmark"], value_set=pa.array(list(names), pa.string()))
    return int(pc.sum(mask).as_py() or 0)


def distinct_by_pipeline(table: pa.Table) -> dict[str, int]:
    """Distinct schedules measured per pipeline (usable rows)."""
    rows = costmodel.usable(table)
    keys: dict[str, set] = {}
    for bench, key in zip(rows["benchmark"].to_pylist(), rows["schedule_key"].to_pylist(),
                          strict=True):
        keys.setdefault(bench, set()).add(key)
    return {b: len(k) for b, k in keys.items()}


@dataclass(frozen=True)
class Plan:
    """A checked evaluation of one run: everything decided before any work."""

    run: RunDir
    manifest: Manifest
    pipelines: tuple[PipelineRecord, ...]
    benches: Mapping[str, Benchmark]  # by pipeline name
    groups: tuple[Group, ...]
    start: Weights
    extra: Mapping[str, tuple[Weights, str]]  # --weights-for: (weights, path) by pipeline
    table: pa.Table  # the run's samples, COLUMNS
    target: TargetInfo
    steps: int = TRAIN_STEPS
    rate: float = TRAIN_RATE
    warnings: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def group_of(self, name: str) -> Group:
        return next(g for g in self.groups if name in g.members)


def prepare(run_dir: str | Path, together: Sequence[str] | None = None,
            weights_for: Sequence[str] | None = None, steps: int | None = None,
            named: Sequence[str] = ()) -> Plan:
    """Check the run and the options; raise a farm error naming the fix if one is wrong.
    `named`: the user's generators the campaign tuned, named by their paths on the command
    line; the farm runs no other generator a run directory names (catalog.recorded)."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise RunDirError(f"{run.path} does not exist; give a `farm autotune` campaign's "
                          "run directory")
    manifest = run.read_manifest()
    if manifest is None:
        found = class_dirs(run.path)  # a run of several device classes: one model each
        raise RunDirError(f"{run.path} is not a run directory (no manifest.json); give a "
                          "`farm autotune` campaign's run directory" + (
                              f", here one class's: {', '.join(str(d) for d in found)}"
                              if found else ""))
    pipelines = manifest.all_pipelines()
    names = [p.name for p in pipelines]
    if len(pipelines) < 2:
        which = f"one pipeline ({names[0]})" if names else "no pipeline"
        raise RunDirError(f"{run.path} tunes {which}; leave-one-out needs a campaign of at "
                          "least two pipelines (autotune several benchmarks into one run)")
    groups = make_groups(names, together)
    if len(groups) < 2:
        raise BadInput(f"the run's pipelines ({', '.join(names)}) form one group left out "
                       "together, and leave-one-out needs two: put fewer in --together")
    extra = parse_weights_for(weights_for, pipelines)
    _check_named(named, pipelines)
    benches = {p.name: _benchmark(p, run, named) for p in pipelines}
    start = weights.load(run.weights_path(0))
    if manifest.start_weights_sha256 and start.sha256 != manifest.start_weights_sha256:
        raise RunDirError(f"{run.weights_path(0)} are not the start weights the run recorded "
                          f"(sha256 {start.sha256[:12]}, manifest "
                          f"{manifest.start_weights_sha256[:12]}); restore the file")
    table = run.samples.read(COLUMNS)
    usable = training_rows(table, names)
    distinct = distinct_by_pipeline(usable)
    total = len(set(usable["schedule_key"].to_pylist()))
    if total < costmodel.MIN_DISTINCT:
        raise BadInput(f"{run.path} has {total} distinct schedules measured; Halide's trainer "
                       f"needs {costmodel.MIN_DISTINCT} per pipeline: run more rounds of the "
                       "campaign first")
    warnings = tuple(
        f"warning: {n} has {distinct.get(n, 0)} distinct schedules measured; Halide's trainer "
        f"skips a pipeline with fewer than {costmodel.MIN_DISTINCT}, so no model learns "
        "from it" for n in names if distinct.get(n, 0) < costmodel.MIN_DISTINCT)
    return Plan(run, manifest, tuple(pipelines), benches, tuple(groups), start, extra, table,
                resolve_target(manifest.target), steps or TRAIN_STEPS, TRAIN_RATE, warnings)


def _benchmark(p: PipelineRecord, run: RunDir, named: Sequence[str]) -> Benchmark:
    """Pipeline `p`'s benchmark: a built-in, or a generator the user named (its sha256
    checked before any of its code runs)."""
    try:
        return catalog.recorded(p.ref, p.sha256, named, str(run.manifest_path),
                                f"farm evaluate {run.path} --generator {{path}} (for "
                                f"{p.name})")
    except catalog.SourceChanged as e:
        raise RunDirError(f"{p.name}'s generator {e}") from None


def _check_named(named: Sequence[str], pipelines: Sequence[PipelineRecord]) -> None:
    """Each of `named` is the generator of one of `pipelines` (a typo would otherwise leave
    the generator it meant unnamed, and the refusal would be about that one)."""
    paths = [path for p in pipelines if (path := catalog.generator_path(p.ref)) is not None]
    for arg in named:
        if not any(catalog.names_path(arg, path) for path in paths):
            mine = ", ".join(str(p) for p in paths) or "none: its pipelines are built-ins"
            raise BadInput(f"--generator {arg} is not the generator of a pipeline of the run "
                           f"(the run's generators by path: {mine})")


def class_devices(found: Sequence[DeviceInfo], device_ids: Sequence[str] | None,
                  device_class: str | None, target: TargetInfo) -> list[DeviceInfo]:
    """The devices to time on: those `device_ids` names (each usable and of the run's
    class), else every usable one of the class (any class when the run recorded none)."""
    if device_ids:
        chosen = [find(list(found), i) for i in device_ids]
        for d in chosen:
            check_usable(d, target)
            if device_class is not None and str(d.device_class) != device_class:
                raise BadInput(f"device {d.id} is of class {d.device_class}, and the run's "
                               f"model is of class {device_class}: choose devices of its "
                               "class (see `farm devices`)")
        return chosen
    usable = [d for d in found if not d.problem_for(target)
              and (device_class is None or str(d.device_class) == device_class)]
    if not usable:
        raise MissingPrerequisite(
            f"no usable device of the run's class {device_class or '(any)'} for target "
            f"{target.compile}: `farm devices` lists each device and what keeps it from use")
    return usable


# models -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """A model trained for the evaluation (or why it could not be)."""

    name: str  # "pooled" or "loo-GROUP"
    held_out: tuple[str, ...]  # the group left out of its training (none for pooled)
    weights: Weights | None
    path: Path | None  # its weights file
    trained_on: int  # rows handed to the trainer
    by_pipeline: dict[str, int] = field(default_factory=dict)  # of which, per pipeline
    held_out_rows: int = 0  # rows of the held-out group among them: 0, checked
    skipped: str = ""  # why the trainer did not run
    loss: float | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        rows = ", ".join(f"{n} {c}" for n, c in self.by_pipeline.items())
        out = f"{self.name}: trained on {plural(self.trained_on, 'row')} ({rows}"
        if self.held_out:
            out += f"; {self.held_out_rows} of {'+'.join(self.held_out)}"
        out += ")"
        if self.weights is None:
            return f"{out}, not trained: {self.skipped}"
        loss = "" if self.loss is None else f", loss {self.loss:.4g}"
        return f"{out} in {self.seconds:.1f} s{loss} -> {self.path}"


def train_models(plan: Plan, out: Path, trainer: Trainer | None = None,
                 progress: Callable[[str], None] = print) -> dict[str, Model]:
    """The pooled model and one leave-one-out model per group, from the start weights, each
    written to OUT/weights/NAME.weights with its training log beside it."""
    trainer = trainer or HalideTrainer()
    jobs = [(POOLED_MODEL, ())] + [(g.model, g.members) for g in plan.groups]
    models = {}
    for name, held_out in jobs:
        models[name] = train_one(plan, name, held_out, out / "weights", trainer, progress)
    return models


def train_one(plan: Plan, name: str, held_out: tuple[str, ...], out: Path, trainer: Trainer,
              progress: Callable[[str], None] = print) -> Model:
    rows = costmodel.capped(training_rows(plan.table, plan.names, held_out), seed=TRAIN_SEED)
    leaked = rows_of(rows, held_out)
    if leaked:  # not `assert`: this must hold under python -O too
        raise AssertionError(f"{name}: {leaked} rows of the held-out {'+'.join(held_out)} "
                             "are in its training table")
    counts = {v["values"]: v["counts"] for v in pc.value_counts(rows["benchmark"]).to_pylist()}
    by_pipeline = {n: counts[n] for n in plan.names if n in counts}
    progress(f"training {name}: {plural(rows.num_rows, 'row')} of "
             f"{plural(len(by_pipeline), 'pipeline')}"
             + (f" (without {'+'.join(held_out)})" if held_out else "")
             + f", {plural(plan.steps, 'step')} at rate {plan.rate:g} from the start weights "
             "...")
    started = time.perf_counter()
    log = out / f"{path_name(name)}.log"  # loo-GROUP: pipelines' names (farm.paths)
    out.mkdir(parents=True, exist_ok=True)
    result = trainer.train(plan.run.sample_files, rows, plan.start, steps=plan.steps,
                           rate=plan.rate, num_cores=plan.manifest.parallelism, log_path=log)
    seconds = time.perf_counter() - started
    path = None
    if result.weights is not None:
        path = out / f"{path_name(name)}.weights"
        weights.write(result.weights, path)
    model = Model(name, held_out, result.weights, path, rows.num_rows, by_pipeline, leaked,
                  result.skipped, result.loss, seconds)
    progress(f"  {model.describe()}")
    return model


# timing -----------------------------------------------------------------------------

@dataclass
class _Variant:
    label: str
    weights: Weights | None
    model: str  # pooled, loo-GROUP, start, or the --weights-for file
    weights_file: str
    trained_on: int | None = None
    group_rows: int | None = None
    same_as: str | None = None  # the variant whose build (and timings) it shares
    same_why: str = ""  # "weights" or "schedule"
    error: str = ""
    binary: object = None  # its binary's ObjectRef, once built
    key: str | None = None  # its schedule key, once built


def variants_for(plan: Plan, name: str, models: Mapping[str, Model]) -> list[_Variant]:
    """What one pipeline is timed with: baseline, pooled, its leave-one-out model, own."""
    group = plan.group_of(name)
    out = [_Variant(BASELINE, plan.start, "start", str(plan.run.weights_path(0)))]
    for label, model in ((POOLED, models[POOLED_MODEL]), (LOO, models[group.model])):
        v = _Variant(label, model.weights, model.name, str(model.path or ""), model.trained_on,
                     sum(model.by_pipeline.get(m, 0) for m in group.members))
        if model.weights is None:
            v.error = f"not trained: {model.skipped}"
        out.append(v)
    if name in plan.extra:
        own, path = plan.extra[name]
        out.append(_Variant(OWN, own, path, path))
    return out


def time_pipeline(plan: Plan, pipeline: PipelineRecord, models: Mapping[str, Model], pool,
                  device: str, retimes: int, progress: Callable[[str], None] = print
                  ) -> list[dict]:
    """Build `pipeline` with beam 32 and each variant's weights (identical weights once),
    re-time the distinct schedules interleaved `retimes` times on `device`: rows."""
    name, bench = pipeline.name, plan.benches[pipeline.name]
    variants = variants_for(plan, name, models)
    first: dict[str, str] = {}  # weights sha256 -> the first variant with them
    for v in variants:
        if v.weights is None:
            continue
        if v.weights.sha256 in first:
            v.same_as, v.same_why = first[v.weights.sha256], "weights"
        else:
            first[v.weights.sha256] = v.label
    building = [v for v in variants if v.weights is not None and v.same_as is None]
    progress(f"{name}: building beam-32 with {', '.join(v.label for v in building)} weights ...")
    started = time.perf_counter()
    specs = [CandidateSpec(bench, plan.target, v.weights, parallelism=plan.manifest.parallelism,
                           **BEAM_SEARCH) for v in building]
    for v, (built, binary, _) in zip(building, pool.build(specs, BUILD_TIMEOUT_S), strict=True):
        if built is None or not built.result.ok:
            v.error = _build_error(built)
            continue
        v.binary = binary
        feats = built.result.schedule.featurization if built.result.schedule else b""
        v.key = schedule_key(feats) if feats else None
    by_key: dict[str, str] = {}
    for v in building:  # another weights' schedule, built again: time it once
        if v.key is None or v.error:
            continue
        if v.key in by_key:
            v.same_as, v.same_why = by_key[v.key], "schedule"
        else:
            by_key[v.key] = v.label
    timed = {v.label: v.binary for v in building if v.binary is not None and v.same_as is None}
    progress(f"{name}: built in {time.perf_counter() - started:.0f} s; re-timing "
             f"{plural(len(timed), 'schedule')} x {retimes}, interleaved, on {device} ...")
    started = time.perf_counter()
    errors: dict[str, str] = {}
    times = pool.retime(timed, plan.manifest.parallelism, TimingConfig(), retimes,
                        device=device, errors=errors) if timed else {}
    if timed and not times:
        errors = {label: f"not timed: device {device} is lost" for label in timed}
    progress(f"{name}: timed in {time.perf_counter() - started:.0f} s")
    return _rows(plan, pipeline, variants, times, errors, device)


def _rows(plan: Plan, pipeline: PipelineRecord, variants: list[_Variant], times: dict,
          errors: dict, device: str) -> list[dict]:
    by_label = {v.label: v for v in variants}

    def source(v: _Variant) -> _Variant:  # the variant whose timings it shares
        while v.same_as is not None:
            v = by_label[v.same_as]
        return v

    base = times.get(BASELINE)
    rows = []
    for v in variants:
        src = source(v)
        t = times.get(src.label, []) if not v.error else []
        ok = [x for x in t if x is not None]
        ratio = low = high = None
        pairs, word = None, None
        if v.label != BASELINE and not v.error:
            if src.label == BASELINE:  # one binary: exactly as fast
                ratio = low = high = 1.0
                word = SAME_WEIGHTS if v.same_why == "weights" and v.same_as == BASELINE \
                    else SAME_SCHEDULE
            elif base:
                vd = verdict.compare(t, base)
                ratio, low, high, pairs, word = vd.ratio, vd.low, vd.high, vd.pairs, vd.word
        error = v.error or src.error or (errors.get(src.label, "") if not ok else "")
        if not error and v.label != BASELINE and ratio is None and not base:
            error = "no baseline timing to compare with"
        rows.append({
            "benchmark": pipeline.name, "group": plan.group_of(pipeline.name).name,
            "variant": v.label, "model": v.model,
            "weights_sha256": v.weights.sha256 if v.weights else None,
            "weights_file": v.weights_file or None, "trained_on": v.trained_on,
            "group_rows_trained_on": v.group_rows, "same_as": v.same_as,
            "median_ms": verdict.median(t), "min_ms": min(ok) if ok else None,
            "retimes_ms": ok, "vs_baseline": ratio, "vs_baseline_low": low,
            "vs_baseline_high": high, "pairs": pairs, "verdict": word,
            "error": error or None, "device_id": device if ok else None,
            "target": plan.target.compile, "created_at": datetime.now(timezone.utc)})
    return rows


def _build_error(built) -> str:
    if built is None:
        return f"its build did not finish (worker died, or over {BUILD_TIMEOUT_S:g} s)"
    return (built.result.error or "build failed").splitlines()[0]


# the whole evaluation ---------------------------------------------------------------

@dataclass
class Result:
    rows: list[dict]
    models: dict[str, Model]
    devices: list[str]


def run_evaluate(plan: Plan, out: Path, device_ids: Sequence[str] | None = None,
                 address: str | None = None, retimes: int = DEFAULT_RETIMES,
                 trainer: Trainer | None = None,
                 progress: Callable[[str], None] = print) -> Result:
    """Find the devices (before any work), train the models, then build and re-time each
    pipeline on one device of the run's class (round robin over the devices)."""
    for line in plan.warnings:
        progress(line)
    if retimes < verdict.MIN_PAIRS:
        progress(f"warning: --retimes {retimes} is under {verdict.MIN_PAIRS}: no ratio or "
                 "verdict can be computed (they need that many paired re-timings)")
    with DeviceSession(address) as session:
        infos = class_devices(session.devices, device_ids, plan.manifest.device_class,
                              plan.target)
        models = train_models(plan, out, trainer, progress)
        pool = session.pool(infos, plan.target)
        rows: list[dict] = []
        for i, pipeline in enumerate(plan.pipelines):
            usable = pool.usable()
            if not usable:
                if pool.faults:  # the lasting faults' causes and fixes
                    raise pool.no_device_left()
                raise MissingPrerequisite("every device was lost while timing; see `farm "
                                          "devices`, fix them and run again")
            device = usable[i % len(usable)].info.id
            rows += time_pipeline(plan, pipeline, models, pool, device, retimes, progress)
            for event in pool.events:
                progress(f"warning: {event}")
            pool.events.clear()
    return Result(rows, models, [i.id for i in infos])


# output -----------------------------------------------------------------------------

def _present(rows: list[dict]) -> list[str]:
    return [v for v in VARIANTS if any(r["variant"] == v for r in rows)]


def format_table(rows: list[dict]) -> str:
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    present = _present(rows)
    header = ["benchmark", "left out with", *(f"{v} ms" for v in present),
              *(f"{v} / baseline" for v in present if v != BASELINE)]
    table = [header]
    for bench in benches:
        mine = {r["variant"]: r for r in rows if r["benchmark"] == bench}
        group = next(iter(mine.values()))["group"].split("+")
        others = "+".join(m for m in group if m != bench) or "-"
        cells = [bench, others]
        for v in present:
            r = mine.get(v)
            cells.append("-" if r is None or r["median_ms"] is None else f"{r['median_ms']:.3f}")
        cells += [_versus(mine.get(v)) for v in present if v != BASELINE]
        table.append(cells)
    return columns(table) + (
        "\nagainst beam-32 with the start weights (baseline): median of paired interleaved "
        "re-timings with a 95% bootstrap interval (README: how ratios read)")


def _versus(r: dict | None) -> str:
    if r is None:
        return "-"
    if r["verdict"] in (SAME_WEIGHTS, SAME_SCHEDULE):
        return r["verdict"]
    if r["vs_baseline"] is None:
        return r["error"] or r["verdict"] or "-"
    return verdict.wording(r["vs_baseline"], r["vs_baseline_low"], r["vs_baseline_high"],
                           r["verdict"])


def geometric_mean(values: Sequence[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summary(rows: list[dict]) -> list[str]:
    """Per variant: the geometric mean of its ratio to baseline across pipelines, and how
    many pipelines it makes significantly faster or slower."""
    lines = []
    for variant in _present(rows):
        if variant == BASELINE:
            continue
        mine = [r for r in rows if r["variant"] == variant]
        ratios = [r["vs_baseline"] for r in mine if r["vs_baseline"] is not None]
        words = [r["verdict"] for r in mine]
        mean = geometric_mean(ratios)
        text = f"{variant} / baseline: " + (
            f"geometric mean {verdict.factor(mean)} over {len(ratios)} of "
            f"{plural(len(mine), 'pipeline')}"
            if mean is not None else f"no ratio on any of {plural(len(mine), 'pipeline')}")
        text += (f"; significantly faster on {words.count(verdict.FASTER)}, slower on "
                 f"{words.count(verdict.SLOWER)}, indistinguishable on "
                 f"{words.count(verdict.SAME)}")
        same = words.count(SAME_WEIGHTS) + words.count(SAME_SCHEDULE)
        if same:
            text += f", the baseline's schedule on {same}"
        unmeasured = len(mine) - len(ratios)
        if unmeasured:
            text += (f"; {unmeasured} without a ratio (unmeasured: fewer than "
                     f"{verdict.MIN_PAIRS} paired re-timings, or not built)")
        lines.append(text)
    return lines


def write_results(rows: list[dict], out: Path, title: str = "") -> tuple[Path, Path]:
    """OUT/evaluate.parquet (the rows) and OUT/evaluate.png (the plot)."""
    out.mkdir(parents=True, exist_ok=True)
    table = out / "evaluate.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), table)
    return table, plot(rows, out / "evaluate.png", title)


def plot(rows: list[dict], path: Path, title: str = "") -> Path:
    """Per pipeline, each variant's time / baseline with its 95% interval; 1.0 marked."""
    plt = pyplot()
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    shown = [v for v in _present(rows) if v != BASELINE]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(benches) + 2), 4.5))
    width = 0.6 / max(1, len(shown))
    for j, variant in enumerate(shown):
        xs, ys, lo, hi = [], [], [], []
        for i, bench in enumerate(benches):
            r = next((r for r in rows if r["benchmark"] == bench and r["variant"] == variant),
                     None)
            if r is None or r["vs_baseline"] is None:
                continue
            xs.append(i + (j - (len(shown) - 1) / 2) * width)
            ys.append(r["vs_baseline"])
            lo.append(r["vs_baseline"] - (r["vs_baseline_low"] or r["vs_baseline"]))
            hi.append((r["vs_baseline_high"] or r["vs_baseline"]) - r["vs_baseline"])
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=variant)
    ax.axhline(1.0, color="gray", linewidth=1, linestyle="--")
    ax.set_yscale("log")  # ratios: 0.5x and 2x equally far from 1
    from matplotlib.ticker import FuncFormatter

    low, high = ax.get_ylim()
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}x"))
    # within a decade or two (the usual case), label the minor ticks too (0.8x, 0.9x, 2x)
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda y, _: f"{y:g}x" if high / low < 30 and f"{y:g}"[0] in "12358" else ""))
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels(benches, fontsize=8)
    ax.set(ylabel="time / baseline (beam 32, start weights)",
           title=title or "farm evaluate: leave-one-out transfer")
    if shown:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
