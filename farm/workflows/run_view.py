"""A run directory read from Python (`farm.api.open_run`): its samples, rounds and best
schedule, read-only and safe on a run that is still tuning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from farm.deprecation import renamed
from farm.errors import BadInput, MissingPrerequisite, RunDirError
from farm.store.records import (
    START_LABEL,
    FinalistRecord,
    Manifest,
    RoundRecord,
    VerdictRecord,
)
from farm.store.rundir import RunDir

SAME_AS_START = "the start weights' beam search itself"

@dataclass(frozen=True)
class Best:
    """A run's best schedule (a campaign's: one pipeline's), from its final re-timing."""

    pipeline: str
    label: str  # its finalist's label in the re-timing ("sample ...", "beam search with ...")
    runtime_ms: float  # the median of its re-timings
    schedule_path: Path  # best/NAME.schedule.h
    schedule_text: str  # that file's text ("" when it is missing)
    library_path: Path | None  # best/NAME.a, to link with the Halide runtime
    weights_path: Path  # the weights file that planned it
    # against beam-32 with the start weights; when the best is that beam search itself, a
    # ratio of 1.0 with the verdict SAME_AS_START
    vs_start: VerdictRecord | None
    finalists: list[FinalistRecord] = field(default_factory=list)  # every schedule re-timed
    # its timing during the round that measured it (a sample's; None for a beam search
    # built at the end): once, few repeats, beside other work (docs/autotuning.md: a round)
    round_ms: float | None = None

    schedule = renamed("schedule", "schedule_path")
    schedule_source = renamed("schedule_source", "schedule_text")
    library = renamed("library", "library_path")
    weights = renamed("weights", "weights_path")


@dataclass(frozen=True)
class Run:
    """A run directory, read-only: safe on a run that is still tuning. Everything it reads
    comes through its store (farm.store.rundir.RunDir: the run's records and samples)."""

    store: RunDir

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def manifest(self) -> Manifest:
        m = self.store.read_manifest()
        if m is None:
            raise BadInput(f"{self.path} is not a run directory (no manifest.json)")
        return m

    @property
    def pipelines(self) -> list[str]:
        return [p.name for p in self.manifest.all_pipelines()]

    def samples(self, columns: Sequence[str] | None = None, pipeline: str | None = None,
                ok_only: bool = False) -> pa.Table:
        """Every sample (one row per candidate measured or failed; docs/autotuning.md: the run
        directory), or `columns` of them; of one `pipeline`, or only the measured ones."""
        import pyarrow.dataset as ds

        where = None
        if pipeline is not None:
            where = ds.field("benchmark") == pipeline
        if ok_only:
            ok = ds.field("status") == "ok"
            where = ok if where is None else where & ok
        return self.store.samples.read(columns, filter=where)

    def to_pandas(self, columns: Sequence[str] | None = None, pipeline: str | None = None,
                  ok_only: bool = False):
        """samples() as a pandas DataFrame; pandas is not a dependency of the farm."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise MissingPrerequisite("to_pandas needs pandas: pip install pandas (or use "
                                      "samples(), a pyarrow Table)") from None
        return self.samples(columns, pipeline, ok_only).to_pandas()

    def rounds(self) -> list[RoundRecord]:
        """The finished rounds' records, in order."""
        run = self.store
        records = (run.read_round(n) for n in run.samples.committed_rounds())
        return [r for r in records if r is not None]

    def best(self, pipeline: str | None = None) -> Best | None:
        """The best schedule after the run's final re-timing (None before it)."""
        run = self.store
        m = self.manifest
        if m.campaign and pipeline is None:
            raise BadInput(f"{self.path} is a campaign: name a pipeline "
                           f"({', '.join(self.pipelines)})")
        scope = pipeline if m.campaign else ""
        record = run.read_retiming(scope or "")
        if record is None:
            return None
        name = record.benchmark.split(":")[0]
        schedule = run.best_schedule(name, scope or "", record.library)
        library = run.best_path(scope or "") / record.library if record.library else None
        winner = record.finalist_labelled(record.finalist)
        vs_start = winner.vs_start if winner else None
        if winner is not None and vs_start is None and \
                START_LABEL in (winner.label, *winner.also):  # it is the start's beam search
            pairs = sum(t is not None for t in winner.retimes_ms)
            vs_start = VerdictRecord(1.0, 1.0, 1.0, pairs, SAME_AS_START)
        return Best(pipeline or m.generator, record.finalist, record.runtime_ms, schedule,
                    _text(run, schedule), library,
                    run.retiming_weights(record), vs_start,
                    list(record.finalists),
                    winner.round_ms if winner and winner.round_ms is not None
                    else record.recorded_ms)

    def write_report(self, out: str | Path | None = None) -> Path:
        """The run's report page (`farm report RUN --html`): a self-contained index.html."""
        from farm.workflows.reports import report_page

        return report_page(self.path, out=out)


def open_run(path: str | Path | RunDir) -> Run:
    """A run directory written by `farm autotune` (or tune()); of a run of several device
    classes, one class's: RUN/classes/CLASS."""
    from farm.store.rundir import class_dirs

    found = Run(path if isinstance(path, RunDir) else RunDir(path))
    classes = class_dirs(found.path)
    if classes and not found.store.manifest_path.exists():
        raise BadInput(f"{found.path} holds a run per device class: open one of "
                       f"{', '.join(str(c) for c in classes)}")
    found.manifest  # noqa: B018 - fails now, with its message, for what is not a run
    return found


def _text(run: RunDir, schedule: Path) -> str:
    """A best schedule's text; "" when there is none or it is not the run's own file."""
    try:
        return run.best.schedule_text(schedule) or ""
    except RunDirError:
        return ""
