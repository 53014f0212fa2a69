"""The memory a compile declares to Ray, so that a node runs no more compiles at once than
its memory holds.

Ray places a task only where its `memory` resource has room, and a node's `memory` is what
it had free when it joined. A pipeline's compiles are alike in size (the beam search's
larger than a random probe's: a beam-32 compile of a local Laplacian pipeline took 5-6 GB,
its probes far less), so each declares the peak measured for its pipeline and kind
(farm.build.process watches it) with a margin, and a pipeline not yet measured declares a
default. The declaration never exceeds the smallest compile node's memory, or the task
could be placed nowhere; a compile that outgrows its machine is ended by its own watch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ray

from farm.candidate import BuildResult, CandidateSpec

DEFAULT_MB = 1024.0  # a pipeline not measured yet (the corpus's compiles peak at 0.3-1.4 GB)
MARGIN = 1.25  # over the measured peak: a draw of the same pipeline may need more
FLOOR_MB = 256.0  # the compile process itself, Halide loaded


def smallest_node_mb() -> float | None:
    """The smallest `memory` resource of the cluster's live nodes with CPUs (None: no
    node says)."""
    sizes = [n["Resources"]["memory"] / 2**20 for n in ray.nodes()
             if n.get("Alive") and n["Resources"].get("CPU") and n["Resources"].get("memory")]
    return min(sizes) if sizes else None


@dataclass
class CompileMemory:
    """Each pipeline's measured compile peaks, and what its next compile declares."""

    cap_mb: float | None = None  # the most a compile may declare (smallest_node_mb)
    peaks: dict[tuple[str, bool], float] = field(default_factory=dict)

    @staticmethod
    def _key(spec: CandidateSpec) -> tuple[str, bool]:
        return spec.benchmark.label, bool(spec.beam_size and spec.beam_size > 1)

    def declare_mb(self, spec: CandidateSpec) -> float:
        peak = self.peaks.get(self._key(spec))
        wanted = max(FLOOR_MB, peak * MARGIN) if peak is not None else DEFAULT_MB
        return wanted if self.cap_mb is None else min(wanted, self.cap_mb)

    def options(self, spec: CandidateSpec) -> dict:
        """Ray options for `spec`'s compile task."""
        return {"memory": int(self.declare_mb(spec) * 2**20)}

    def measured(self, spec: CandidateSpec, result: BuildResult | None) -> None:
        if result is not None and result.memory_mb:
            key = self._key(spec)
            self.peaks[key] = max(self.peaks.get(key, 0.0), result.memory_mb)
