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

Library code: every check that needs no work comes first (prepare, in
farm.workflows.evaluation), and errors are the farm's typed ones (farm.errors); the
command line prints them as one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from farm.candidate import BEAM_SEARCH, CandidateSpec
from farm.devices.timing import TimingConfig
from farm.errors import MissingPrerequisite
from farm.execution import compare
from farm.execution.session import DeviceSession
from farm.model import retrain, weights
from farm.model.trainer import HalideTrainer, Trainer
from farm.model.weights import Weights
from farm.paths import path_name
from farm.report import comparison
from farm.report.output import pyplot, save_figure
from farm.report.progress import plural
from farm.stats import verdict
from farm.store.records import PipelineRecord
from farm.workflows.bench import BUILD_TIMEOUT_S, DEFAULT_RETIMES
from farm.workflows.evaluation import (
    TRAIN_SEED,
    Evaluation,
    class_devices,
    rows_of,
    training_rows,
)

BASELINE, POOLED, LOO, OWN = "baseline", "pooled", "leave-one-out", "own"
HANDED = "handed-over"  # --on: the run's handed-over weights (best.weights)
JUDGED = "judged"  # --on --judge FILE: other weights of the run (a model it did not accept)
VARIANTS = (BASELINE, POOLED, LOO, HANDED, JUDGED, OWN)
POOLED_MODEL = "pooled"
SAME_WEIGHTS, SAME_SCHEDULE = "same weights as baseline", "same schedule as baseline"

SCHEMA = pa.schema([
    ("benchmark", pa.string()),
    ("group", pa.string()),  # the pipelines left out together, "+"-joined
    ("variant", pa.string()),  # baseline, pooled, leave-one-out, handed-over, judged, own
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


def train_models(ev: Evaluation, out: Path, trainer: Trainer | None = None,
                 progress: Callable[[str], None] = print) -> dict[str, Model]:
    """The pooled model and one leave-one-out model per group, from the start weights, each
    written to OUT/weights/NAME.weights with its training log beside it."""
    trainer = trainer or HalideTrainer()
    jobs = [(POOLED_MODEL, ())] + [(g.model, g.members) for g in ev.groups]
    models = {}
    for name, held_out in jobs:
        models[name] = train_one(ev, name, held_out, out / "weights", trainer, progress)
    return models


def train_one(ev: Evaluation, name: str, held_out: tuple[str, ...], out: Path, trainer: Trainer,
              progress: Callable[[str], None] = print) -> Model:
    rows = retrain.capped(training_rows(ev.table, ev.names, held_out), seed=TRAIN_SEED)
    leaked = rows_of(rows, held_out)
    if leaked:  # not `assert`: this must hold under python -O too
        raise AssertionError(f"{name}: {leaked} rows of the held-out {'+'.join(held_out)} "
                             "are in its training table")
    counts = {v["values"]: v["counts"] for v in pc.value_counts(rows["benchmark"]).to_pylist()}
    by_pipeline = {n: counts[n] for n in ev.names if n in counts}
    progress(f"training {name}: {plural(rows.num_rows, 'row')} of "
             f"{plural(len(by_pipeline), 'pipeline')}"
             + (f" (without {'+'.join(held_out)})" if held_out else "")
             + f", {plural(ev.steps, 'step')} at rate {ev.rate:g} from the start weights "
             "...")
    started = time.perf_counter()
    log = out / f"{path_name(name)}.log"  # loo-GROUP: pipelines' names (farm.paths)
    out.mkdir(parents=True, exist_ok=True)
    result = trainer.train(ev.run.sample_files, rows, ev.start, steps=ev.steps,
                           rate=ev.rate, num_cores=ev.manifest.parallelism, log_path=log)
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

@dataclass(frozen=True)
class _Variant:
    label: str
    weights: Weights | None
    model: str  # pooled, loo-GROUP, start, or the --weights-for file
    weights_file: str
    trained_on: int | None = None
    group_rows: int | None = None
    error: str = ""  # why it is not timed (a model that was not trained)


def variants_for(ev: Evaluation, name: str, models: Mapping[str, Model]) -> list[_Variant]:
    """What one pipeline is timed with: baseline, pooled, its leave-one-out model, own;
    with --on: baseline, the run's handed-over weights (or those --judge names), own."""
    group = ev.group_of(name)
    out = [_Variant(BASELINE, ev.start, "start", str(ev.run.weights_path(0)))]
    if ev.handed is not None:
        handed, path = ev.handed
        out.append(_Variant(JUDGED if ev.judged else HANDED, handed, Path(path).name, path))
    for label, model in ((POOLED, models.get(POOLED_MODEL)), (LOO, models.get(group.model))):
        if model is None:  # --on trains no model
            continue
        out.append(_Variant(label, model.weights, model.name, str(model.path or ""),
                            model.trained_on,
                            sum(model.by_pipeline.get(m, 0) for m in group.members),
                            "" if model.weights is not None else
                            f"not trained: {model.skipped}"))
    if name in ev.extra:
        own, path = ev.extra[name]
        out.append(_Variant(OWN, own, path, path))
    return out


def time_pipeline(ev: Evaluation, pipeline: PipelineRecord, models: Mapping[str, Model], pool,
                  device: str, retimes: int, progress: Callable[[str], None] = print
                  ) -> list[dict]:
    """Build `pipeline` with beam 32 and each variant's weights (identical weights once),
    re-time the distinct schedules interleaved `retimes` times on `device`: rows."""
    name, bench = pipeline.name, ev.benches[pipeline.name]
    variants = variants_for(ev, name, models)
    wanted = [compare.Variant(v.label, None if v.weights is None else CandidateSpec(
        bench, ev.target, v.weights, parallelism=ev.manifest.parallelism, **BEAM_SEARCH),
        against=None if v.label == BASELINE else BASELINE, error=v.error) for v in variants]
    building = compare.to_build(wanted, distinct=True)
    progress(f"{name}: building beam-32 with {', '.join(str(v.key) for v in building)} "
             "weights ...")
    started = time.perf_counter()
    built = compare.build(pool, wanted, BUILD_TIMEOUT_S, distinct=True)
    timed = sum(b.ready for b in built.values())
    progress(f"{name}: built in {time.perf_counter() - started:.0f} s; re-timing "
             f"{plural(timed, 'schedule')} x {retimes}, interleaved, on {device} ...")
    started = time.perf_counter()
    results = compare.retime(pool, built, ev.manifest.parallelism, TimingConfig(), retimes,
                             device=device)
    results = compare.confirm_slower(pool, built, results, ev.manifest.parallelism,
                                     TimingConfig(), retimes, device=device,
                                     say=lambda line: progress(f"{name}: {line}"))
    progress(f"{name}: timed in {time.perf_counter() - started:.0f} s")
    return [_row(ev, pipeline, v, results[v.label], BASELINE in results and
                 bool(results[BASELINE].retimes_ms), device) for v in variants]


def _row(ev: Evaluation, pipeline: PipelineRecord, v: _Variant, c: compare.Compared,
         base_timed: bool, device: str) -> dict:
    """The row of variant `v`: a schedule shared with the baseline is exactly as fast."""
    vd = c.verdict
    if v.label != BASELINE and not v.error and c.source == BASELINE:  # one binary
        word = SAME_WEIGHTS if c.built.same_why == compare.WEIGHTS and \
            c.built.same_as == BASELINE else SAME_SCHEDULE
        vd = verdict.Verdict(1.0, 1.0, 1.0, 0, word)
    error = c.error
    if not error and v.label != BASELINE and vd is None and not base_timed:
        error = "no baseline timing to compare with"
    return {"benchmark": pipeline.name, "group": ev.group_of(pipeline.name).name,
            "variant": v.label, "model": v.model, "weights_file": v.weights_file or None,
            "trained_on": v.trained_on, "group_rows_trained_on": v.group_rows,
            "same_as": c.built.same_as, "pairs": vd.pairs if vd is c.verdict and vd else None,
            **comparison.row(replace(c, error=error), vd,
                          v.weights.sha256 if v.weights else None),
            "device_id": device if c.ok_ms else None, "target": ev.target.compile}


# the whole ev ---------------------------------------------------------------

@dataclass
class Result:
    rows: list[dict]
    models: dict[str, Model]
    devices: list[str]


def run_evaluate(ev: Evaluation, out: Path, device_ids: Sequence[str] | None = None,
                 address: str | None = None, retimes: int = DEFAULT_RETIMES,
                 trainer: Trainer | None = None,
                 progress: Callable[[str], None] = print) -> Result:
    """Find the devices (before any work), train the models, then build and re-time each
    pipeline on one device of the run's class (round robin over the devices)."""
    for line in ev.warnings:
        progress(line)
    if retimes < verdict.MIN_PAIRS:
        progress(f"warning: --retimes {retimes} is under {verdict.MIN_PAIRS}: no ratio or "
                 "verdict can be computed (they need that many paired re-timings)")
    with DeviceSession(address, holder=str(out)) as session:
        infos = class_devices(session.devices, device_ids, ev.manifest.device_class,
                              ev.target)
        session.preflight(infos)  # refused now, not after minutes of training
        models = {} if ev.handed is not None else train_models(ev, out, trainer, progress)
        pool = session.pool(infos, ev.target)
        rows: list[dict] = []
        for i, pipeline in enumerate(ev.pipelines):
            usable = pool.usable()
            if not usable:
                if pool.faults:  # the lasting faults' causes and fixes
                    raise pool.no_device_left()
                raise MissingPrerequisite("every device was lost while timing; see `farm "
                                          "devices`, fix them and run again")
            kept = kept_rows(out, ev, pipeline, models)
            if kept is not None:
                progress(f"{pipeline.name}: timed by an earlier evaluate into {out}, kept "
                         "(a new --out times it again)")
                rows += kept
                continue
            device = usable[i % len(usable)].info.id
            mine = time_pipeline(ev, pipeline, models, pool, device, retimes, progress)
            keep_rows(out, pipeline, mine)  # at once: a later pipeline may fail (memory)
            rows += mine
            for event in pool.events:
                progress(f"warning: {event}")
            pool.events.clear()
    return Result(rows, models, [i.id for i in infos])


# each pipeline's rows as soon as it is timed ----------------------------------------------

def _kept_path(out: Path, pipeline: PipelineRecord) -> Path:
    return out / "pipelines" / f"{path_name(pipeline.name)}.parquet"


def keep_rows(out: Path, pipeline: PipelineRecord, rows: list[dict]) -> None:
    """OUT/pipelines/NAME.parquet: the pipeline's rows, written whole the moment it is timed
    (an evaluation of five apps once lost four timed pipelines when the fifth ran out of
    memory)."""
    from farm.atomic import real_dir

    real_dir(out / "pipelines", out)
    comparison.write_rows(rows, SCHEMA, _kept_path(out, pipeline))


def kept_rows(out: Path, ev: Evaluation, pipeline: PipelineRecord,
              models: Mapping[str, Model]) -> list[dict] | None:
    """The rows an earlier evaluate into `out` kept for `pipeline`, when they time what this
    one would (the same variants with the same weights, on this target); else None."""
    path = _kept_path(out, pipeline)
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException):  # damaged: timed again
        return None
    wanted = {(v.label, v.weights.sha256 if v.weights else None)
              for v in variants_for(ev, pipeline.name, models)}
    have = {(r["variant"], r["weights_sha256"]) for r in rows}
    same = have == wanted and all(r["target"] == ev.target.compile for r in rows)
    return rows if same else None


# output -----------------------------------------------------------------------------

def format_table(rows: list[dict]) -> str:
    shown = comparison.present(rows, VARIANTS)
    groups = comparison.grouped(rows, lambda r: (r["benchmark"],)).items()
    return comparison.format_table(
        ("benchmark", "left out with"),
        (((bench, _others(bench, mine)), mine) for (bench,), mine in groups), shown,
        [(f"{v} / baseline", v) for v in shown if v != BASELINE],
        lambda mine, v: comparison.versus(mine.get(v), (SAME_WEIGHTS, SAME_SCHEDULE))) + (
        "\nagainst beam-32 with the start weights (baseline): median of paired interleaved "
        "re-timings with a 95% bootstrap interval (docs/autotuning.md: how ratios read)")


def _others(bench: str, mine: Mapping[str, dict]) -> str:
    """The pipelines left out with `bench` ("-": none)."""
    group = next(iter(mine.values()))["group"].split("+")
    return "+".join(m for m in group if m != bench) or "-"


def summary(rows: list[dict]) -> list[str]:
    """Per variant: the geometric mean of its ratio to baseline across pipelines, and how
    many pipelines it makes significantly faster or slower."""
    lines = []
    for variant in comparison.present(rows, VARIANTS):
        if variant == BASELINE:
            continue
        mine = [r for r in rows if r["variant"] == variant]
        ratios = [r["vs_baseline"] for r in mine if r["vs_baseline"] is not None]
        words = [r["verdict"] for r in mine]
        mean = compare.geometric_mean(ratios)
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
    return comparison.write_results(rows, SCHEMA, out / "evaluate.parquet", out / "evaluate.png",
                                 lambda rows, path: plot(rows, path, title))


def plot(rows: list[dict], path: Path, title: str = "") -> Path:
    """Per pipeline, each variant's time / baseline with its 95% interval; 1.0 marked."""
    plt = pyplot()
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    shown = [v for v in comparison.present(rows, VARIANTS) if v != BASELINE]
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
