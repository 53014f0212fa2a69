"""The end of an autotuning run: re-time the finalists, keep the best schedule and weights.

One timing per sample misleads (Halide's loop measured a schedule at 1.54 ms
that re-timed at 0.52), so before anything is called best, the fastest
samples and the beam-search schedules of several weights are re-timed,
interleaved, on one device, with the benchmark's manual schedule beside them
as a reference (it cannot win: best/ holds an autoscheduled one). The weights:
the start weights, the accepted (latest) ones, and final candidates trained on
every round. Each finalist gets a verdict against beam search with the start
weights (farm.verdict), and the re-timing stops early once all are decided.

The weights handed to the user (best.weights) are those whose beam search is
significantly faster than the start weights' and fastest among such; when none
is, the start weights themselves: tuning never hands over a slower model.
Artifacts kept from the rounds are not rebuilt.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import ray

from farm import acceptance, build, costmodel, verdict, weights
from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, OK, CandidateSpec, Library
from farm.errors import WeightsError
from farm.plan import weights_for as plan_weights_for
from farm.records import sample_id
from farm.rundir import RunDir, read_json, write_json
from farm.toolchain import runtime_library

TOP_SAMPLES = 2  # fastest distinct samples re-timed at the end
# Repeats per re-timing: the median of several short, interleaved re-timings resists the
# drift of a noisy machine better than fewer long ones, for the same time.
RETIME_REPEATS = 5
# Final candidate models, trained on every round: their beam search is judged by re-timing,
# not by held-out ranking, so a more aggressive setting is safe to try here.
FINAL_SETTINGS = (acceptance.Setting("final-chain-fast", "current", 1e-3),
                  acceptance.Setting("final-fresh-long", "start", 1e-3,
                                     4 * costmodel.DEFAULT_STEPS),
                  acceptance.Setting("final-fresh-longer", "start", 1e-3,
                                     16 * costmodel.DEFAULT_STEPS))
START_LABEL = "beam search with start weights"
FINALIST_TIMEOUT_S = 900.0  # a finalist's build or timing that takes longer is dropped
ROW_COLUMNS = ["sample_id", "round", "index", "status", "runtime_ms", "schedule_key", "seed",
               "beam_size", "random_dropout", "parallelism", "planner", "attempts",
               "weights_sha256"]


@dataclass
class TuneSummary:
    run_dir: Path
    rounds: int
    rows: int
    ok: int
    distinct: int
    best_ms: float | None = None
    best_schedule: Path | None = None
    best_weights: Path | None = None
    latest_weights: Path | None = None
    command: str = ""
    stopped: str = ""  # why the run stopped before --rounds, if it did
    elapsed_s: float = 0.0
    best_weights_reason: str = ""  # why best.weights are the weights they are


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

    vs_start: verdict.Verdict | None = None  # against beam search with the start weights

    @property
    def median_ms(self) -> float | None:
        return verdict.median(self.retimes_ms)

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
    return (spec.weights.sha256, spec.beam_size, spec.random_dropout, seed, spec.parallelism)


def finalize(t, builder, pool) -> None:
    """Re-time the finalists of run `t` (a tuner._Tuning); write best/ and best.weights."""
    run, s = t.run_dir, t.s
    base = CandidateSpec(s.benchmark, s.target, s.start_weights, parallelism=s.parallelism)
    table = run.samples.read(ROW_COLUMNS)
    ok = sorted((r for r in table.to_pylist() if r["status"] == OK),
                key=lambda r: r["runtime_ms"])
    finalists, keys = [], set()
    for row in ok:
        if len(finalists) == TOP_SAMPLES:
            break
        spec = spec_from_row(row, base, run)
        if row["schedule_key"] not in keys and spec is not None:
            keys.add(row["schedule_key"])
            finalists.append(Finalist(f"sample {row['sample_id']}", spec, row,
                                      _file_of(run, row, spec.weights),
                                      built_as=row["sample_id"]))
    beams = [("start weights", run.weights_path(0), sample_id(t.manifest.run_id, 1, 0)),
             ("latest.weights", run.latest_weights, _planned_by(t, run.latest_weights)),
             *((name, path, None) for name, path in _final_weights(t))]
    for label, path, sample in beams:
        spec = replace(base, weights=weights.load(path), seed=0, **BEAM_SEARCH)
        twin = next((f for f in finalists if _identity(f.spec) == _identity(spec)), None)
        if twin is None:
            finalists.append(Finalist(f"beam search with {label}", spec, None, path.name,
                                      built_as=sample))
        else:
            twin.also.append(f"beam search with {label}")
    finalists.append(Finalist("manual schedule", build.manual_spec(base), reference=True))
    t.progress.message(f"re-timing {len(finalists)} finalists, interleaved, up to "
                       f"{s.retimes} times each")
    _retime(finalists, builder, pool, s, t.artifacts)
    timed = [f for f in finalists if f.median_ms is not None]
    contenders = [f for f in timed if not f.reference]
    if not contenders:
        t.progress.message("warning: no finalist could be re-timed; best/ is unchanged")
        return
    winner = min(contenders, key=lambda f: f.median_ms)
    _write_best(run, winner, timed, s)
    _update_best_weights(run, [f for f in timed if f.is_beam])


def _file_of(run, row: dict, used) -> str:
    """The name of the run's weights file that holds `used`, or "" (perturbed weights)."""
    for path in (run.weights_path(row["round"] - 1), run.weights_path(0),
                 run.provisional_used(row["round"])):
        if path.exists() and weights.load(path).sha256 == used.sha256:
            return path.name
    return ""


def _planned_by(t, path) -> str | None:
    """The sample of the newest round's beam search, if `path` holds the weights it used."""
    if t._beam_sample is None or t.committed < 1:
        return None
    used = t.run_dir.weights_path(t.committed - 1)
    return t._beam_sample if weights.load(used).sha256 == weights.load(path).sha256 else None


def _final_weights(t) -> list[tuple[str, object]]:
    """Final candidate models trained on every round, written as weights/NAME.weights."""
    run, s = t.run_dir, t.s
    table = costmodel.capped(run.samples.read(costmodel.TRAIN_COLUMNS), seed=t.committed)
    latest = weights.load(run.latest_weights)
    out = []
    for setting in FINAL_SETTINGS:
        initial = latest if setting.start_from == "current" else s.start_weights
        steps = setting.steps * s.train_steps // costmodel.DEFAULT_STEPS
        result = costmodel.train(run.sample_files, table, initial, steps=steps,
                                 rate=setting.rate, num_cores=s.parallelism,
                                 log_path=run.path / "training" / f"{setting.name}.log")
        if result.weights is None:
            continue
        path = run.path / "weights" / f"{setting.name}.weights"
        weights.write(result.weights, path)
        out.append((setting.name, path))
    return out


def _get(ref):
    """A Ray result, or None when the worker or device behind it failed."""
    try:
        return ray.get(ref, timeout=FINALIST_TIMEOUT_S)
    except (ray.exceptions.RayError, TimeoutError):
        return None


def _retime(finalists: list[Finalist], builder, pool, s, kept: dict) -> None:
    """Time each finalist `s.retimes` times; artifacts kept from the rounds are not rebuilt."""
    artifacts, building = {}, []
    for f in finalists:
        if f.built_as in kept:
            artifacts[id(f)] = kept[f.built_as]
        else:
            building.append((f, *builder.build(f.spec)))
    for f, meta, binary, library in building:
        result = _get(meta)
        if result is not None and result.ok:
            artifacts[id(f)] = (binary, library)
            f.schedule_source = result.schedule.source
    ready = {id(f): (f, artifacts[id(f)]) for f in finalists if id(f) in artifacts}
    start = next((k for k, (f, _) in ready.items() if f.is_start), None)

    def decided(times) -> bool:  # every contender's verdict against the start weights' beam
        return start is not None and all(
            verdict.compare(times[k], times[start]).decided
            for k, (f, _) in ready.items() if k != start and not f.reference)

    times = pool.retime({k: binary for k, (_, (binary, _)) in ready.items()}, s.parallelism,
                        replace(s.timing, repeats=RETIME_REPEATS), s.retimes, decided=decided,
                        timeout_s=FINALIST_TIMEOUT_S)
    for key, (f, (_, library)) in ready.items():
        f.retimes_ms = tuple(times.get(key, ()))
        f.library = _get(library)
        if start is not None and key != start and key in times:
            f.vs_start = verdict.compare(times[key], times[start])


def _write_best(run, winner: Finalist, timed: list[Finalist], s) -> None:
    """best/: NAME.a and NAME.h (link with halide_runtime.a), NAME.schedule.h, runtime.json."""
    fresh = run.path / ".best.new"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    library = winner.library
    if library is None:  # its build gave no library (synthetic work): compile it here
        build.write_library(winner.spec, fresh)
        name = build.function_name(winner.spec)
    else:
        name = library.name
        (fresh / f"{name}.a").write_bytes(library.archive)
        (fresh / f"{name}.h").write_text(library.header)
        shutil.copyfile(runtime_library(s.target.compile), fresh / "halide_runtime.a")
        source = winner.schedule_source
        if source is None:
            source = _schedule_source(run, winner.built_as)
        (fresh / f"{name}.schedule.h").write_text(source)
    weights.write(winner.spec.weights, fresh / f"{name}.weights")
    write_json(fresh / "runtime.json", {
        "benchmark": s.benchmark.name, "runtime_ms": winner.median_ms,
        "retimes_ms": winner.retimes_ms, "finalist": winner.label,
        "weights": winner.weights_file or None,
        "weights_file": f"best/{name}.weights",  # exactly the weights that planned it
        "recorded_ms": winner.sample["runtime_ms"] if winner.sample else None,
        "seed": winner.spec.seed, "beam_size": winner.spec.beam_size,
        "random_dropout": winner.spec.random_dropout, "parallelism": winner.spec.parallelism,
        "target": s.target.compile, "library": f"{name}.a",
        "link_with": "halide_runtime.a" if library is not None else None,
        "finalists": [{"label": f.label, "median_ms": f.median_ms, "retimes_ms": f.retimes_ms,
                       "weights": f.weights_file, "beam_search": f.is_beam,
                       "reference": f.reference, "also": f.also,
                       "vs_start": f.vs_start.as_json() if f.vs_start else None}
                      for f in timed]})
    old = run.path / ".best.old"
    shutil.rmtree(old, ignore_errors=True)
    if run.best_dir.exists():
        os.replace(run.best_dir, old)
    os.replace(fresh, run.best_dir)
    shutil.rmtree(old, ignore_errors=True)


def _schedule_source(run, sample: str) -> str:
    import pyarrow.dataset as ds

    rows = run.samples.read(["schedule_source"], filter=ds.field("sample_id") == sample)
    return rows["schedule_source"][0].as_py() or ""


def _update_best_weights(run, beams: list[Finalist]) -> None:
    """best.weights: the fastest beam search significantly faster than the start weights'."""
    start = next((f for f in beams if f.is_start), None)
    if start is None:  # nothing to judge against: hand over nothing but the start weights
        weights.write(weights.load(run.weights_path(0)), run.best_weights)
        write_json(run.best_weights_record, {
            "weights": run.weights_path(0).name, "reason": "the start weights' beam search "
            "could not be re-timed, so no tuned weights could be judged; the start weights "
            "are handed over"})
        return
    better = [f for f in beams if f.vs_start is not None and f.vs_start.word == verdict.FASTER]
    if better:
        winner = min(better, key=lambda f: f.median_ms)
        reason = (f"its beam search is {winner.vs_start.describe()} than with the start "
                  "weights")
    else:
        winner = start
        reason = ("no tuned weights' beam search was significantly faster than the start "
                  "weights'; the start weights are handed over")
    weights.write(winner.spec.weights, run.best_weights)
    write_json(run.best_weights_record, {
        "weights": winner.weights_file, "beam_ms": winner.median_ms,
        "weights_sha256": winner.spec.weights.sha256, "reason": reason,
        "measured": f"beam search re-timed {len(winner.retimes_ms)} times at the end of the "
                    "run, interleaved",
        "sample_id": winner.built_as,
        "compared": {f.label: {"weights": f.weights_file, "median_ms": f.median_ms,
                               "vs_start": f.vs_start.as_json() if f.vs_start else None}
                     for f in beams}})


def summary(t, stopped: str):
    run, s = t.run_dir, t.s
    table = run.samples.read(["status", "schedule_key"])
    rows = table.to_pylist()
    ok = [r for r in rows if r["status"] == OK]
    best = read_json(run.best_dir / "runtime.json") or {}
    best_weights = run.best_weights if run.best_weights.exists() else run.latest_weights
    command = ["farm", "run", s.benchmark.ref, "--weights", str(best_weights)]
    if s.target.device_kind != "host":
        command += ["--target", s.target.compile]
    if s.parallelism != DEFAULT_PARALLELISM:
        command += ["--parallelism", str(s.parallelism)]
    return TuneSummary(
        run_dir=run.path, rounds=t.committed, rows=len(rows), ok=len(ok),
        distinct=len({r["schedule_key"] for r in ok}), best_ms=best.get("runtime_ms"),
        best_schedule=(run.best_dir / f"{s.benchmark.name}.schedule.h") if best else None,
        best_weights=best_weights, latest_weights=run.latest_weights,
        command=shlex.join(command), stopped=stopped, elapsed_s=t._elapsed(),
        best_weights_reason=(read_json(run.best_weights_record) or {}).get(
            "reason", ""))


def spec_from_row(row: dict, base: CandidateSpec, run: RunDir) -> CandidateSpec | None:
    """Rebuild a sample's candidate: same seed, search settings and weights; None when its
    weights cannot be rebuilt (a file of the run is missing or was changed)."""
    paths = {"accepted": run.weights_path(row["round"] - 1), "start": run.weights_path(0),
             "provisional": run.provisional_used(row["round"])}
    try:
        used = plan_weights_for(row, lambda role: weights.load(paths[role]))
    except (KeyError, WeightsError):
        return None
    if row.get("weights_sha256") and used.sha256 != row["weights_sha256"]:
        return None
    return replace(base, weights=used, beam_size=row["beam_size"],
                   random_dropout=row["random_dropout"], seed=row["seed"],
                   parallelism=row["parallelism"])
