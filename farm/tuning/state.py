"""The run as the round loop follows it: its pipelines (tracks) and what the committed
rounds say, read from the run directory when a run starts or resumes."""

from __future__ import annotations

from dataclasses import dataclass, field

from farm import atomic
from farm.candidate import DUPLICATE, OK, TRANSIENT
from farm.errors import RunDirError
from farm.model import weights
from farm.pipelines.benchmark import PYTHON, Benchmark, write_files
from farm.report.progress import Progress
from farm.search.plans import SeenSchedules, scoped_key
from farm.store.records import Manifest, PipelineRecord
from farm.store.rundir import RunDir
from farm.store.samples import STATE_COLUMNS
from farm.tuning.rows import sample_id
from farm.tuning.settings import TuneSettings

TOP_SAMPLES = 2  # fastest distinct samples whose artifacts are kept to re-time at the end


@dataclass
class Track:
    """One pipeline of the run, as the round loop follows it."""

    bench: Benchmark
    record: PipelineRecord
    scope: str  # its name in a campaign (its schedules' claims, sample ids, best/NAME/)
    best_ms: float | None = None
    # the fastest distinct samples (runtime, sample id) whose artifacts are kept
    fastest: list[tuple[float, str]] = field(default_factory=list)
    beam_sample: str | None = None  # the newest round's beam search

    @property
    def name(self) -> str:
        """The pipeline's name: its generator's, with its parameters (Benchmark.label)."""
        return self.bench.label

    def keep_below(self) -> float | None:
        return self.fastest[-1][0] if len(self.fastest) == TOP_SAMPLES else None


@dataclass
class RunState:
    """What the committed rounds say, kept up to date round by round."""

    manifest: Manifest
    tracks: list[Track]
    committed: int  # rounds committed (lost ones included: they were rounds too)
    rows: int  # sample rows committed
    seen: SeenSchedules  # the run's schedules, claimed by the rows that hold them
    round_s: list[float] = field(default_factory=list)  # this invocation's rounds' wall time
    shares: dict[int, list] = field(default_factory=dict)  # by round: its Shares, as planned

    @property
    def one_best_ms(self) -> float | None:
        """The best runtime so far when the run tunes one pipeline (progress shows it)."""
        return self.tracks[0].best_ms if len(self.tracks) == 1 else None


def start(run: RunDir, s: TuneSettings, manifest: Manifest, progress: Progress,
          benchmarks: tuple[Benchmark, ...] | None = None, announce: bool = True) -> RunState:
    """Join this invocation's pipelines (`benchmarks`, by default the settings') to the
    manifest, write the files a run starts with, and read what the committed rounds say."""
    tracks = join(run, manifest, progress, s.benchmarks if benchmarks is None else benchmarks,
                  announce)
    _write_start_files(run, s, tracks)
    return _load(run, manifest, tracks, progress)


def join(run: RunDir, m: Manifest, progress: Progress, benchmarks: tuple[Benchmark, ...],
         announce: bool = True) -> list[Track]:
    """The manifest's pipelines, with the ones of `benchmarks` it lacks; the tracks of
    `benchmarks` (validation refused a pipeline whose generator changed). Pipelines that
    join after round 1 or are left out are said, unless not `announce` (a pre-training
    joins new ones every round, and leaves the others out)."""
    m.pipelines = m.all_pipelines()  # a run of the first releases lists none
    names = [b.label for b in benchmarks]
    tracks = []
    for b in benchmarks:
        rec = m.pipeline(b.label)
        if rec is None:
            done = run.samples.rounds_done()  # lost rounds were rounds too
            rec = PipelineRecord(b.label, b.ref, b.sha256, first_round=done + 1)
            m.pipelines.append(rec)
            if done and announce:
                progress.message(f"{b.label} joins the campaign at round {done + 1}")
        tracks.append(Track(b, rec, b.label if m.campaign else ""))
    left = [p.name for p in m.pipelines if p.name not in names]
    if left and announce:
        progress.message(f"left out this time: {', '.join(left)} (name them to tune them "
                         "again)")
    run.write_manifest(m)
    return tracks


def _write_start_files(run: RunDir, s: TuneSettings, tracks: list[Track]) -> None:
    if not run.weights_path(0).exists():
        weights.write(s.start_weights, run.weights_path(0))
    for t in tracks:
        if t.bench.builtin:
            continue
        python = t.bench.kind == PYTHON
        copy = run.generator_copy(t.bench.name if t.scope else None, python)
        # generators/ and generators/NAME/: no link takes the copy out of the run
        atomic.real_dir(copy.parent if python else copy, run.path)
        if python:
            atomic.write_text(copy, t.bench.source)
        else:
            write_files(copy, t.bench.files, t.bench.path)


def _load(run: RunDir, manifest: Manifest, tracks: list[Track],
          progress: Progress) -> RunState:
    store = run.samples
    rounds, lost = store.committed_rounds(), store.lost_rounds()
    every = sorted(rounds + lost)
    if every != list(range(1, len(every) + 1)):
        raise RunDirError(f"{store.dir} holds rounds {rounds}, not 1..N; it was edited by "
                          "hand. Restore the missing rounds or start a new --out")
    if lost:
        progress.message(f"rounds {', '.join(map(str, lost))} are lost (their files are in "
                         f"{store.dir}/_damaged/): going on without them")
    committed = len(every)
    rows = store.read(STATE_COLUMNS).to_pylist()
    seen = SeenSchedules()
    for row in sorted(rows, key=lambda r: (r["benchmark"] or "", r["schedule_id"])):
        if row["schedule_key"] and row["status"] not in (DUPLICATE, *TRANSIENT):
            seen.claim(scoped_key(row["benchmark"] if manifest.campaign else "",
                                  row["schedule_key"]), row["schedule_id"])
    for t in tracks:
        t.best_ms = min((r["runtime_ms"] for r in rows if r["status"] == OK
                         and (not t.scope or r["benchmark"] == t.scope)), default=None)
        if committed >= t.record.first_round:  # the newest round's beam search
            t.beam_sample = sample_id(manifest.run_id, committed, 0, t.scope)
    return RunState(manifest, tracks, committed, len(rows), seen)
