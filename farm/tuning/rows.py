"""Sample rows: an Outcome of the scheduler becomes one row of the Parquet dataset."""

from __future__ import annotations

from datetime import UTC, datetime

from farm.candidate import DEVICE_LOST, DUPLICATE, FAULT, OK, Status
from farm.errors import FarmError, RoundFailed
from farm.execution.scheduler import Outcome
from farm.model import featurization
from farm.model.predict import predict
from farm.model.weights import Weights
from farm.pipelines.benchmark import format_params
from farm.report.progress import plural
from farm.search.plans import schedule_id
from farm.store.records import Manifest, PipelineRecord
from farm.store.samples import cause


def sample_id(run_id: str, round_no: int, index: int, pipeline: str = "") -> str:
    """Unique in a run; a campaign's rows name their pipeline (`pipeline`)."""
    prefix = f"{run_id}-{pipeline}" if pipeline else run_id
    return f"{prefix}-r{round_no:06d}-c{index:04d}"


# Fewer candidates than this failing alike may be the schedules' own faults.
MIN_ALIKE_TO_STOP = 4
_FIXES = {"compile_timeout": "fix it, or raise --compile-timeout if the pipeline is that big,",
          "run_timeout": "fix it, or raise --run-timeout if the pipeline runs that long,"}


def stop_if_all_failed_alike(outcomes: list[Outcome], round_no: int, committed: int,
                             where: object, min_pipelines: int = 1) -> None:
    """RoundFailed when every candidate of round `round_no` failed for one cause (at
    least MIN_ALIKE_TO_STOP of them, of at least `min_pipelines` pipelines): what fails
    each candidate the same way would fail every round (a linker, a generator's code, a
    device that runs nothing). The round is not committed: after the fix, the same command
    redoes it. A pre-training asks for 2 pipelines: one seed that never builds is that
    seed's fault, and a round redone with it would stop again for good."""
    # (a device lost is the pool's to handle: a phone that dropped off may be back next
    # round)
    if len(outcomes) < MIN_ALIKE_TO_STOP or any(o.status in (OK, DUPLICATE, DEVICE_LOST)
                                                 for o in outcomes):
        return
    if len({o.spec.benchmark.label for o in outcomes}) < min_pipelines:
        return
    each = {o.index: cause(o.status, o.error) for o in outcomes}
    # candidates skipped after their pipeline's compiles timed out follow those
    causes = {c for c in each.values() if not str(c).endswith(":skipped")} or set(each.values())
    if len(causes) != 1:
        return
    first = next((o.error for o in outcomes if o.error and each[o.index] in causes), "")
    detail = first.strip().splitlines()[0][:300] if first.strip() else "(no message)"
    which = causes.pop()
    fix = _FIXES.get(str(which).split(":")[0], "fix it")
    raise RoundFailed(
        f"every candidate of round {round_no} ({len(outcomes)}) failed the same way "
        f"({which}): {detail}. That would fail every round: {fix} and rerun the same "
        f"command to resume (round {round_no} was not committed; "
        f"{plural(committed, 'round is', 'rounds are')}, in {where})", cause="round-failed")


def outcome_row(manifest: Manifest, round_no: int, o: Outcome,
                pipeline: PipelineRecord | None = None) -> dict:
    """`o`'s row; `o.index` is its index within its pipeline's batch, `pipeline` its
    pipeline (default: the run's one)."""
    if o.status == FAULT:  # farm.faults: the scheduler gives such a candidate elsewhere
        raise AssertionError(f"a lasting fault reached a row: {o.error}")
    build, m = o.build, o.measurement
    schedule = build.schedule if build else None
    feats = schedule.featurization if schedule and schedule.featurization else None
    name = pipeline.name if pipeline else manifest.generator
    known = pipeline.pipeline_id if pipeline else manifest.pipeline_id
    params = format_params(o.spec.benchmark.params)
    pipeline_id = featurization.pipeline_id(feats, params) if feats else known
    runtimes = list(m.runtimes_ms) if m and m.runtimes_ms else None
    runtime_ms = min(runtimes) if runtimes and o.status == OK else None
    row = {
        "sample_id": sample_id(manifest.run_id, round_no, o.index,
                               name if manifest.campaign else ""),
        "run_id": manifest.run_id,
        "round": round_no,
        "index": o.index,
        "benchmark": name,
        "pipeline_id": pipeline_id,
        "schedule_id": schedule_id(round_no, o.index, manifest.id_stride),
        "seed": o.spec.seed,
        "attempts": o.attempts,
        "beam_size": o.spec.beam_size,
        "random_dropout": o.spec.random_dropout,
        "parallelism": o.spec.parallelism,
        "target": o.spec.target.compile,
        "schedule_target": o.spec.target.schedule,
        "weights_sha256": o.spec.weights.sha256 if o.spec.weights else None,
        "device_id": m.device_id if m else None,
        "device_kind": m.device_kind if m else None,
        "node_id": m.node_id if m else None,
        "host": m.node if m else None,  # the column keeps its v1 name
        "compile_host": build.host if build else None,
        "status": Status(o.status).value,  # a plain string in Parquet
        "error": o.error or None,
        "log": o.log or None,
        "compile_s": build.compile_s if build else None,
        "autoschedule_s": schedule.autoschedule_s if schedule else None,
        "codegen_s": build.codegen_s if build else None,
        "link_s": build.link_s if build else None,  # None: never compiled (e.g. a duplicate)
        "compile_memory_mb": build.memory_mb if build else None,
        "run_s": m.run_s if m else None,
        "runtime_ms": runtime_ms,
        "runtimes_ms": runtimes,
        "schedule_key": featurization.schedule_key(feats) if feats else None,
        "duplicate_of": o.duplicate_of,
        "schedule_source": schedule.source if schedule else None,
        "featurization": feats,
        "created_at": datetime.fromtimestamp(o.finished_at, UTC),
        "planner": o.spec.planner or None,
        "cause": cause(o.status, o.error),
        "timing_started_at": _utc(m.timing_started_at if m else None),
        "timing_ended_at": _utc(m.timing_ended_at if m else None),
    }
    if o.status == OK and not (runtime_ms and runtime_ms > 0):
        raise AssertionError(f"an ok sample without a positive runtime: {row['sample_id']}")
    return row


def _utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def with_predictions(rows: list[dict], planner: Weights) -> str | None:
    """Fill each featurized row's "predicted": the cost model's prediction by `planner`,
    the weights that planned the round, per pipeline and parallelism (the model takes one
    pipeline's schedules at a time, searched for one core count). The report plots them
    against the measured runtimes. A model that cannot be run leaves them null and says
    why, in the returned line; the round goes on."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        row["predicted"] = None  # a row without a featurization has none
        if row["featurization"]:
            groups.setdefault((row["pipeline_id"], row["parallelism"]), []).append(row)
    try:
        for (_, cores), mine in groups.items():
            got = predict(planner, [r["featurization"] for r in mine], cores)
            for row, value in zip(mine, got, strict=True):
                row["predicted"] = float(value)
    except (FarmError, RuntimeError, ValueError) as e:
        for row in rows:
            row["predicted"] = None
        return f"no predictions recorded for this round: {e}"
    return None
