"""The artifacts (binary, library) the round loop keeps in Ray's object store for the
final re-timing and the beam checks: per pipeline, its fastest few samples, its newest
beam search and its beam search with the start weights. The rest are let go."""

from __future__ import annotations

from farm.candidate import OK, Artifact
from farm.model import weights
from farm.tuning.context import RunContext
from farm.tuning.rows import sample_id
from farm.tuning.state import TOP_SAMPLES, Track


class KeptArtifacts:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.refs: dict[str, Artifact] = {}  # by sample id (or start_key)
        self._planned_by_start: dict[int, bool] = {}  # by round: planned with start weights?

    def start_sample(self, t: Track) -> str | None:
        """The sample of the pipeline's beam search with the start weights: its first
        round's candidate 0, when that round was planned with the start weights."""
        first = t.record.first_round
        if first > self.ctx.state.committed:
            return None
        if first not in self._planned_by_start:  # a round's weights never change: read once
            used = weights.load(self.ctx.run.weights_path(first - 1))
            self._planned_by_start[first] = used.sha256 == self.ctx.s.start_weights.sha256
        return sample_id(self.ctx.state.manifest.run_id, first, 0, t.scope) \
            if self._planned_by_start[first] else None

    def start_key(self, t: Track) -> str:
        """The key of the kept artifact of its beam search with the start weights: that
        sample's id, or one of its own when the beam search was built for a check."""
        return self.start_sample(t) or f"start-beam-{t.name}"

    def keep(self, rows_of: list[list[dict]], outcomes_of: list[list]) -> None:
        """After a round: keep, per pipeline, the artifacts of its newest beam search, its
        beam search with the start weights and its fastest samples; let the rest go."""
        refs = dict(self.refs)
        tracks = self.ctx.state.tracks
        for t, rows, outcomes in zip(tracks, rows_of, outcomes_of, strict=True):
            t.beam_sample = rows[0]["sample_id"]  # beam search of the newest weights used
            t.fastest = sorted(t.fastest + [(r["runtime_ms"], r["sample_id"]) for r in rows
                                            if r["status"] == OK])[:TOP_SAMPLES]
            refs.update({r["sample_id"]: o.artifact
                         for r, o in zip(rows, outcomes, strict=True) if o.artifact})
        wanted = {sid for t in tracks for sid in (
            t.beam_sample, self.start_key(t), *(sid for _, sid in t.fastest))}
        self.refs = {sid: refs[sid] for sid in wanted if sid is not None and sid in refs}
