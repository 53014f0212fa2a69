"""The end of an autotuning run: re-time the finalists, keep the best schedule and weights.

One timing per sample misleads (Halide's loop measured a schedule at 1.54 ms
that re-timed at 0.52), so before anything is called best, the fastest
samples and the beam-search schedules of several weights are re-timed,
interleaved, on one device, with the benchmark's manual schedule beside them
as a reference (it cannot win: best/ holds an autoscheduled one). The weights:
the start weights, the accepted (latest) ones, and final candidates trained on
every round. Each finalist gets a verdict against beam search with the start
weights (farm.stats.verdict), and the re-timing stops early once all are decided.

The weights handed to the user (best.weights) are those whose beam search is
significantly faster than the start weights' and fastest among such; when none
is, the start weights themselves: tuning never hands over a slower model.
Artifacts kept from the rounds are not rebuilt.

A campaign's end trains the final models once, on every pipeline, then re-times each
pipeline's finalists into its own best/NAME/; its best.weights are the weights whose beam
search is significantly faster than the start weights' on some pipeline and slower on none
(the lowest geometric mean of the ratios among such).

The tuner hands over values (FinalInputs) and gets one back (FinalResult): the
re-timing records (best/runtime.json, per pipeline) and the best-weights record
(weights/best.json).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import ray

from farm.build import compiler
from farm.candidate import BEAM_SEARCH, OK, Artifact, CandidateSpec, Library
from farm.errors import WeightsError
from farm.execution import compare
from farm.machine.toolchain import runtime_library
from farm.model import weights
from farm.report.progress import Progress, plural
from farm.search.planners import Role
from farm.search.plans import weights_for as plan_weights_for
from farm.stats import verdict
from farm.store.records import (
    MANUAL_LABEL,
    START_LABEL,
    BestWeightsRecord,
    ComparedBeam,
    FinalistRecord,
    RetimingRecord,
    VerdictRecord,
)
from farm.store.rundir import RunDir
from farm.store.samples import FINALIST_COLUMNS
from farm.tuning.confirm import Confirmation, ToConfirm, confirm
from farm.tuning.final_inputs import FinalInputs, FinalPipeline, FinalResult, FinalSettings
from farm.tuning.final_models import final_weights

# Repeats per re-timing: the median of several short, interleaved re-timings resists the
# drift of a noisy machine better than fewer long ones, for the same time.
RETIME_REPEATS = 5
FINALIST_TIMEOUT_S = 900.0  # a finalist's build or timing that takes longer is dropped


@dataclass
class Finalist:
    label: str
    spec: CandidateSpec
    sample: dict | None = None  # the row it came from
    weights_file: str = ""  # under RUN_DIR/weights/, for beam-search finalists
    built_as: str | None = None  # the sample whose kept artifact this is
    retimes_ms: tuple[float | None, ...] = ()  # aligned by re-timing round
    library: Library | None = None
    schedule_source: str | None = None
    reference: bool = False  # timed for comparison only (the manual schedule)
    also: list[str] = field(default_factory=list)  # other labels for the same schedule
    pipeline: str = ""  # its pipeline's name in a campaign
    round_row: dict | None = None  # the sample row of its timing during a round, if any
    artifact: Artifact | None = None  # what is re-timed (a confirmation's)

    vs_start: verdict.Verdict | None = None  # against beam search with the start weights

    @property
    def median_ms(self) -> float | None:
        return verdict.median(self.retimes_ms)

    @property
    def retimed_ms(self) -> float:
        """median_ms of a finalist known to have been re-timed."""
        ms = self.median_ms
        assert ms is not None, f"{self.label} was not re-timed"
        return ms

    @property
    def is_start(self) -> bool:
        """Beam search with the start weights: what every verdict compares with."""
        return START_LABEL in (self.label, *self.also)

    @property
    def is_beam(self) -> bool:
        search = (self.spec.beam_size, self.spec.random_dropout)
        return search == (BEAM_SEARCH["beam_size"], BEAM_SEARCH["random_dropout"])


def _identity(spec: CandidateSpec) -> tuple:
    """Specs with equal identity give the same schedule (beam search ignores the seed)."""
    if spec.is_manual:
        return ("manual",)
    seed = None if spec.random_dropout >= 100 else spec.seed
    assert spec.weights is not None  # only the manual schedule has no weights
    return (spec.weights.sha256, spec.beam_size, spec.random_dropout, seed, spec.parallelism)


def finalize(inputs: FinalInputs, pool, trainer, progress: Progress) -> FinalResult | None:
    """Re-time the finalists of each pipeline of a run on `pool`
    (farm.execution.pool.DevicePool), with final models from `trainer` (farm.model.trainer)
    trained once on every pipeline; write each
    pipeline's best/ and the run's best.weights. None when no finalist could be re-timed
    (best/ and best.weights are then left as they were)."""
    run = inputs.run
    finals = final_weights(inputs, trainer)
    ok = [r for r in run.samples.read(FINALIST_COLUMNS).to_pylist() if r["status"] == OK]
    retimings: dict[str, RetimingRecord] = {}
    beams: list[Finalist] = []
    for pipe in inputs.pipelines:
        rows = [r for r in ok if not pipe.scope or r["benchmark"] == pipe.scope]
        finalists = _finalists(inputs, pipe, rows, finals)
        progress.message(f"{pipe.benchmark.label + ': ' if pipe.scope else ''}re-timing "
                         f"{plural(len(finalists), 'finalist')}, interleaved, up to "
                         f"{plural(inputs.settings.retimes, 'time')} each")
        _retime(finalists, pool, inputs.settings, inputs.artifacts)
        timed = [f for f in finalists if f.median_ms is not None]
        contenders = [f for f in timed if not f.reference]
        if not contenders:
            progress.message(f"warning: no finalist of {pipe.benchmark.label} could be "
                             "re-timed; its best/ is unchanged")
            continue
        winner = min(contenders, key=lambda f: f.retimed_ms)
        retimings[pipe.benchmark.label] = _write_best(run, winner, timed, inputs.settings,
                                                     pipe)
        beams += [f for f in timed if f.is_beam]
    if not retimings:
        return None
    return FinalResult(retimings, _update_best_weights(
        run, beams, lambda winner, chosen: _confirm(winner, chosen, beams, pool,
                                                    inputs.settings, progress)))


def _finalists(inputs: FinalInputs, pipe: FinalPipeline, ok: list[dict],
               finals: list[tuple[str, Path]]) -> list[Finalist]:
    """A pipeline's fastest distinct samples, beam search with each weights, the manual
    schedule."""
    run, s = inputs.run, inputs.settings
    base = CandidateSpec(pipe.benchmark, s.target, s.start_weights, parallelism=s.parallelism)
    finalists: list[Finalist] = []
    keys: set[str] = set()
    for row in sorted(ok, key=lambda r: r["runtime_ms"]):
        if len(finalists) == inputs.fastest:
            break
        spec = spec_from_row(row, base, run)
        if row["schedule_key"] not in keys and spec is not None:
            keys.add(row["schedule_key"])
            finalists.append(Finalist(f"sample {row['sample_id']}", spec, row,
                                      _file_of(run, row, spec.weights),
                                      built_as=row["sample_id"], pipeline=pipe.scope,
                                      round_row=row))
    beams = [("start weights", run.weights_path(0), pipe.start_sample),
             ("latest.weights", run.latest_weights, _planned_by(inputs, pipe,
                                                                run.latest_weights)),
             *((name, path, None) for name, path in finals)]
    for label, path, sample in beams:
        spec = replace(base, weights=weights.load(path), seed=0, **BEAM_SEARCH)
        twin = next((f for f in finalists if _identity(f.spec) == _identity(spec)), None)
        if twin is None:
            timed_in = next((r for r in ok if r["sample_id"] == sample), None) if sample \
                else None
            finalists.append(Finalist(f"beam search with {label}", spec, None, path.name,
                                      built_as=sample, pipeline=pipe.scope,
                                      round_row=timed_in))
        else:
            twin.also.append(f"beam search with {label}")
    finalists.append(Finalist(MANUAL_LABEL, compiler.manual_spec(base), reference=True,
                              pipeline=pipe.scope))
    return finalists


def _file_of(run, row: dict, used) -> str:
    """The name of the run's weights file that holds `used`, or "" (perturbed weights)."""
    for path in (run.weights_path(row["round"] - 1), run.weights_path(0),
                 run.provisional_used(row["round"])):
        if path.exists() and weights.load(path).sha256 == used.sha256:
            return path.name
    return ""


def _planned_by(inputs: FinalInputs, pipe: FinalPipeline, path: Path) -> str | None:
    """The sample of the newest round's beam search, if `path` holds the weights it used."""
    if pipe.beam_sample is None or inputs.committed < 1:
        return None
    used = inputs.run.weights_path(inputs.committed - 1)
    return pipe.beam_sample if weights.load(used).sha256 == weights.load(path).sha256 \
        else None


def _get(ref):
    """A Ray result, or None when the worker or device behind it failed."""
    try:
        return ray.get(ref, timeout=FINALIST_TIMEOUT_S)
    except (ray.exceptions.RayError, TimeoutError):
        return None


def _retime(finalists: list[Finalist], pool, s, kept: Mapping[str, Artifact]) -> None:
    """Time each finalist `s.retimes` times, with a verdict against the start weights' beam
    search; artifacts kept from the rounds are not rebuilt. The re-timing stops early once
    every contender's verdict is decided."""
    start = next((i for i, f in enumerate(finalists) if f.is_start), None)
    built = compare.build(pool, [compare.Variant(
        i, f.spec, kept[f.built_as] if f.built_as is not None and f.built_as in kept else None,
        against=None if i == start else start) for i, f in enumerate(finalists)],
        FINALIST_TIMEOUT_S)
    ready = [i for i in range(len(finalists)) if built[i].ready]
    decided = compare.settled((i, start) for i in ready if i != start
                              and not finalists[i].reference) if start in ready else None
    results = compare.retime(pool, built, s.parallelism,
                             replace(s.timing, repeats=RETIME_REPEATS), s.retimes,
                             decided=decided, timeout_s=FINALIST_TIMEOUT_S)
    for i in ready:
        f, c = finalists[i], results[i]
        f.retimes_ms, f.vs_start = c.retimes_ms, c.verdict
        if built[i].binary is not None:
            f.artifact = Artifact(built[i].binary, built[i].library)
        f.library = _get(c.built.library)
        f.schedule_source = c.built.schedule_source


def _write_best(run: RunDir, winner: Finalist, timed: list[Finalist],
                s: FinalSettings, pipe: FinalPipeline) -> RetimingRecord:
    """best/ (a campaign's best/PIPELINE/): NAME.a and NAME.h (link with halide_runtime.a),
    NAME.schedule.h, NAME.weights, runtime.json (the re-timing record, returned), replaced
    as a whole."""
    fresh = run.best.staging(pipe.scope)
    library = winner.library
    if library is None:  # its build gave no library (synthetic work): compile it here
        compiler.write_library(winner.spec, fresh)
        name = compiler.function_name(winner.spec)
    else:
        name = library.name
        (fresh / f"{name}.a").write_bytes(library.archive)
        (fresh / f"{name}.h").write_text(library.header)
        shutil.copyfile(runtime_library(s.target.compile), fresh / "halide_runtime.a")
        source = winner.schedule_source
        if source is None:  # its artifacts were kept from the rounds: it is a sample
            assert winner.built_as is not None
            source = _schedule_source(run, winner.built_as)
        (fresh / f"{name}.schedule.h").write_text(source)
    assert winner.spec.weights is not None  # the manual schedule is a reference, never a winner
    weights.write(winner.spec.weights, fresh / f"{name}.weights")
    record = RetimingRecord(
        benchmark=pipe.benchmark.label, runtime_ms=winner.retimed_ms, finalist=winner.label,
        retimes_ms=list(winner.retimes_ms), weights=winner.weights_file or None,
        # exactly the weights that planned it
        weights_file=str(run.best_path(pipe.scope).relative_to(run.path) / f"{name}.weights"),
        recorded_ms=winner.sample["runtime_ms"] if winner.sample else None,
        seed=winner.spec.seed, beam_size=winner.spec.beam_size,
        random_dropout=winner.spec.random_dropout, parallelism=winner.spec.parallelism,
        target=s.target.compile, library=f"{name}.a",
        link_with="halide_runtime.a" if library is not None else None,
        finalists=[FinalistRecord(label=f.label, median_ms=f.median_ms,
                                  retimes_ms=list(f.retimes_ms), weights=f.weights_file,
                                  beam_search=f.is_beam, reference=f.reference,
                                  also=list(f.also), vs_start=_verdict(f.vs_start),
                                  round_ms=f.round_row["runtime_ms"] if f.round_row else None,
                                  round_no=f.round_row["round"] if f.round_row else None)
                   for f in timed])
    run.best.publish(fresh, record, pipe.scope)
    return record


def _verdict(v: verdict.Verdict | None) -> VerdictRecord | None:
    return VerdictRecord.from_json(v.as_json()) if v is not None else None


def _schedule_source(run, sample: str) -> str:
    import pyarrow.dataset as ds

    rows = run.samples.read(["schedule_source"], filter=ds.field("sample_id") == sample)
    return rows["schedule_source"][0].as_py() or ""


def _update_best_weights(
        run: RunDir, beams: list[Finalist],
        confirm_with: Callable[[Finalist, list[Finalist]], Confirmation] | None = None
) -> BestWeightsRecord:
    """best.weights: of the weights whose beam search is significantly faster than the
    start weights' on some pipeline and significantly slower on none, those with the lowest
    geometric mean of their ratios (one pipeline: the fastest), if a fresh re-timing
    confirms them (farm.tuning.confirm: chosen among several on one re-timing, they would
    carry the winner's curse; `confirm_with(winner, its beams)` re-times them, and without
    it the choice stands unconfirmed); best.json says which and why (returned)."""
    compared = {(f"{f.pipeline}: " if f.pipeline else "") + f.label:
                ComparedBeam(weights=f.weights_file, median_ms=f.median_ms,
                             vs_start=_verdict(f.vs_start)) for f in beams}
    start = next((f for f in beams if f.is_start), None)
    if start is None:  # nothing to judge against: hand over nothing but the start weights
        handed = weights.load(run.weights_path(0))
        record = BestWeightsRecord(
            weights=run.weights_path(0).name, weights_sha256=handed.sha256,
            reason="the start weights' beam search could not be re-timed, so no tuned "
                   "weights could be judged; the start weights are handed over",
            compared=compared)
        run.write_best_weights(handed, record)
        return record
    by_weights: dict[str, list[Finalist]] = {}
    for f in beams:
        if f.vs_start is not None and f.spec.weights is not None:
            by_weights.setdefault(f.spec.weights.sha256, []).append(f)
    confirmed: Finalist | None = None  # the chosen weights' beam search, re-timed afresh
    confirmation: dict[str, ComparedBeam] = {}
    better = {sha: fs for sha, fs in by_weights.items()
              if any(f.vs_start.word == verdict.FASTER for f in fs if f.vs_start)
              and not any(f.vs_start.word == verdict.SLOWER for f in fs if f.vs_start)}
    if better:
        chosen, winner, reason = _chosen(better)
        if confirm_with is not None:
            confirmed, found = winner, confirm_with(winner, chosen)
            confirmation = found.record(winner.weights_file)
            reason += f"; {found.reason}"
            if not found.passed:
                winner = start
                reason += "; the start weights are handed over"
    else:
        winner = start
        several = len({f.pipeline for f in beams}) > 1
        reason = ("no tuned weights' beam search was significantly faster than the start "
                  "weights'" + (" on some pipeline and slower on none" if several else "")
                  + "; the start weights are handed over")
    assert winner.spec.weights is not None  # a beam search's spec has weights
    record = BestWeightsRecord(
        weights=winner.weights_file, weights_sha256=winner.spec.weights.sha256, reason=reason,
        beam_ms=winner.median_ms,
        measured=f"beam search re-timed {plural(len(winner.retimes_ms), 'time')} at the end of the "
                 "run, interleaved" + (f" ({winner.pipeline})" if winner.pipeline else ""),
        sample_id=winner.built_as, compared=compared,
        confirmed_for=confirmed.spec.weights.sha256 if confirmed and confirmed.spec.weights
        else None, confirmation=confirmation)
    run.write_best_weights(winner.spec.weights, record)
    return record


def _chosen(better: dict[str, list[Finalist]]) -> tuple[list[Finalist], Finalist, str]:
    """Of the weights significantly faster somewhere and slower nowhere (their beam-search
    finalists by weights), those with the lowest geometric mean ratio: their finalists, the
    fastest of them, and why in words."""
    def score(fs: list[Finalist]) -> float:
        mean = compare.geometric_mean(f.vs_start.ratio for f in fs
                                      if f.vs_start and f.vs_start.ratio)
        return math.inf if mean is None else mean

    chosen = min(better.values(), key=score)
    winner = min(chosen, key=lambda f: f.retimed_ms)
    assert winner.vs_start is not None  # every one of `better` has a verdict
    if len(chosen) == 1 and not winner.pipeline:
        return chosen, winner, (f"its beam search is {winner.vs_start.describe()} than with "
                                "the start weights")
    faster = sum(f.vs_start.word == verdict.FASTER for f in chosen if f.vs_start)
    return chosen, winner, (f"its beam search is significantly faster than with the start "
                            f"weights on {faster} of {plural(len(chosen), 'pipeline')} and "
                            f"slower on none (geometric mean {verdict.factor(score(chosen))})")


def _confirm(winner: Finalist, chosen: list[Finalist], beams: list[Finalist], pool,
             s: FinalSettings, progress: Progress) -> Confirmation:
    """Re-time the chosen weights' beam searches afresh against the start weights', on
    every pipeline they were chosen on (their binaries, not built again)."""
    starts = {f.pipeline: f for f in beams if f.is_start}
    mine = [f for f in chosen if f.pipeline in starts]
    progress.message(f"confirming {winner.weights_file or winner.label} on a fresh "
                     f"re-timing against the start weights "
                     f"({plural(len(mine), 'pipeline')}, {plural(s.retimes, 'time')} each)")
    assert winner.spec.weights is not None  # a beam search's spec has weights
    return confirm(pool, s, winner.spec.weights, [
        ToConfirm(f.pipeline or f.spec.benchmark.label, f.spec.benchmark, f.artifact,
                  starts[f.pipeline].artifact) for f in mine])


def spec_from_row(row: dict, base: CandidateSpec, run: RunDir) -> CandidateSpec | None:
    """Rebuild a sample's candidate: same seed, search settings and weights; None when its
    weights cannot be rebuilt (a file of the run is missing or was changed)."""
    paths = {Role.ACCEPTED: run.weights_path(row["round"] - 1), Role.START: run.weights_path(0),
             Role.PROVISIONAL: run.provisional_used(row["round"])}
    try:
        used = plan_weights_for(row, lambda role: weights.load(paths[role]))
    except (ValueError, WeightsError):  # a planner of none, or its weights lost
        return None
    if row.get("weights_sha256") and used.sha256 != row["weights_sha256"]:
        return None
    return replace(base, weights=used, beam_size=row["beam_size"],
                   random_dropout=row["random_dropout"], seed=row["seed"],
                   parallelism=row["parallelism"])
