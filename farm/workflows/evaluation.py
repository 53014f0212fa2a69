"""What `farm evaluate` works from (an Evaluation): every check that needs no work, done
before any (prepare).

The run and the options are checked and read into an Evaluation: the campaign's pipelines and
their benchmarks (a user's generator only as catalog.recorded allows), the groups left out
together (make_groups), any --weights-for, the start weights and the samples to train on;
class_devices picks the devices of the run's class. farm.workflows.evaluate trains and
times from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from farm.devices.base import DeviceInfo
from farm.errors import BadInput, MissingPrerequisite, RunDirError
from farm.execution.session import check_usable, find
from farm.machine.targets import TargetInfo
from farm.machine.targets import resolve as resolve_target
from farm.model import retrain, weights
from farm.model.weights import Weights
from farm.pipelines import catalog
from farm.pipelines.benchmark import Benchmark
from farm.pipelines.params import same_pipeline
from farm.store.records import Manifest, PipelineRecord, RunKind
from farm.store.rundir import RunDir, class_dirs
from farm.store.samples import TRAIN_COLUMNS

# One recipe for every model: from the run's start weights, at rate 1e-3 for 4 x 32 steps,
# as the "final-fresh-long" model at the end of `farm autotune` (tuning.final_models.FINAL_SETTINGS;
# a test keeps the two equal), so the pooled model is what a campaign's own final training
# yields. Each step is one gradient step per pipeline (farm.model.retrain).
TRAIN_RATE = 1e-3
TRAIN_STEPS = 4 * retrain.DEFAULT_STEPS
TRAIN_SEED = 0  # of retrain.capped: which schedules a pipeline with very many hands over
COLUMNS = tuple(dict.fromkeys((*TRAIN_COLUMNS, "benchmark")))  # what training reads


@dataclass(frozen=True)
class Group:
    """Pipelines left out together (one, unless near twins)."""

    members: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.members)

    @property
    def label(self) -> str:
        """How it is named to a reader: its corpus family, else its members."""
        families = {catalog.family_of(m.split(":")[0]) for m in self.members}
        family = families.pop() if len(families) == 1 else None
        return f"family {family}" if family and len(self.members) > 1 else self.name

    @property
    def model(self) -> str:
        """Its leave-one-out model's name (its weights file's too: farm.paths.path_name of
        it, with .weights)."""
        return f"loo-{self.name}"


def make_groups(names: Sequence[str], together: Sequence[str] | None = None,
                twins: Sequence[Sequence[str]] = catalog.TWINS) -> list[Group]:
    """The leave-one-out groups of pipelines `names`, in their order: those `together`
    names ("A,B" each), else the built-in `twins` of which the run has two or more and the
    run's pipelines of each corpus family (leave-family-out: a model that saw a family's
    other pipelines has as good as seen this one); every other pipeline alone."""
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
        families: dict[str, list[str]] = {}
        for n in names:  # a generator's parameter sets are of its family
            family = catalog.family_of(n.split(":")[0])
            if family is not None:
                families.setdefault(family, []).append(n)
        wanted = [g for g in (*(tuple(m for m in twin if m in order) for twin in twins),
                              *(tuple(f) for f in families.values())) if len(g) >= 2]
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


def parse_weights_for(items: Sequence[str] | None, pipelines: Sequence[PipelineRecord],
                      aliases: Mapping[str, str] | None = None, whose: str = "the run"
                      ) -> dict[str, tuple[Weights, str]]:
    """--weights-for BENCH=PATH, each loaded: {pipeline name: (weights, PATH)}. BENCH is a
    pipeline's name, its ref, or one of `aliases` (as the user wrote it elsewhere)."""
    by_ref = {**{p.ref: p.name for p in pipelines}, **{p.name: p.name for p in pipelines},
              **(aliases or {})}
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
            raise BadInput(f"--weights-for {item}: {bench!r} is not a pipeline of {whose} "
                           f"(they are: {', '.join(p.name for p in pipelines)})")
        name = by_ref[bench]
        if name in out:
            raise BadInput(f"--weights-for names {name} twice; give one file per pipeline")
        out[name] = (weights.load(path), path)
    return out


def training_rows(table: pa.Table, pipelines: Sequence[str],
                  held_out: Sequence[str] = ()) -> pa.Table:
    """The usable rows (retrain.usable) of `pipelines`, except those of `held_out`."""
    rows = retrain.usable(table)
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
    rows = retrain.usable(table)
    keys: dict[str, set] = {}
    for bench, key in zip(rows["benchmark"].to_pylist(), rows["schedule_key"].to_pylist(),
                          strict=True):
        keys.setdefault(bench, set()).add(key)
    return {b: len(k) for b, k in keys.items()}


@dataclass(frozen=True)
class Evaluation:
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
    # --on: the run's handed-over weights (and their file), timed on pipelines it never
    # trained on; no model is trained then
    handed: tuple[Weights, str] | None = None
    judged: bool = False  # --judge: `handed` are other weights of the run, named by the user

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def group_of(self, name: str) -> Group:
        return next(g for g in self.groups if name in g.members)


def prepare(run_dir: str | Path, together: Sequence[str] | None = None,
            weights_for: Sequence[str] | None = None, steps: int | None = None,
            named: Sequence[str] = ()) -> Evaluation:
    """Check the run and the options; raise a farm error naming the fix if one is wrong.
    `named`: the user's generators the campaign tuned, named by their paths on the command
    line; the farm runs no other generator a run directory names (catalog.recorded)."""
    run = _run_of(run_dir)
    manifest = run.read_manifest()
    assert manifest is not None  # _run_of checked
    if manifest.kind is RunKind.PRETRAINING:
        raise BadInput(f"{run.path} is a pre-training: each of its pipelines was held out "
                       "when it was new; judge its model on real pipelines with --on BENCH "
                       "[BENCH ...] (e.g. --on all)")
    pipelines = manifest.all_pipelines()
    names = [p.name for p in pipelines]
    if len(pipelines) < 2:
        which = f"one pipeline ({names[0]})" if names else "no pipeline"
        raise RunDirError(f"{run.path} tunes {which}; leave-one-out needs a campaign of at "
                          "least two pipelines (autotune several benchmarks into one run); "
                          "to judge its weights on pipelines it never saw: farm evaluate "
                          f"{run.path} --on BENCH [BENCH ...]")
    groups = make_groups(names, together)
    if len(groups) < 2:
        raise BadInput(f"the run's pipelines ({', '.join(names)}) form one group left out "
                       "together, and leave-one-out needs two: put fewer in --together")
    extra = parse_weights_for(weights_for, pipelines)
    _check_named(named, pipelines)
    benches = {p.name: _benchmark(p, run, named) for p in pipelines}
    start = _start_weights(run, manifest)
    table = run.samples.read(COLUMNS)
    usable = training_rows(table, names)
    distinct = distinct_by_pipeline(usable)
    total = len(set(usable["schedule_key"].to_pylist()))
    if total < retrain.MIN_DISTINCT:
        raise BadInput(f"{run.path} has {total} distinct schedules measured; Halide's trainer "
                       f"needs {retrain.MIN_DISTINCT} per pipeline: run more rounds of the "
                       "campaign first")
    warnings = tuple(
        f"warning: {n} has {distinct.get(n, 0)} distinct schedules measured; Halide's trainer "
        f"skips a pipeline with fewer than {retrain.MIN_DISTINCT}, so no model learns "
        "from it" for n in names if distinct.get(n, 0) < retrain.MIN_DISTINCT)
    return Evaluation(run, manifest, tuple(pipelines), benches, tuple(groups), start, extra, table,
                resolve_target(manifest.target), steps or TRAIN_STEPS, TRAIN_RATE, warnings)


def prepare_on(run_dir: str | Path, on: Sequence[str],
               weights_for: Sequence[str] | None = None,
               judge: str | Path | None = None) -> Evaluation:
    """`farm evaluate RUN_DIR --on BENCH ...`: RUN_DIR's handed-over weights (or `judge`,
    other weights of it) against its start weights on pipelines it never trained on (a
    pipeline it trained on is refused). RUN_DIR may be any run: a pre-training, a campaign,
    a single run."""
    run = _run_of(run_dir)
    manifest = run.read_manifest()
    assert manifest is not None  # _run_of checked
    if not on:
        raise BadInput("--on names no pipeline: give one BENCH or more")
    trained, unknown = _trained_on(run, manifest)
    benches: list[Benchmark] = []
    left_out: list[str] = []
    written: dict[str, str] = {}  # each BENCH as the user wrote it: its pipeline's name
    for ref in on:  # a suite: those of its pipelines the run never trained on
        named = catalog.suite(ref)
        for r in (named if named is not None else [ref]):
            b = catalog.resolve(r)
            if any(b.label == o.label for o in benches) or b.label in left_out:
                continue  # named twice (`all sobel`): timed once
            why = _seen(b, trained)
            if why and named is not None:
                left_out.append(b.label)
            elif why:
                raise BadInput(f"{b.label} {why} in {run.path}'s training: --on judges the "
                               "model on pipelines it never saw; leave it out")
            else:
                benches.append(b)
                written[r] = b.label
    if not benches:
        raise BadInput(f"--on leaves no pipeline {run.path} never trained on (left out: "
                       f"{', '.join(left_out)}): name another BENCH")
    pipelines = tuple(PipelineRecord(b.label, b.ref, b.sha256) for b in benches)
    start = _start_weights(run, manifest)
    notes = [f"note: --on all leaves out {', '.join(left_out)}, which {run.path}'s model "
             "trained on (or on a near twin)"] if left_out else []
    warnings = (*unknown, *notes)
    handed_path = Path(judge) if judge is not None else run.best_weights
    if judge is None and not handed_path.exists():
        handed_path = run.latest_weights
        if not handed_path.exists():
            raise RunDirError(f"{run.path} holds no weights to judge (weights/best.weights, "
                              "weights/latest.weights): run at least one round first")
        warnings += (f"warning: {run.path} has no handed-over weights (its end did not "
                     f"run); judging {handed_path.name}, the weights its rounds accepted",)
    return Evaluation(run, manifest, pipelines, {b.label: b for b in benches},
                      tuple(Group((b.label,)) for b in benches), start,
                      parse_weights_for(weights_for, pipelines, written, "--on"),
                      run.samples.read(COLUMNS),
                      resolve_target(manifest.target), warnings=warnings,
                      handed=(weights.load(handed_path), str(handed_path)),
                      judged=judge is not None)


def _trained_on(run: RunDir, manifest: Manifest) -> tuple[list[PipelineRecord], list[str]]:
    """The pipelines whose rows trained the run's models: its own, and those of the runs
    it also trained on (--also-train-on); and a warning for each of those runs that is gone
    or unreadable (what it contributed cannot be told)."""
    out, warnings = list(manifest.all_pipelines()), []
    for other in manifest.also_train_on:
        try:
            theirs = RunDir(other).read_manifest()
        except RunDirError:
            theirs = None
        if theirs is None:
            warnings.append(f"warning: {run.path} also trained on {other}, which is gone or "
                            "unreadable: a pipeline of it in --on would not be told apart")
        else:
            out += theirs.all_pipelines()
    return out, warnings


def unseen_corpus(run: RunDir, count: int) -> list[str]:
    """`count` corpus pipelines the run's model never saw (nor a near twin of), one per
    family in turn, the families it has no pipeline of first: pipelines of its class it
    was not tuned for, to judge it on before it becomes the class's model."""
    manifest = run.read_manifest()
    assert manifest is not None  # (a run directory)
    trained, _ = _trained_on(run, manifest)
    left = {f: [b.label for b in benches if not _seen(b, trained)]
            for f, benches in catalog.corpus_families().items()}
    order = sorted(left, key=lambda f: len(left[f]) < len(catalog.corpus_families()[f]))
    out: list[str] = []
    while len(out) < count and any(left.values()):
        for f in order:
            if left[f] and len(out) < count:
                out.append(left[f].pop(0))
    return out


def _seen(bench: Benchmark, trained: Sequence[PipelineRecord]) -> str:
    """How the model saw `bench` ("took part", "has a near twin, X, that took part"), or
    "" when it never did."""
    if any(same_pipeline(bench, p.name) for p in trained):
        return "took part"
    twin = next((p.name for p in trained if bench.builtin and p.name in
                 catalog.twins(bench.label)), None)
    return f"has a near twin, {twin}, that took part" if twin else ""


def _run_of(run_dir: str | Path) -> RunDir:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        what = "is not a folder" if run.path.exists() else "does not exist"
        raise RunDirError(f"{run.path} {what}; give a `farm autotune` or `farm pretrain` run "
                          "directory")
    if run.read_manifest() is None:
        found = class_dirs(run.path)  # a run of several device classes: one model each
        raise RunDirError(f"{run.path} is not a run directory (no manifest.json); give a "
                          "`farm autotune` or `farm pretrain` run directory" + (
                              f", here one class's: {', '.join(str(d) for d in found)}"
                              if found else ""))
    return run


def _start_weights(run: RunDir, manifest: Manifest) -> Weights:
    if not run.weights_path(0).exists():
        raise RunDirError(f"{run.path} has no start weights ({run.weights_path(0).name}): "
                          "its first command did not get to start; run it again, or give "
                          "another run directory")
    start = weights.load(run.weights_path(0))
    if manifest.start_weights_sha256 and start.sha256 != manifest.start_weights_sha256:
        raise RunDirError(f"{run.weights_path(0)} are not the start weights the run recorded "
                          f"(sha256 {start.sha256[:12]}, manifest "
                          f"{manifest.start_weights_sha256[:12]}); restore the file")
    return start


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
