"""`farm import`: what Halide's own loop already measured becomes a run directory of the farm.

One row per .sample (farm.store.loop_samples): its runtime, featurization and schedule
text, and a pipeline id told apart by features. Each of the loop's batches is a round.
With the weights the loop trained, the run hands them over (weights/best.weights), so
`farm models promote` takes them to the registry; `farm report` and `farm export` read
the run as any other, and `farm autotune --also-train-on` trains on its rows.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from farm.candidate import OK
from farm.errors import BadInput
from farm.model import featurization
from farm.model import weights as weights_module
from farm.store.checks import RecordError
from farm.store.loop_samples import LoopSample, read_folder
from farm.store.records import IMPORTED, BestWeightsRecord, Manifest, PipelineRecord
from farm.store.rundir import RunDir, invocation_record, is_run, new_run_id, now_iso
from farm.tuning.rows import sample_id
from farm.versions import versions

LOOP_PARALLELISM = 32  # the loop's autoscheduler.parallelism and HL_NUM_THREADS
UNKNOWN_TARGET = "unknown (imported)"


@dataclass(frozen=True)
class ImportSummary:
    run: Path
    rows: int
    rounds: int
    pipelines: dict[str, int]  # rows per pipeline
    skipped: list[tuple[Path, str]]  # files that are not samples, and why
    weights: str | None  # the handed-over weights' file, when given


def import_loop(samples_dir: str | Path, out: str | Path, device_class: str,
                benchmark: str | None = None, weights: str | Path | None = None,
                target: str | None = None) -> ImportSummary:
    folder = Path(samples_dir)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder (give the loop's samples folder, which "
                       "holds batch_*/N/*.sample)")
    if not device_class.strip():
        raise BadInput("--class names the device class the samples were timed on, as "
                       "`farm devices` prints it")
    out = Path(out)
    if is_run(out) or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise BadInput(f"--out {out} exists and is not empty; import into a new folder")
    handed = weights_module.load(weights) if weights is not None else None
    samples, skipped = read_folder(folder, benchmark)
    if not samples:
        raise BadInput(f"no Halide .sample file in {folder}" + (
            f" ({len(skipped)} skipped: {skipped[0][0].name}: {skipped[0][1]})"
            if skipped else ""))
    manifest = _checked(_manifest(samples, device_class, target))
    batches = sorted({s.batch for s in samples})
    round_of = {b: n for n, b in enumerate(batches, start=1)}
    # made beside --out and renamed into place when whole: a failed import leaves nothing
    building = out.parent / f".{out.name}.importing-{os.getpid()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(building, ignore_errors=True)
    run = RunDir(building)
    run.open()
    try:
        run.write_manifest(manifest)
        by_round: dict[int, list[dict]] = {}
        for n, s in enumerate(sorted(samples, key=lambda s: (s.batch, s.pipeline, s.index))):
            by_round.setdefault(round_of[s.batch], []).append(
                _row(manifest, round_of[s.batch], n, s))
        for r, rows in sorted(by_round.items()):
            run.samples.commit_round(r, rows)
        manifest.invocations.append(invocation_record(versions(), []))
        run.write_manifest(manifest)
        if handed is not None:
            run.write_best_weights(handed, BestWeightsRecord(
                weights=run.best_weights.name, weights_sha256=handed.sha256,
                reason=f"imported with the samples of Halide's loop from {folder.resolve()} "
                "(trained there; not re-timed by the farm)"))
    except BaseException:
        run.close()
        shutil.rmtree(building, ignore_errors=True)
        raise
    run.close()
    if out.is_dir():  # (empty)
        out.rmdir()
    os.replace(building, out)
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.pipeline] = counts.get(s.pipeline, 0) + 1
    return ImportSummary(out, len(samples), len(batches), counts, skipped,
                         str(weights) if weights is not None else None)


def _checked(manifest: Manifest) -> Manifest:
    """`manifest`, checked as every later command reads it: refused now, not by each."""
    try:
        Manifest.from_json(manifest.to_json())
    except RecordError as e:
        raise BadInput(f"--class, --benchmark or --target cannot be recorded as given: "
                       f"{e}") from None
    return manifest


def _manifest(samples: list[LoopSample], device_class: str, target: str | None) -> Manifest:
    names = sorted({s.pipeline for s in samples})
    first: dict[str, LoopSample] = {}
    for s in sorted(samples, key=lambda s: (s.batch, s.index)):
        first.setdefault(s.pipeline, s)
    batch_size = max(sum(1 for s in samples if (s.batch, s.pipeline) == key)
                     for key in {(s.batch, s.pipeline) for s in samples})
    campaign = len(names) > 1
    return Manifest(
        run_id=new_run_id(), benchmark="campaign" if campaign else names[0],
        generator=IMPORTED, benchmark_sha256="", target=target or UNKNOWN_TARGET,
        schedule_target=target or UNKNOWN_TARGET, batch_size=batch_size,
        parallelism=LOOP_PARALLELISM, start_weights_sha256="", created_at=now_iso(),
        device_class=device_class, campaign=campaign,
        pipelines=[PipelineRecord(n, n, "", featurization.pipeline_id(first[n].featurization))
                   for n in names])


def _row(manifest: Manifest, round_no: int, n: int, s: LoopSample) -> dict:
    beam = s.index == 0  # the loop's sample 0 is its batch's beam search
    return {
        "sample_id": sample_id(manifest.run_id, round_no, s.index,
                               s.pipeline if manifest.campaign else ""),
        "run_id": manifest.run_id, "round": round_no, "index": s.index,
        "benchmark": s.pipeline, "pipeline_id": featurization.pipeline_id(s.featurization),
        "schedule_id": n + 1, "seed": s.schedule_id, "attempts": 1,
        "beam_size": 32 if beam else 1, "random_dropout": 100 if beam else 1,
        "parallelism": LOOP_PARALLELISM, "target": manifest.target,
        "schedule_target": manifest.schedule_target, "device_id": "halide-loop",
        "status": OK, "runtime_ms": s.runtime_ms, "runtimes_ms": [s.runtime_ms],
        "schedule_key": featurization.schedule_key(s.featurization),
        "schedule_source": s.schedule_source, "featurization": s.featurization,
        "created_at": datetime.fromtimestamp(s.modified, UTC),
        "planner": f"b{32 if beam else 1}-d{100 if beam else 1}@halide-loop",
    }
