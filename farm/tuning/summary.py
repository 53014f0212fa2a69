"""What a run ends with (farm.api.tune, `farm autotune`): TuneSummary, read from the run
directory after its end (farm.tuning.finalize)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from farm.candidate import DEFAULT_PARALLELISM, OK
from farm.deprecation import renamed
from farm.report.progress import plural
from farm.stats import verdict
from farm.store.records import START_LABEL
from farm.store.samples import SUMMARY_COLUMNS
from farm.tuning.final_models import handed_model

if TYPE_CHECKING:
    from farm.store.records import RetimingRecord
    from farm.tuning.final_inputs import FinalInputs, FinalPipeline, FinalResult


@dataclass
class PipelineSummary:
    name: str
    best_ms: float | None = None  # the median of its final re-timings
    best_schedule_path: Path | None = None  # best/NAME/NAME.schedule.h

    best_schedule = renamed("best_schedule", "best_schedule_path")


@dataclass
class TuneSummary:
    """What a run ends with (farm.api.tune, `farm autotune`). Paths are named *_path."""

    run_dir: Path
    rounds: int
    rows: int
    ok: int
    distinct: int
    best_ms: float | None = None  # the best schedule's median final re-timing
    best_schedule_path: Path | None = None
    best_weights_path: Path | None = None  # the weights handed over (weights/best.weights)
    latest_weights_path: Path | None = None  # what the next round would plan with
    command: str = ""
    stopped: str = ""  # why the run stopped before --rounds, if it did
    elapsed_s: float = 0.0
    best_weights_reason: str = ""  # why best.weights are the weights they are
    pipelines: list[PipelineSummary] = field(default_factory=list)  # a campaign's
    # which trained model best.weights are: "final-fresh-long (...)", "the start weights"
    handed_model: str = ""
    # the best schedule's timing during its round (a sample's), and that round
    best_round_ms: float | None = None
    best_round: int | None = None
    # beam search with the start weights: its final re-timing, and its timing during a round
    start_beam_ms: float | None = None
    start_beam_round_ms: float | None = None
    start_beam_round: int | None = None

    best_schedule = renamed("best_schedule", "best_schedule_path")
    best_weights = renamed("best_weights", "best_weights_path")
    latest_weights = renamed("latest_weights", "latest_weights_path")

    def short(self) -> str:
        """One line: what a device class's run holds and the weights it hands over."""
        return (f"{plural(self.rounds, 'round')}, {plural(self.rows, 'sample')} "
                f"({self.ok} ok) in {self.run_dir}; best weights {self.best_weights_path}"
                + (f" ({self.best_weights_reason})" if self.best_weights_reason else ""))

    def lines(self) -> list[str]:
        """What `farm autotune` prints at the end."""
        out = [f"{self.run_dir}: {plural(self.rounds, 'round')}, "
               f"{plural(self.rows, 'sample')} ({self.ok} ok), "
               f"{plural(self.distinct, 'distinct schedule')} measured, {self.elapsed_s:.0f} s"]
        if self.stopped:
            out.append(f"stopped early: {self.stopped}; rerun the same command to go on")
        both = False
        if self.best_ms is not None:
            during = _during(self.best_round_ms, self.best_round)
            both = both or bool(during)
            out.append(f"best schedule:  {self.best_ms:.3f} ms (median of its final "
                       f"re-timings{'; ' + during if during else ''}), "
                       f"{self.best_schedule_path}")
        during = _during(self.start_beam_round_ms, self.start_beam_round)
        if self.start_beam_ms is not None and during:
            both = True
            out.append(f"start weights' beam search: {self.start_beam_ms:.3f} ms re-timed at "
                       f"the end; {during}")
        if both:
            out.append(f"                ({verdict.TWO_TIMINGS})")
        for p in self.pipelines:
            out.append(f"best {p.name}: " + (
                f"{p.best_ms:.3f} ms (median of its final re-timings), "
                f"{p.best_schedule_path}" if p.best_ms is not None else "-"))
        if self.handed_model:
            out.append(f"handed over:    {self.handed_model}" + (
                f": {self.best_weights_reason}" if self.best_weights_reason else ""))
        out += [f"best weights:   {self.best_weights_path}",
                f"latest weights: {self.latest_weights_path} (what the next round would plan "
                "with)",
                f"use them:       {self.command}"]
        return out


def _during(ms: float | None, round_no: int | None) -> str:
    """A schedule's timing during its round, labelled so: "0.416 ms timed during round 1"."""
    if ms is None:
        return ""
    return f"{ms:.3f} ms timed during " + (f"round {round_no}" if round_no else "its round")


def summary(inputs: FinalInputs, stopped: str, elapsed_s: float,
            result: FinalResult | None = None) -> TuneSummary:
    """What `farm autotune` prints at the end: what the final re-timing decided (`result`,
    from finalize), else what the run directory holds from an earlier one."""
    run, s = inputs.run, inputs.settings

    def retiming(pipe: FinalPipeline) -> RetimingRecord | None:
        if result is not None and pipe.benchmark.label in result.retimings:
            return result.retimings[pipe.benchmark.label]
        return run.read_retiming(pipe.scope)

    rows = run.samples.read(SUMMARY_COLUMNS).to_pylist()
    ok = [r for r in rows if r["status"] == OK]
    pipelines = []
    for pipe in inputs.pipelines:
        best = retiming(pipe)
        pipelines.append(PipelineSummary(
            pipe.benchmark.label, best.runtime_ms if best else None,
            run.best_schedule(pipe.benchmark.name, pipe.scope, best.library) if best
            else None))
    handed = result.best_weights if result is not None else run.read_best_weights_record()
    single = None if len(inputs.pipelines) != 1 or inputs.pipelines[0].scope else \
        retiming(inputs.pipelines[0])
    winner = single.finalist_labelled(single.finalist) if single else None
    start = single.finalist_labelled(START_LABEL) if single else None
    best_weights = run.best_weights if run.best_weights.exists() else run.latest_weights
    first = inputs.pipelines[0].benchmark.ref if inputs.pipelines else "BENCH"
    command = ["farm", "run", first, "--weights", str(best_weights)]
    if s.target.device_kind != "host":
        command += ["--target", s.target.compile]
    if s.parallelism != DEFAULT_PARALLELISM:
        command += ["--parallelism", str(s.parallelism)]
    one = pipelines[0] if len(pipelines) == 1 and not inputs.pipelines[0].scope else None
    return TuneSummary(
        run_dir=run.path, rounds=inputs.committed, rows=len(rows), ok=len(ok),
        distinct=len({(r["benchmark"], r["schedule_key"]) for r in ok}),
        best_ms=one.best_ms if one else None,
        best_schedule_path=one.best_schedule_path if one else None,
        best_weights_path=best_weights, latest_weights_path=run.latest_weights,
        command=shlex.join(command), stopped=stopped, elapsed_s=elapsed_s,
        best_weights_reason=handed.reason if handed else "",
        pipelines=pipelines if one is None else [],
        handed_model=handed_model(run, handed),
        best_round_ms=winner.round_ms if winner and winner.round_ms is not None
        else single.recorded_ms if single else None,
        best_round=winner.round_no if winner else None,
        start_beam_ms=start.median_ms if start else None,
        start_beam_round_ms=start.round_ms if start else None,
        start_beam_round=start.round_no if start else None)
