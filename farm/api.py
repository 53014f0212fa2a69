"""The farm from Python: what the `farm` commands do, for notebooks and scripts.

Three things users do, and the commands are thin wrappers over them:

    import farm.api as fa

    summary = fa.tune("runs/m3", "median3x3", rounds=2, batch_size=16)  # farm autotune
    result = fa.run("median3x3", beam_size=32)                          # farm run

    run = fa.open_run("runs/m3")
    run.samples()           # every sample: a pyarrow Table (run.samples(ok_only=True), ...)
    run.to_pandas()         # the same as a pandas DataFrame (if pandas is installed)
    run.rounds()            # one RoundRecord per round: timings, beam check, acceptance
    run.best()              # the best schedule: its text, path, runtime, weights, verdicts

    fa.compare(a_ms, b_ms)  # is A faster than B? a Verdict with its 95% interval
    # (v.describe(): "1.19x faster [1.15, 1.30]"; docs/autotuning.md: how ratios read)
    fa.bench(["median3x3"], weights="runs/m3/weights/best.weights")     # farm bench

Errors are the farm's typed ones (farm.errors): BadInput and friends for what the caller
must fix, WorkFailed when the work itself failed.

Names say what they hold: a field ending in `_path` is a file's path, `_text` its text;
`retimes` are interleaved re-timings (each a run of the timing harness), `repeats` the
harness's timings inside one run. Older names still work and warn (DeprecationWarning):
Best.schedule (schedule_path), Best.schedule_source (schedule_text), Best.library
(library_path), Best.weights (weights_path), RunResult.schedule_file (schedule_path),
TuneSummary.best_schedule / best_weights / latest_weights (..._path), and
bench(repeats=) (retimes=).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from farm.errors import BadInput, MissingPrerequisite
from farm.execution.session import FoundDevices
from farm.model.weights import Weights
from farm.pipelines.benchmark import Benchmark
from farm.stats import verdict
from farm.stats.verdict import Verdict
from farm.tuning.summary import TuneSummary
from farm.workflows.reports import ReportOutput, export, report, report_page, watch_page
from farm.workflows.run import DEFAULT_RETIMES, RunResult
from farm.workflows.run_view import Best, Run, open_run

# farm pretrain's real validation pipelines by default: the corpus, beam-checked a few at a
# time in turn (farm.workflows.pretrain)
VALIDATE_ON = ("corpus",)

__all__ = ["Best", "EvaluateResult", "ReportOutput", "Run", "RunResult", "TuneSummary",
           "Verdict", "bench", "compare", "devices", "evaluate", "export", "open_run", "report",
           "report_page", "run", "tune", "watch_page"]


def tune(out: str | Path, *benchmarks: str, rounds: int = 1, batch_size: int = 32,
         budget_s: float | None = None, weights: str | Path | None = None,
         parallelism: int | None = None, target: str | None = None,
         devices: Sequence[str] = (), address: str | None = None,
         compile_timeout_s: float = 600.0, run_timeout_s: float = 60.0,
         train_steps: int | None = None, isolation: str = "pause",
         also_train_on: Sequence[str | Path] = (), allocation: str | None = None,
         pipeline_weights: dict[str, float] | None = None, screen: int = 1,
         progress=None) -> TuneSummary:
    """Start or continue the run in `out` (`farm autotune BENCH ... --out OUT`): the same
    settings and defaults, one keyword each. Several benchmarks (or "all") make a
    campaign; a larger `rounds` continues a finished run. `also_train_on`: other run
    directories of the class whose rows train the model too. `allocation`: how a campaign's
    rounds are split ("gain", the default for a new campaign, or "equal"; a resume keeps
    its own), `pipeline_weights` how much each pipeline (by BENCH) matters to it.
    `screen`: draws per screened probe (farm.tuning.screening; 1: none). Returns its
    summary."""
    from farm.build import compiler
    from farm.candidate import DEFAULT_PARALLELISM, CandidateSpec
    from farm.devices.timing import TimingConfig
    from farm.machine import targets
    from farm.model import retrain
    from farm.model import weights as weights_module
    from farm.pipelines import catalog
    from farm.tuning.loop import autotune
    from farm.tuning.settings import TuneSettings

    refs = list(benchmarks)
    if not refs:
        raise BadInput("name at least one benchmark")
    refs = catalog.expand(refs)  # suites: `all`, `corpus`, a corpus family
    benches = tuple(catalog.resolve(r) for r in refs)
    settings = TuneSettings(
        benchmarks=benches,
        target=targets.resolve(target or "host"),
        start_weights=weights_module.resolve(weights), from_registry=weights is None,
        rounds=rounds, batch_size=batch_size,
        budget_s=budget_s, parallelism=parallelism or DEFAULT_PARALLELISM,
        device_ids=tuple(devices), compile_timeout_s=compile_timeout_s,
        timing=TimingConfig(timeout_s=run_timeout_s), isolation=isolation,
        train_steps=train_steps or retrain.DEFAULT_STEPS,
        also_train_on=tuple(str(Path(p).resolve()) for p in also_train_on),
        allocation=allocation, screen=screen,
        pipeline_weights=_pipeline_weights(pipeline_weights or {}, benches))
    for bench in settings.benchmarks:
        compiler.check_pipeline(CandidateSpec(bench, settings.target, settings.start_weights))
    return autotune(out, settings, address=address, progress=progress)


def _pipeline_weights(given: dict[str, float], benches) -> tuple[tuple[str, float], ...]:
    """--pipeline-weight BENCH=W by pipeline name; a BENCH not in the campaign is refused."""
    out = []
    for ref, w in given.items():
        match = [b for b in benches if ref in (b.ref, b.name, b.label)]
        if not match:
            raise BadInput(f"--pipeline-weight {ref}={w:g}: {ref} is not a pipeline of this "
                           f"campaign ({', '.join(b.label for b in benches)})")
        if not w > 0:
            raise BadInput(f"--pipeline-weight {ref}={w:g}: a weight must be above 0")
        out.append((match[0].label, float(w)))
    return tuple(out)


def pretrain(out: str | Path, *, pipelines: int = 256, per_pipeline: int = 16,
             per_round: int | None = None, generator: str | None = None,
             beam_checked: int | None = None, budget_s: float | None = None,
             weights: str | Path | None = None, parallelism: int | None = None,
             target: str | None = None, devices: Sequence[str] = (),
             address: str | None = None, compile_timeout_s: float | None = None,
             run_timeout_s: float = 60.0, train_steps: int | None = None,
             isolation: str = "pause", also_train_on: Sequence[str | Path] = (),
             validate_on: Sequence[str] = VALIDATE_ON, progress=None):
    """Start or continue the pre-training in `out` (`farm pretrain --out OUT`): `pipelines`
    new pipelines of `generator` (a BENCH with a `seed` parameter; default the farm's
    random pipelines, their integer family for a Hexagon target), `per_pipeline`
    candidates each, `per_round` of them per round. `validate_on`: the real pipelines
    (BENCHes and suites) whose beam searches decide each update, `beam_checked` of them per
    check in turn (default: the corpus; `("random",)`: the round's new random pipelines
    decide, as before). Returns its summary (farm.workflows.pretrain.PretrainSummary)."""
    from farm.build import compiler
    from farm.candidate import DEFAULT_PARALLELISM, CandidateSpec
    from farm.devices.timing import TimingConfig
    from farm.machine import targets
    from farm.model import retrain
    from farm.model import weights as weights_module
    from farm.tuning.loop import autotune
    from farm.tuning.settings import TuneSettings
    from farm.workflows.pretrain import (
        BEAM_CHECKED,
        MIN_PER_ROUND,
        PRETRAIN_COMPILE_TIMEOUT_S,
        DrawnPipelines,
        PretrainSpec,
        seeded_generator,
        validation_pipelines,
    )

    if per_pipeline < retrain.MIN_DISTINCT:  # a pre-training never comes back to one
        raise BadInput(f"--per-pipeline {per_pipeline}: Halide's trainer skips a pipeline "
                       f"with fewer than {retrain.MIN_DISTINCT} distinct schedules, and a "
                       "pre-training draws each pipeline once: give at least "
                       f"{retrain.MIN_DISTINCT} (Halide's loop takes 16; a run begun with "
                       "fewer trained on nothing: start it again in a new --out)")
    least = 2 * (per_round or MIN_PER_ROUND)
    if pipelines < least:  # one round trains nothing: a model is judged on the next's
        raise BadInput(
            f"--pipelines {pipelines} makes one round of {per_round or MIN_PER_ROUND} new "
            "pipelines, and a pre-training trains its model after a round and judges it on "
            f"the next round's new pipelines: give --pipelines {least} or more (or a "
            "smaller --pipelines-per-round); with one round it would hand over its start "
            "weights untrained")
    where = targets.resolve(target or "host")
    spec = PretrainSpec(seeded_generator(generator, where), pipelines=pipelines,
                        per_round=per_round,
                        beam_checked=BEAM_CHECKED if beam_checked is None else beam_checked,
                        validate_on=validation_pipelines(validate_on))
    settings = TuneSettings(
        benchmarks=(), target=where, start_weights=weights_module.resolve(weights),
        from_registry=weights is None,
        batch_size=per_pipeline, budget_s=budget_s,
        parallelism=parallelism or DEFAULT_PARALLELISM, device_ids=tuple(devices),
        compile_timeout_s=compile_timeout_s or PRETRAIN_COMPILE_TIMEOUT_S,
        timing=TimingConfig(timeout_s=run_timeout_s),
        isolation=isolation, train_steps=train_steps or retrain.DEFAULT_STEPS,
        also_train_on=tuple(str(Path(p).resolve()) for p in also_train_on))
    compiler.check_pipeline(CandidateSpec(spec.pipeline(0), where, settings.start_weights))
    return autotune(out, settings, address=address, progress=progress,
                    source=DrawnPipelines(spec))


def run(benchmark: str | Benchmark, *, beam_size: int = 32, parallelism: int | None = None,
        weights: str | Path | Weights | None = None, target: str | None = None,
        device: str | None = None, address: str | None = None,
        out: str | Path | None = None, manual: bool = True,
        compile_timeout_s: float = 600.0, on_update=None,
        retimes: int = DEFAULT_RETIMES, on_weights=None) -> RunResult:
    """Autoschedule `benchmark` (a BENCH as the commands take it, or a farm.pipelines.benchmark
    value), time it and its manual schedule (`farm run`), then re-time the two `retimes`
    times each, interleaved: RunResult.verdict (fewer than 5: "unmeasured"). With `out`,
    its schedule is written there as NAME.schedule.h. `on_update(counts)` sees progress
    (farm.execution.scheduler.Counts). Without `weights`, the device's class's current
    model is used (farm.store.registry), else Halide's baseline weights;
    `on_weights(weights, note)` hears which, before any work."""
    from farm.build import compiler
    from farm.candidate import DEFAULT_PARALLELISM, CandidateSpec
    from farm.devices.timing import TimingConfig
    from farm.execution.session import DeviceSession
    from farm.model import weights as weights_module
    from farm.pipelines import catalog
    from farm.store.registry import class_start
    from farm.workflows.run import run_benchmark

    bench = catalog.resolve(benchmark) if isinstance(benchmark, str) else benchmark
    w = weights if isinstance(weights, Weights) else weights_module.resolve(weights)
    with DeviceSession(address, holder=str(out) if out else "farm run") as session:
        info, resolved = session.pick(device, target)
        note = ""
        if weights is None:
            w, note = class_start(info.device_class.name)
        if on_weights is not None:
            on_weights(w, note)
        spec = CandidateSpec(bench, resolved, w, beam_size=beam_size,
                             parallelism=parallelism or DEFAULT_PARALLELISM)
        compiler.check_pipeline(spec)
        return run_benchmark(spec, session.pool([info], resolved), TimingConfig(),
                             Path(out) if out is not None else None, with_manual=manual,
                             compile_timeout_s=compile_timeout_s, on_update=on_update,
                             retimes=retimes)


def bench(benchmarks: Sequence[str] = (), *, devices: Sequence[str] | None = None,
          weights: str | Path | None = None, run: str | Path | None = None,
          address: str | None = None, retimes: int | None = None,
          progress=None, repeats: int | None = None) -> pa.Table:
    """`farm bench`: per benchmark and device, the manual schedule, beam-32 with the
    baseline weights, with `weights` (default: the run's best.weights) and the `run`'s
    best schedule, re-timed interleaved `retimes` times (default 10); a row per variant
    with its verdict against beam-32 with the baseline weights. `progress(line)` hears
    what it is doing. `repeats`: the old name of `retimes` (deprecated)."""
    from farm.workflows import bench as bench_module

    if repeats is not None:
        warnings.warn("bench(repeats=) is deprecated; use retimes=", DeprecationWarning,
                      stacklevel=2)
        retimes = retimes or repeats

    rows = bench_module.run_bench(list(benchmarks), list(devices) if devices else None,
                                  str(weights) if weights else None,
                                  str(run) if run else None, address,
                                  retimes=retimes or bench_module.DEFAULT_RETIMES,
                                  progress=progress or (lambda text: None))
    if not rows:
        raise MissingPrerequisite("no usable device to bench on: `farm devices` lists each "
                                  "device and what keeps it from use; fix that")
    return pa.Table.from_pylist(rows, schema=bench_module.SCHEMA)


@dataclass(frozen=True)
class EvaluateResult:
    """`farm evaluate`'s result: a row per pipeline and model, and what it wrote."""

    rows: list[dict]  # farm.workflows.evaluate.SCHEMA's columns
    table: str  # the rows as the command prints them
    models: list[str]  # each model trained, described
    summary: list[str]  # per model: its geometric mean against the baseline, and verdicts
    rows_path: Path  # OUT/evaluate.parquet
    plot_path: Path  # OUT/evaluate.png


def evaluate(run_dir: str | Path, out: str | Path | None = None, *,
             together: Sequence[str] | None = None, weights_for: Sequence[str] | None = None,
             train_steps: int | None = None, generators: Sequence[str] = (),
             devices: Sequence[str] | None = None, address: str | None = None,
             retimes: int = 10, on: Sequence[str] | None = None,
             judge: str | Path | None = None, progress=None) -> EvaluateResult:
    """`farm evaluate RUN_DIR`: does the campaign's model carry to a pipeline it has not
    seen? Models are trained with each group left out, and each pipeline's beam search with
    them is re-timed interleaved against the start weights' on a device of the run's class.
    Written to `out` (default RUN_DIR/evaluate). `progress(line)` hears what it does.
    With `on` (BENCHes), RUN_DIR is any run (a pre-training, a campaign, a single run) and
    its handed-over weights are re-timed against its start weights on those pipelines,
    which it must never have trained on; `judge` (a weights file) is judged instead."""
    from farm.atomic import real_dir, writable_dir
    from farm.store.rundir import refuse_a_run
    from farm.workflows import evaluate as workflow
    from farm.workflows import evaluation

    say = progress or (lambda text: None)
    if on:
        if together or train_steps or generators:
            raise BadInput("--on judges the run's handed-over weights and trains no model: "
                           "--together, --train-steps and --generator are for leave-one-out")
        ev = evaluation.prepare_on(run_dir, on, weights_for, judge)
    elif judge is not None:
        raise BadInput("--judge names weights to judge with --on BENCH ...; leave-one-out "
                       "trains its own models")
    else:
        ev = evaluation.prepare(run_dir, together, weights_for, train_steps, named=generators)
    if out:
        refuse_a_run(out, "evaluate")  # its weights/ would mix with the run's
        folder = writable_dir(str(out))
    else:  # RUN_DIR/evaluate is the run's: no link planted there takes its files elsewhere
        try:
            folder = writable_dir(str(real_dir(Path(run_dir) / "evaluate", Path(run_dir))))
        except OSError as e:  # (a colleague's run, read-only)
            raise BadInput(f"{Path(run_dir) / 'evaluate'} cannot be made ({e.strerror}); "
                           "give --out DIR for the results") from None
    if ev.handed is not None:
        say(f"{ev.handed[1]} against the start weights on {len(ev.pipelines)} pipelines "
            f"{run_dir} never trained on: {', '.join(ev.names)}; device class "
            f"{ev.manifest.device_class or '(not recorded)'}")
    else:
        say(f"{len(ev.pipelines)} pipelines in {len(ev.groups)} groups left out in turn: "
            f"{', '.join(g.name for g in ev.groups)}; device class "
            f"{ev.manifest.device_class or '(not recorded)'}")
    result = workflow.run_evaluate(ev, folder, devices, address, retimes=retimes,
                                   progress=say)
    device_class = (ev.manifest.device_class or "").split(" (")[0]  # without its target
    rows_path, plot_path = workflow.write_results(
        result.rows, folder, f"farm evaluate: {Path(run_dir).resolve().name}"
        + (" on pipelines it never saw" if ev.handed is not None else "")
        + (f" on {device_class}" if device_class else ""))
    return EvaluateResult(result.rows, workflow.format_table(result.rows),
                          [m.describe() for m in result.models.values()],
                          workflow.summary(result.rows), rows_path, plot_path)


def train_class_model(device_class: str, out: str | Path, *,
                      from_runs: Sequence[str | Path] = (), seeds: int = 3,
                      devices: Sequence[str] | None = None, address: str | None = None,
                      retimes: int = 10, force: bool = False, progress=None):
    """`farm models train --class C`: candidate models trained on the class's real work
    (its registered runs and `from_runs`), judged leave-family-out with beam 32 and
    interleaved re-timings on its devices; the winner registered for the class with that
    evidence, and made current when it is significantly slower on no validation pipeline
    (or `force`). Written to `out`; resumes there."""
    from farm.atomic import writable_dir
    from farm.store.rundir import refuse_a_run
    from farm.workflows import class_model

    work = class_model.gather(device_class, from_runs, seeds)
    refuse_a_run(out, "models train")
    return class_model.train_class_model(
        work, Path(writable_dir(str(out))), device_ids=devices, address=address,
        retimes=retimes, force=force, progress=progress or (lambda text: None))


def devices(address: str | None = None, history: int = 0) -> FoundDevices:
    """`farm devices`: every device of this machine (or of the cluster at `address`), each
    with its class and what keeps it from use; notes on what kept others from being found;
    and who holds and who waits for each (with its last `history` logged leases)."""
    from farm.execution.session import DeviceSession

    with DeviceSession(address) as session:
        return FoundDevices(list(session.devices), list(session.notes),
                            session.leases(history))


def compare(a_ms: Sequence[float | None], b_ms: Sequence[float | None]) -> Verdict:
    """Is A faster than B? Paired, interleaved re-timings in, a Verdict out: the median
    ratio A/B, its 95% bootstrap interval, and "faster", "slower", "indistinguishable" or
    "unmeasured" (too few pairs). None marks a failed timing."""
    return verdict.compare(list(a_ms), list(b_ms))
