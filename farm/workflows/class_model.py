"""`farm models train --class C`: a cost model for a device class from the class's real work,
registered with the evidence that it helps pipelines it never saw.

The rows are the class's real work: the runs the registry holds models of for the class
(campaigns, single runs, imports of Halide's loop; pre-trainings are left out, because a
random pipeline's rank did not predict planning on real ones) and any run named with
--from. Each candidate model is trained from Halide's baseline weights with one recipe
(farm.workflows.evaluation's: 128 steps at rate 1e-3) and a seed: seed 0 trains on every
row, seed s > 0 on a share of each pipeline's rows drawn with s (model.retrain.bagged),
and the "soup" is the mean of the seeds' weights.

The candidates are judged as a new pipeline of the class would meet them, leave-family-
out: for each group of pipelines (a corpus family, near twins, else one pipeline;
evaluation.make_groups), each candidate is trained again without the group's rows, and the
group's pipelines are built with beam 32 and the baseline and each such model, then
re-timed interleaved on one device of the class, each with a verdict against the
baseline. The winner is significantly slower on the fewest validation pipelines, then
fastest in geometric mean; its model trained on every row is registered for the class
with that evidence, and made current when it is slower on none (or with --force).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from farm import atomic
from farm.candidate import BEAM_SEARCH, CandidateSpec
from farm.devices.timing import TimingConfig
from farm.errors import BadInput, MissingPrerequisite
from farm.execution import compare
from farm.execution.session import DeviceSession
from farm.machine.targets import TargetInfo
from farm.machine.targets import resolve as resolve_target
from farm.model import retrain
from farm.model import weights as weights_module
from farm.model.trainer import HalideTrainer, Trainer
from farm.model.weights import Weights
from farm.paths import path_name
from farm.pipelines import catalog
from farm.pipelines.benchmark import Benchmark
from farm.report import comparison
from farm.report.progress import plural
from farm.stats import verdict
from farm.store.records import RunKind
from farm.store.registry import Model as RegisteredModel
from farm.store.registry import ModelRecord, Registry, now_iso
from farm.store.rundir import RunDir
from farm.workflows.bench import BUILD_TIMEOUT_S, DEFAULT_RETIMES
from farm.workflows.evaluation import (
    COLUMNS,
    TRAIN_RATE,
    TRAIN_STEPS,
    Group,
    class_devices,
    make_groups,
    rows_of,
)
from farm.workflows.models import run_of_class

KIND = "class-model"  # its ModelRecord.kind
BASELINE, SOUP = "baseline", "soup"
DEFAULT_SEEDS = 3
TRAINED_FROM = (RunKind.CAMPAIGN, RunKind.SINGLE, RunKind.IMPORTED)  # real work, not random

SCHEMA = pa.schema([
    ("benchmark", pa.string()),
    ("group", pa.string()),  # the pipelines left out together, "+"-joined
    ("variant", pa.string()),  # baseline, seed-N or soup
    ("weights_sha256", pa.string()),
    ("trained_on", pa.int64()),  # rows the held-out model was trained on
    ("median_ms", pa.float64()),
    ("min_ms", pa.float64()),
    ("retimes_ms", pa.list_(pa.float64())),
    ("vs_baseline", pa.float64()),
    ("vs_baseline_low", pa.float64()),
    ("vs_baseline_high", pa.float64()),
    ("verdict", pa.string()),
    ("error", pa.string()),
    ("device_id", pa.string()),
    ("target", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


def seed_name(seed: int) -> str:
    return f"seed-{seed}"


@dataclass(frozen=True)
class ClassWork:
    """The class's pooled real work, checked before any work is done."""

    device_class: str  # as `farm devices` names it
    recorded_class: str  # as runs record it (with its target): what devices are matched by
    sources: tuple[Path, ...]
    table: pa.Table  # usable rows of every source (COLUMNS)
    pipelines: tuple[str, ...]  # every pipeline with rows, by name
    benches: Mapping[str, Benchmark]  # those a validation can build (built-ins)
    groups: tuple[Group, ...]
    target: TargetInfo
    parallelism: int
    start: Weights
    seeds: tuple[int, ...]
    steps: int = TRAIN_STEPS
    rate: float = TRAIN_RATE
    notes: tuple[str, ...] = ()

    @property
    def candidates(self) -> list[str]:
        return [seed_name(s) for s in self.seeds] + ([SOUP] if len(self.seeds) > 1 else [])

    def group_of(self, name: str) -> Group:
        return next(g for g in self.groups if name in g.members)


def registered_runs(device_class: str, registry: Registry) -> list[Path]:
    """The run directories of the class's registered models that hold real work."""
    out = []
    for m in registry.models(device_class):
        path = Path(m.record.source)
        if m.record.kind in TRAINED_FROM and path.is_dir() and path not in out:
            out.append(path)
    return out


def gather(device_class: str, from_dirs: Sequence[str | Path] = (), seeds: int = DEFAULT_SEEDS,
           registry: Registry | None = None) -> ClassWork:
    """Check the sources and pool their rows; a farm error naming the fix if one is wrong."""
    if not 1 <= seeds <= 16:
        raise BadInput(f"--seeds {seeds}: give 1 to 16 (each seed trains one model per "
                       "group of pipelines)")
    registry = registry or Registry()
    notes: list[str] = []
    paths = [Path(p) for p in from_dirs] + registered_runs(device_class, registry)
    runs: list[RunDir] = []
    for path in dict.fromkeys(p.resolve() for p in paths):
        run = run_of_class(path, device_class)  # refuses another class's run
        manifest = run.read_manifest()
        assert manifest is not None  # (run_of_class read it)
        if manifest.kind is RunKind.PRETRAINING:
            notes.append(f"note: {run.path} is a pre-training on random pipelines; left out")
            continue
        runs.append(run)
    if not runs:
        raise BadInput(f"class {device_class} has no run of real work to train on: name "
                       "campaigns or imports with --from RUN_DIR, or promote one first "
                       "(farm models promote RUN_DIR)")
    manifests = [r.read_manifest() for r in runs]
    targets = {m.target for m in manifests if m is not None}
    cores = {m.parallelism for m in manifests if m is not None}
    if len(targets) > 1 or len(cores) > 1:
        raise BadInput(f"the runs were tuned for different targets or parallelism "
                       f"({', '.join(sorted(targets))}; {sorted(cores)}): a model's pipeline "
                       "features depend on both; name runs of one target with --from")
    table = pa.concat_tables([r.samples.read(COLUMNS) for r in runs])
    table = retrain.usable(table)
    names = sorted(set(table["benchmark"].to_pylist()) - {None})
    builtins = {b.label for b in (*catalog.builtin_benchmarks(), *catalog.corpus_benchmarks())}
    benches: dict[str, Benchmark] = {}
    for n in names:
        if n.split(":")[0] not in builtins:
            notes.append(f"note: {n} trains the models but is not validated on (only "
                         "built-in pipelines are built again here)")
            continue
        benches[n] = catalog.resolve(n)
    groups = tuple(make_groups(names))
    if len(groups) < 2 or not benches:
        raise BadInput(f"the runs hold {plural(len(names), 'pipeline')} ({', '.join(names)}): "
                       "leave-family-out needs pipelines of two groups or more, built-ins "
                       "among them")
    recorded = next((m.device_class for m in manifests if m is not None and m.device_class),
                    device_class)
    return ClassWork(device_class, recorded, tuple(r.path for r in runs), table, tuple(names),
                     benches, groups, resolve_target(targets.pop()), cores.pop(),
                     weights_module.baseline(), tuple(range(seeds)), notes=tuple(notes))


# training ---------------------------------------------------------------------------------

@dataclass
class Models:
    """Weights by (candidate, held-out group name; "" for every row)."""

    weights: dict[tuple[str, str], Weights] = field(default_factory=dict)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)


def train_candidates(work: ClassWork, out: Path, held_out: Sequence[Group | None],
                     trainer: Trainer | None = None,
                     progress: Callable[[str], None] = print) -> Models:
    """For each group of `held_out` (None: no group, every row), each seed's model and the
    soup, written to OUT/weights/; a model already there is read back, not trained again
    (training is a function of its rows, so the file is what it would give)."""
    trainer = trainer or HalideTrainer()
    files = retrain.SampleFiles(out / "cache" / "samples", root=out)
    atomic.real_dir(out / "weights", out)
    models = Models()
    for group in held_out:
        tag = group.name if group else ""
        said = group.label if group else ""
        left_out = group.members if group else ()
        keep = [n for n in work.pipelines if n not in left_out]
        base = work.table.filter(pc.is_in(work.table["benchmark"],
                                          value_set=pa.array(keep, pa.string())))
        if rows_of(base, left_out):  # not `assert`: this must hold under python -O too
            raise AssertionError(f"rows of the held-out {tag} are in its training table")
        for seed in work.seeds:
            name = seed_name(seed)
            path = _weights_path(out, name, tag)
            rows = retrain.capped(retrain.bagged(base, seed), seed=seed)
            inputs = _inputs(work, rows)
            made_from = path.with_suffix(".inputs")
            if path.is_file() and _read_text(made_from) == inputs:
                models.weights[(name, tag)] = weights_module.load(path)
            else:
                progress(f"training {name}" + (f" without {said}" if said else " on every row")
                         + f": {plural(rows.num_rows, 'row')} ...")
                result = trainer.train(files, rows, work.start, steps=work.steps,
                                       rate=work.rate, num_cores=work.parallelism,
                                       log_path=path.with_suffix(".log"))
                if result.weights is None:
                    raise BadInput(f"{name}" + (f" without {said}" if said else "") +
                                   f" could not be trained: {result.skipped}")
                weights_module.write(result.weights, path)
                atomic.write_text(made_from, inputs)
                models.weights[(name, tag)] = result.weights
            models.rows[(name, tag)] = rows.num_rows
        if len(work.seeds) > 1:
            soup = weights_module.averaged(
                [models.weights[(seed_name(s), tag)] for s in work.seeds],
                f"the mean of {len(work.seeds)} seeds' weights")
            weights_module.write(soup, _weights_path(out, SOUP, tag))
            models.weights[(SOUP, tag)] = soup
            models.rows[(SOUP, tag)] = max(models.rows[(seed_name(s), tag)]
                                           for s in work.seeds)
    return models


def _inputs(work: ClassWork, rows: pa.Table) -> str:
    """What a model is a function of: its rows (by sample id), recipe and start weights."""
    import hashlib

    h = hashlib.sha256()
    for sid in sorted(rows["sample_id"].to_pylist()):
        h.update(sid.encode() + b"\0")
    return f"{h.hexdigest()} steps={work.steps} rate={work.rate:g} start={work.start.sha256}\n"


def _read_text(path: Path) -> str | None:
    try:
        return atomic.read_regular(path, 4096, follow=False).decode()
    except (OSError, ValueError):
        return None


def _weights_path(out: Path, name: str, tag: str) -> Path:
    return out / "weights" / (f"{name}.weights" if not tag
                              else f"{name}-without-{path_name(tag)}.weights")


# judging ----------------------------------------------------------------------------------

def judge_pipeline(work: ClassWork, name: str, models: Models, pool, device: str,
                   retimes: int, progress: Callable[[str], None] = print) -> list[dict]:
    """`name` built with beam 32 and the baseline and each candidate's model trained
    without its group, re-timed interleaved on `device`: a row per variant."""
    group = work.group_of(name).name
    bench = work.benches[name]
    labels = [BASELINE, *work.candidates]
    chosen = {BASELINE: work.start, **{c: models.weights[(c, group)] for c in work.candidates}}
    wanted = [compare.Variant(label, CandidateSpec(
        bench, work.target, chosen[label], parallelism=work.parallelism, **BEAM_SEARCH),
        against=None if label == BASELINE else BASELINE) for label in labels]
    progress(f"{name}: building beam-32 with {', '.join(labels)} ...")
    built = compare.build(pool, wanted, BUILD_TIMEOUT_S, distinct=True)
    progress(f"{name}: re-timing x {retimes}, interleaved, on {device} ...")
    results = compare.retime(pool, built, work.parallelism, TimingConfig(), retimes,
                             device=device)
    results = compare.confirm_slower(pool, built, results, work.parallelism, TimingConfig(),
                                     retimes, device=device,
                                     say=lambda line: progress(f"{name}: {line}"))
    rows = []
    for label in labels:
        c = results[label]
        v = c.verdict
        if label != BASELINE and c.source == BASELINE and not c.error:  # the same schedule
            v = verdict.Verdict(1.0, 1.0, 1.0, 0, verdict.SAME)
        rows.append({"benchmark": name, "group": group, "variant": label,
                     "trained_on": models.rows.get((label, group)),
                     "device_id": device if c.ok_ms else None, "target": work.target.compile,
                     **comparison.row(c, v, chosen[label].sha256)})
    return rows


def _kept_path(out: Path, name: str) -> Path:
    return out / "pipelines" / f"{path_name(name)}.parquet"


def _kept(out: Path, name: str, wanted: Mapping[str, str]) -> list[dict] | None:
    """Rows an earlier `farm models train` into `out` timed for `name` with these weights."""
    path = _kept_path(out, name)
    if not path.is_file():
        return None
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException):
        return None
    have = {r["variant"]: r["weights_sha256"] for r in rows}
    return rows if have == dict(wanted) else None


@dataclass(frozen=True)
class Evidence:
    """How a candidate did on the pipelines it was not trained on."""

    candidate: str
    geometric_mean: float | None
    slower: tuple[str, ...]
    faster: tuple[str, ...]
    worst: tuple[str, float] | None  # (pipeline, ratio)
    validated_on: int

    def line(self) -> str:
        mean = (f"{self.geometric_mean:.2f}x the baseline's time "
                f"({verdict.factor(self.geometric_mean)})" if self.geometric_mean
                else "no ratio")
        worst = f"; worst {self.worst[0]} {self.worst[1]:.2f}x" if self.worst else ""
        return (f"{self.candidate}: geometric mean {mean} over "
                f"{plural(self.validated_on, 'unseen pipeline')}; significantly faster on "
                f"{len(self.faster)}, slower on {len(self.slower)}"
                + (f" ({', '.join(self.slower)})" if self.slower else "") + worst)

    def to_json(self) -> dict:
        return {"candidate": self.candidate, "geometric_mean": self.geometric_mean,
                "slower": list(self.slower), "faster": list(self.faster),
                "worst": list(self.worst) if self.worst else None,
                "validated_on": self.validated_on}


def evidence(rows: Sequence[dict], candidate: str) -> Evidence:
    mine = [r for r in rows if r["variant"] == candidate]
    ratios = [(r["benchmark"], r["vs_baseline"]) for r in mine if r["vs_baseline"] is not None]
    return Evidence(candidate, compare.geometric_mean(x for _, x in ratios),
                    tuple(r["benchmark"] for r in mine if r["verdict"] == verdict.SLOWER),
                    tuple(r["benchmark"] for r in mine if r["verdict"] == verdict.FASTER),
                    max(ratios, key=lambda p: p[1]) if ratios else None, len(ratios))


def format_table(work: ClassWork, rows: Sequence[dict]) -> str:
    """Each validation pipeline (by group) against the baseline, per candidate: its ratio,
    `+` where significantly faster, `-` where significantly slower; each group's and the
    overall geometric mean."""
    from farm.report.output import columns

    def cell(ratio: float | None, word: str | None) -> str:
        if ratio is None:
            return "-"
        return f"{ratio:.2f}x" + {verdict.FASTER: "+", verdict.SLOWER: "-"}.get(word or "", "")

    by = {(r["benchmark"], r["variant"]): r for r in rows}
    table = [["group", "pipeline", *work.candidates]]
    for group in work.groups:
        names = [n for n in group.members if n in work.benches]
        for n in names:
            table.append([group.label if n == names[0] else "", n, *(
                cell(by[(n, c)]["vs_baseline"], by[(n, c)]["verdict"]) if (n, c) in by
                else "-" for c in work.candidates)])
        if len(names) > 1:
            table.append(["", "geometric mean", *(
                cell(compare.geometric_mean(by[(n, c)]["vs_baseline"] for n in names
                                            if (n, c) in by and by[(n, c)]["vs_baseline"]),
                     None) for c in work.candidates)])
    table.append(["all", "geometric mean", *(
        cell(evidence(rows, c).geometric_mean, None) for c in work.candidates)])
    return columns(table) + ("\ntime with the model trained without the pipeline's group / "
                             "time with Halide's baseline weights (beam 32, median of paired "
                             "interleaved re-timings); + significantly faster, - slower")


def winner(all_evidence: Sequence[Evidence]) -> Evidence:
    """Slower on the fewest pipelines, then the fastest geometric mean."""
    return min(all_evidence, key=lambda e: (len(e.slower), e.geometric_mean or float("inf")))


# the whole training -----------------------------------------------------------------------

@dataclass
class Trained:
    rows: list[dict]
    evidence: list[Evidence]
    chosen: Evidence
    model: RegisteredModel
    weights_path: Path


def _judge_all(work: ClassWork, out: Path, models: Models, pool, retimes: int,
               progress: Callable[[str], None]) -> list[dict]:
    """Every validation pipeline judged (judge_pipeline), round robin over the devices; a
    pipeline an earlier run into `out` judged with the same weights is kept, and each new
    one is written the moment it is timed."""
    rows: list[dict] = []
    for i, name in enumerate(n for n in work.pipelines if n in work.benches):
        group = work.group_of(name).name
        wanted = {BASELINE: work.start.sha256,
                  **{c: models.weights[(c, group)].sha256 for c in work.candidates}}
        kept = _kept(out, name, wanted)
        if kept is not None:
            progress(f"{name}: judged by an earlier run into {out}, kept")
            rows += kept
            continue
        usable = pool.usable()
        if not usable:
            if pool.faults:
                raise pool.no_device_left()
            raise MissingPrerequisite("every device was lost while timing; see `farm "
                                      "devices`, fix them and rerun: what was timed is "
                                      f"kept in {out}")
        mine = judge_pipeline(work, name, models, pool, usable[i % len(usable)].info.id,
                              retimes, progress)
        comparison.write_rows(mine, SCHEMA, _kept_path(out, name))
        rows += mine
    return rows


def train_class_model(work: ClassWork, out: Path, *, device_ids: Sequence[str] | None = None,
                      address: str | None = None, retimes: int = DEFAULT_RETIMES,
                      force: bool = False, trainer: Trainer | None = None,
                      registry: Registry | None = None,
                      progress: Callable[[str], None] = print) -> Trained:
    for note in work.notes:
        progress(note)
    atomic.real_dir(out)
    validated = [g for g in work.groups if any(m in work.benches for m in g.members)]
    progress(f"class {work.device_class}: {plural(work.table.num_rows, 'row')} of "
             f"{plural(len(work.pipelines), 'pipeline')} from "
             f"{plural(len(work.sources), 'run')}; candidates {', '.join(work.candidates)}, "
             f"judged leave-family-out on {plural(len(work.benches), 'pipeline')} in "
             f"{plural(len(validated), 'group')}: "
             f"{', '.join(g.label for g in validated)}")
    with DeviceSession(address, holder=str(out)) as session:
        infos = class_devices(session.devices, device_ids, work.recorded_class, work.target)
        session.preflight(infos)
        models = train_candidates(work, out, validated, trainer, progress)
        rows = _judge_all(work, out, models, session.pool(infos, work.target), retimes,
                          progress)
        full = train_candidates(work, out, [None], trainer, progress)
    comparison.write_rows(rows, SCHEMA, out / "validation.parquet")
    found = [evidence(rows, c) for c in work.candidates]
    progress(format_table(work, rows))
    for e in found:
        progress(e.line())
    best = winner(found)
    weights = full.weights[(best.candidate, "")]
    path = out / "weights" / "best.weights"
    weights_module.write(weights, path)
    record = ModelRecord(
        device_class=work.device_class, sha256=weights.sha256, source=str(out.resolve()),
        promoted_at=now_iso(), kind=KIND, pipelines=list(work.pipelines),
        samples=work.table.num_rows, verdicts=[f"leave-family-out: {best.line()}"],
        extra={"evidence": best.to_json(), "sources": [str(s) for s in work.sources],
               "seeds": list(work.seeds), "retimes": retimes,
               "recipe": {"steps": work.steps, "rate": work.rate,
                          "bagged_share": retrain.BAGGED_SHARE}})
    atomic.write_json(out / "evidence.json", {
        "chosen": best.to_json(), "candidates": [e.to_json() for e in found],
        "record": record.to_json()})
    current = force or not best.slower
    model = (registry or Registry()).register(weights, record, current=current)
    return Trained(rows, found, best, model, path)
