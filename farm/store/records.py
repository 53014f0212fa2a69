"""The JSON records of a run directory, as typed values.

  manifest.json            Manifest: what the run is, and each invocation
  rounds/round-NNNNNN.json RoundRecord: one round's figures, beam check and acceptance
  weights/best.json        BestWeightsRecord: which weights best.weights are, and why
  best/runtime.json        RetimingRecord: the final re-timing's winner and finalists

Each record has one writer and any number of readers: the writers and readers are
RunDir methods (farm.store.rundir), which own the paths. The JSON keys on disk are the
field names; `to_json()` and `from_json()` convert (farm.store.jsonrecord: files of
earlier and later releases read). Whoever wrote the file, `from_json` checks what it knows
(each record's CHECKS, farm.store.checks): a field of the wrong type, out of range or a
name that could not be one is a RecordError naming the field, never a value the farm goes
on with.

This module holds data only (no I/O; of the farm, only farm.store's checks and record
base), so every reader can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from farm.store.checks import (
    COUNT,
    COUNTS,
    FILE_NAME,
    LABEL,
    LABELS,
    MS,
    NAME,
    NAMES,
    PERCENT,
    PIPELINE_FIGURES,
    POSITIVE,
    RATIO,
    RELATIVE_PATH,
    ROUND,
    SECONDS,
    SEED,
    SHARE,
    TEXT,
    TIMES_MS,
    TOKEN,
    Check,
    RecordError,
    shown,
)
from farm.store.jsonrecord import JsonRecord, dict_of, item, list_of

MANIFEST_VERSION = 1
# Finalist labels in the re-timing record that readers look for
START_LABEL = "beam search with start weights"  # what every verdict compares with
MANUAL_LABEL = "manual schedule"  # the benchmark's own schedule, timed for reference

@dataclass
class PipelineRecord(JsonRecord):
    """One pipeline of a run: a campaign has several (farm.campaign), a run of one
    benchmark one. Its rows' `benchmark` column is `name`."""

    name: str  # the generator's name
    ref: str  # as given: a built-in name or path.py:name
    sha256: str  # of the generator's source: a changed file is a different pipeline
    pipeline_id: int | None = None  # from its featurization, once a round has built it
    first_round: int = 1  # the round it joined the run in
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    CHECKS: ClassVar = {"name": NAME, "ref": LABEL, "sha256": TEXT, "first_round": ROUND}


PRETRAIN = "pretrain"  # a pre-training's manifest generator (a campaign's is "campaign")
IMPORTED = "imported"  # `farm import`'s: samples Halide's own loop measured


class RunKind(StrEnum):
    """What a run directory holds (Manifest.kind); the values are the model registry's
    words for where a model came from (farm.store.registry.ModelRecord.kind)."""

    SINGLE = "run"  # `farm autotune` of one pipeline
    CAMPAIGN = "campaign"  # `farm autotune` of several pipelines, one model
    PRETRAINING = "pre-training"  # `farm pretrain`: pipelines drawn from one generator
    IMPORTED = "import"  # `farm import`: samples of Halide's own loop

    def describe(self) -> str:
        """The kind in the words of the command that makes it."""
        return {RunKind.SINGLE: "a single-pipeline run (farm autotune)",
                RunKind.CAMPAIGN: "a campaign (farm autotune of several pipelines)",
                RunKind.PRETRAINING: "a pre-training (farm pretrain)",
                RunKind.IMPORTED: "samples imported from Halide's loop (farm import)"}[self]
ALLOCATED_ID_STRIDE = 1 << 16  # farm.search.allocation.ID_STRIDE (test_allocation checks)


@dataclass
class Manifest(JsonRecord):
    """manifest.json: what the run is (benchmark, target, batch size, ...) and each
    invocation of `farm autotune` on it."""

    run_id: str
    benchmark: str  # as given: a built-in name or path.py:name
    generator: str  # the generator's name
    benchmark_sha256: str
    target: str
    schedule_target: str
    batch_size: int
    parallelism: int
    start_weights_sha256: str
    created_at: str
    pipeline_id: int | None = None
    device_class: str | None = None  # the class whose model the run trains (None: older runs)
    # A campaign tunes several pipelines into one model (benchmark and generator are then
    # "campaign" and benchmark_sha256 ""); a run of one benchmark lists that one.
    campaign: bool = False
    pipelines: list[PipelineRecord] = field(default_factory=list)
    also_train_on: list[str] = field(default_factory=list)  # runs whose rows train it too
    # how a campaign's round is split across its pipelines (farm.search.allocation): runs
    # from before allocation split it equally
    allocation: str = "equal"
    version: int = MANIFEST_VERSION
    invocations: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    # Settings that decide which samples belong together; --rounds and --budget may change
    # (and a campaign's pipelines: farm.campaign checks each).
    FIXED: ClassVar[tuple[str, ...]] = ("generator", "benchmark_sha256", "target",
                                        "batch_size", "parallelism", "start_weights_sha256",
                                        "campaign")
    # What a differing hash of FIXED means, so that a resume's refusal names what to restore
    CHANGED: ClassVar[Mapping[str, str]] = {
        "benchmark_sha256": " (the benchmark's or generator's source changed since the run "
                            "began: restore that source, e.g. the farm version that began it)",
        "start_weights_sha256": " (other start weights: give the run's --weights again)",
    }
    NESTED: ClassVar = {"pipelines": list_of(PipelineRecord)}
    CHECKS: ClassVar = {"run_id": TOKEN, "benchmark": LABEL, "generator": NAME,
                        "benchmark_sha256": TEXT, "target": LABEL, "schedule_target": LABEL,
                        "batch_size": POSITIVE, "parallelism": POSITIVE,
                        "start_weights_sha256": TEXT, "device_class": TEXT, "version": POSITIVE,
                        "allocation": Check(lambda v: v in ("equal", "gain"),
                                            "'equal' or 'gain'")}

    def pipeline(self, name: str) -> PipelineRecord | None:
        return next((p for p in self.all_pipelines() if p.name == name), None)

    def is_start_weights(self, sha256: str) -> bool:
        """Whether weights of this `sha256` are the run's own start weights (a hand-over of
        them is no model the run trained; an import records none)."""
        return bool(self.start_weights_sha256) and sha256 == self.start_weights_sha256

    @property
    def kind(self) -> RunKind:
        """What the run is. Files record it by sentinels, read here only: a pre-training's
        and an import's generator (PRETRAIN, IMPORTED; both are campaigns of pipelines),
        and `campaign`."""
        if self.generator == PRETRAIN:
            return RunKind.PRETRAINING
        if self.generator == IMPORTED:
            return RunKind.IMPORTED
        return RunKind.CAMPAIGN if self.campaign else RunKind.SINGLE

    @property
    def id_stride(self) -> int:
        """Schedule ids per round: the batch size, or, where pipelines' shares vary,
        ALLOCATED_ID_STRIDE (farm.search.allocation.ID_STRIDE)."""
        return ALLOCATED_ID_STRIDE if self.allocation == "gain" else self.batch_size

    def all_pipelines(self) -> list[PipelineRecord]:
        """The run's pipelines. A run of one benchmark from before campaigns lists none:
        its one pipeline is then the manifest's benchmark."""
        if self.pipelines or self.campaign:
            return self.pipelines
        return [PipelineRecord(self.generator, self.benchmark, self.benchmark_sha256,
                               self.pipeline_id)]


@dataclass(frozen=True)
class VerdictRecord(JsonRecord):
    """A farm.stats.verdict.Verdict as written: `verdict` is its word ("faster", ...)."""

    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    pairs: int = 0
    verdict: str = ""
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    CHECKS: ClassVar = {"ratio": RATIO, "low": RATIO, "high": RATIO, "pairs": COUNT,
                        "verdict": TEXT}

    @property
    def word(self) -> str:
        """The verdict's word, under the name farm.stats.verdict.Verdict gives it."""
        return self.verdict


@dataclass(frozen=True)
class ScreenedRecord(JsonRecord):
    """One candidate a round drew while screening (farm.tuning.screening): the model's
    prediction, and whether it was built."""

    pipeline: str  # its name in a campaign, else ""
    index: int  # the slot it was drawn for
    seed: int
    kept: bool  # built in the round (it holds its row's seed), else screened out
    predicted: float | None = None  # None: it failed to autoschedule, or repeats a schedule
    error: str = ""
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    CHECKS: ClassVar = {"index": COUNT, "seed": SEED, "error": TEXT}


@dataclass(frozen=True)
class ScreeningRecord(JsonRecord):
    """What screening did in a round: `factor` draws per screened slot, the model's pick
    among them built, the rest not."""

    factor: int
    drawn: int  # candidates autoscheduled for screening
    kept: int  # of them, built in the round
    autoschedule_s: float = 0.0  # CPU seconds of the screening autoschedules
    wall_s: float = 0.0
    candidates: list[ScreenedRecord] = field(default_factory=list)
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"candidates": list_of(ScreenedRecord)}
    CHECKS: ClassVar = {"factor": POSITIVE, "drawn": COUNT, "kept": COUNT,
                        "autoschedule_s": SECONDS, "wall_s": SECONDS}


@dataclass(frozen=True)
class BeamCheck(JsonRecord):
    """The provisional weights' beam search re-timed against the start weights'."""

    passed: bool
    reason: str = ""
    verdict: VerdictRecord | None = None
    pipelines: dict[str, VerdictRecord] | None = None  # a campaign's, by pipeline name
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"verdict": VerdictRecord.from_json,
                        "pipelines": dict_of(VerdictRecord)}
    OMIT_IF_NONE: ClassVar = ("pipelines",)
    CHECKS: ClassVar = {"pipelines": NAMES}


@dataclass(frozen=True)
class JudgedRecord(JsonRecord):
    """One candidate's figures on the held-out unit (farm.model.acceptance.Judged as written)."""

    name: str
    weights_sha256: str | None = None
    accuracy: float | None = None  # held-out pairwise ranking accuracy
    gain: float | None = None
    gain_low: float | None = None
    train_loss: float | None = None
    train_rate: float | None = None  # the trainer's ordering rate on its training data
    train_s: float = 0.0
    trained_on: int = 0
    note: str = ""
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    # (train_rate is Halide's trainer's figure, read from its output: a finite number)
    CHECKS: ClassVar = {"name": LABEL, "weights_sha256": TEXT, "accuracy": SHARE,
                        "train_s": SECONDS, "trained_on": COUNT}


@dataclass(frozen=True)
class AcceptanceRecord(JsonRecord):
    """Which weights plan the next round and why (farm.model.acceptance.Decision.record())."""

    accepted: str  # "current" or the provisional candidate's name
    reason: str = ""
    weights_sha256: str | None = None
    unit: str = ""
    held_out: str = ""
    pairs: int = 0
    candidates: list[JudgedRecord] = field(default_factory=list)  # [0]: the current weights
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"candidates": list_of(JudgedRecord)}
    CHECKS: ClassVar = {"accepted": LABEL, "weights_sha256": TEXT, "pairs": COUNT}
    KEPT: ClassVar[str] = "current"  # `accepted` when no candidate beat the current weights

    @property
    def switched(self) -> bool:
        """Did the weights change? True when a candidate (`accepted` names it) beat the
        current weights: it becomes the provisional weights, whose beam search the next
        round checks before they plan the rounds after it (that round's beam_check)."""
        return self.accepted != self.KEPT

    @property
    def decision(self) -> str:
        """The decision in a few words: "kept the current weights" or "switched to NAME
        (provisional: its beam search is checked next round)"."""
        if not self.switched:
            return "kept the current weights"
        return (f"switched to {self.accepted} (provisional: its beam search is checked next "
                "round)")


@dataclass(frozen=True)
class RoundRecord(JsonRecord):
    """rounds/round-NNNNNN.json: one round's timings, beam check and acceptance.

    Files of the first release lack `acceptance` (they have `evaluation` and `training`,
    kept in `extra`); `beam_check` is present only in rounds that ran one."""

    round: int
    started_at: str = ""
    finished_at: str = ""
    candidates: int = 0
    weights_sha256: str | None = None  # the weights that planned the round
    statuses: dict[str, int] = field(default_factory=dict)
    autoschedule_s: float = 0.0
    precheck_s: float = 0.0
    codegen_s: float = 0.0
    link_s: float = 0.0
    timing_s: float = 0.0
    distinct_ok: int = 0
    beam_ms: float | None = None  # candidate 0's runtime (its twin's when a duplicate)
    best_ms: float | None = None  # the round's
    best_so_far_ms: float | None = None  # the run's
    beam_check: BeamCheck | None = None
    acceptance: AcceptanceRecord | None = None
    retrain_s: float = 0.0
    wall_s: float = 0.0
    # a campaign's per pipeline: beam_ms, best_ms, best_so_far_ms, ok
    pipelines: dict[str, dict] | None = None
    # a part record's steps done after the commit ("batch", "beam_check",
    # "provisional_kept");
    # None in a finished record
    steps: list[str] | None = None
    resumed: bool | None = None  # True: its later steps were done by a resumed run
    screening: ScreeningRecord | None = None  # present in a round that screened (--screen)
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"beam_check": BeamCheck.from_json,
                        "acceptance": AcceptanceRecord.from_json,
                        "screening": ScreeningRecord.from_json}
    OMIT_IF_NONE: ClassVar = ("beam_check", "acceptance", "pipelines", "steps", "resumed",
                              "screening")
    CHECKS: ClassVar = {"round": ROUND, "candidates": COUNT, "weights_sha256": TEXT,
                        "statuses": COUNTS, "autoschedule_s": SECONDS, "precheck_s": SECONDS,
                        "codegen_s": SECONDS, "link_s": SECONDS, "timing_s": SECONDS,
                        "distinct_ok": COUNT, "beam_ms": MS, "best_ms": MS,
                        "best_so_far_ms": MS, "retrain_s": SECONDS, "wall_s": SECONDS,
                        "pipelines": PIPELINE_FIGURES, "steps": LABELS}


@dataclass(frozen=True)
class ComparedBeam(JsonRecord):
    """A beam search that best.weights were chosen among."""

    weights: str = ""  # its weights file under weights/ ("" when it has none)
    median_ms: float | None = None
    vs_start: VerdictRecord | None = None
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"vs_start": VerdictRecord.from_json}
    CHECKS: ClassVar = {"weights": FILE_NAME, "median_ms": MS}


def _compared(data: Any) -> dict[str, ComparedBeam]:
    # the first release wrote {weights file: median ms}
    if not isinstance(data, Mapping):
        raise RecordError(f"is {shown(data)}, not a JSON object")
    return {label: item(ComparedBeam, f"[{shown(label)}]",
                         {"weights": label, "median_ms": value}
                         if isinstance(value, (int, float)) and not isinstance(value, bool)
                         else value)
            for label, value in data.items()}


@dataclass(frozen=True)
class BestWeightsRecord(JsonRecord):
    """weights/best.json: which weights best.weights are, and why (farm.tuning.finalize)."""

    weights: str  # the run's weights file they came from, under weights/
    reason: str = ""
    weights_sha256: str | None = None
    beam_ms: float | None = None  # their beam search's median re-timing
    measured: str | None = None  # how beam_ms was measured
    sample_id: str | None = None  # the sample whose artifact was re-timed, if any
    compared: dict[str, ComparedBeam] = field(default_factory=dict)  # by finalist label
    # the weights a fresh re-timing confirmed or refused (their sha256), and what it found:
    # the hand-over is checked on timings it was not chosen on (no winner's curse)
    confirmed_for: str | None = None
    confirmation: dict[str, ComparedBeam] = field(default_factory=dict)  # by pipeline
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"compared": _compared, "confirmation": _compared}
    CHECKS: ClassVar = {"weights": FILE_NAME, "weights_sha256": TEXT, "beam_ms": MS,
                        "sample_id": TEXT, "compared": LABELS, "confirmed_for": TEXT,
                        "confirmation": LABELS}


@dataclass(frozen=True)
class FinalistRecord(JsonRecord):
    """One schedule of the final re-timing."""

    label: str
    median_ms: float | None = None
    retimes_ms: list[float | None] = field(default_factory=list)
    weights: str = ""  # its weights file under weights/, for beam-search finalists
    beam_search: bool = False
    reference: bool = False  # timed for comparison only (the manual schedule)
    also: list[str] = field(default_factory=list)  # other labels of the same schedule
    vs_start: VerdictRecord | None = None  # against beam search with the start weights
    # its timing during the round that measured it, when it is a sample (or re-times one):
    # once, with few repeats, possibly cut off early, beside other work; absent in older runs
    round_ms: float | None = None
    round_no: int | None = None  # that round
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"vs_start": VerdictRecord.from_json}
    OMIT_IF_NONE: ClassVar = ("round_ms", "round_no")
    CHECKS: ClassVar = {"label": LABEL, "median_ms": MS, "retimes_ms": TIMES_MS,
                        "weights": FILE_NAME, "also": LABELS, "round_ms": MS, "round_no": ROUND}

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label, *self.also)


@dataclass(frozen=True)
class RetimingRecord(JsonRecord):
    """best/runtime.json: the final re-timing, its winner (the schedule in best/) and every
    finalist timed."""

    benchmark: str
    runtime_ms: float  # the winner's median re-timing
    finalist: str  # the winner's label
    retimes_ms: list[float | None] = field(default_factory=list)
    weights: str | None = None  # the winner's weights file under weights/, if it has one
    weights_file: str | None = None  # best/NAME.weights: exactly the weights that planned it
    recorded_ms: float | None = None  # its runtime when it was a sample
    seed: int = 0
    beam_size: int | None = None
    random_dropout: int = 100
    parallelism: int = 0
    target: str = ""
    library: str = ""  # NAME.a in best/
    link_with: str | None = None  # halide_runtime.a when best/ holds a separate runtime
    finalists: list[FinalistRecord] = field(default_factory=list)
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # unknown keys

    NESTED: ClassVar = {"finalists": list_of(FinalistRecord)}
    CHECKS: ClassVar = {"benchmark": NAME, "runtime_ms": MS, "finalist": LABEL,
                        "retimes_ms": TIMES_MS, "weights": FILE_NAME,
                        "weights_file": RELATIVE_PATH, "recorded_ms": MS, "seed": SEED,
                        "beam_size": POSITIVE, "random_dropout": PERCENT,
                        "parallelism": COUNT, "target": TEXT, "library": FILE_NAME,
                        "link_with": FILE_NAME}

    def finalist_labelled(self, label: str) -> FinalistRecord | None:
        return next((f for f in self.finalists if label in f.labels), None)
