"""The memory a compile declares to Ray, so that a node runs no more compiles at once than
its memory holds.

Ray places a task only where its `memory` resource has room, and a node's `memory` is what
it had free when it joined. A pipeline's compiles are alike in size (the beam search's
larger than a random probe's: a beam-32 compile of a local Laplacian pipeline took 5-6 GB,
its probes far less), so each declares the peak measured for its pipeline and kind
(farm.build.process watches it) with a margin, and a pipeline not yet measured declares a
default. The declaration never exceeds the smallest compile node's memory, or the task
could be placed nowhere; a compile that outgrows its machine is ended by its own watch.

The peaks are kept in the driver's cache (FARM_CACHE_DIR/memory/compile-peaks.json, by
pipeline and kind), so the next command that compiles a pipeline declares its size from
the first compile on: two first compiles of a big pipeline no longer start side by side.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import ray

from farm.candidate import BuildResult, CandidateSpec

PEAKS_FILE = "compile-peaks.json"
MAX_PEAKS = 10_000  # pipelines kept in the file (the largest peaks win past it)
DEFAULT_MB = 1024.0  # a pipeline not measured yet (the corpus's compiles peak at 0.3-1.4 GB)
MARGIN = 1.25  # over the measured peak: a draw of the same pipeline may need more
FLOOR_MB = 256.0  # the compile process itself, Halide loaded


def kept_compile_memory() -> CompileMemory:
    """The peaks this machine's cache keeps (none when the cache cannot be used)."""
    from farm.errors import FarmError
    from farm.machine.cache import cache_dir

    try:
        return CompileMemory.kept(cache_dir("memory") / PEAKS_FILE)
    except FarmError:
        return CompileMemory()


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
    path: Path | None = None  # where the peaks are kept between commands (None: nowhere)

    @classmethod
    def kept(cls, path: Path) -> CompileMemory:
        """The peaks kept at `path` (none when it is missing or not such a file)."""
        from farm.atomic import read_regular

        peaks: dict[tuple[str, bool], float] = {}
        try:
            data = json.loads(read_regular(path, limit=4 << 20))
            for item in data if isinstance(data, list) else []:
                key, beam, mb = item
                if isinstance(key, str) and isinstance(beam, bool) and \
                        isinstance(mb, (int, float)) and 0 < mb < 2**30:
                    peaks[(key, beam)] = float(mb)
        except (OSError, ValueError, TypeError):
            pass  # a damaged file costs the measurements, nothing else
        return cls(peaks=peaks, path=path)

    def keep(self) -> None:
        """Write the peaks to `path` (a cache: a failed write is no error)."""
        if self.path is None:
            return
        from farm.atomic import write_json

        largest = sorted(self.peaks.items(), key=lambda kv: -kv[1])[:MAX_PEAKS]
        with suppress(OSError):
            write_json(self.path, [[k, beam, mb] for (k, beam), mb in largest])

    @staticmethod
    def _key(spec: CandidateSpec) -> tuple[str, bool]:
        """A pipeline by its name and its source's sha256 (two users' `blur`s differ)."""
        return (f"{spec.benchmark.label}@{spec.benchmark.sha256[:16]}",
                bool(spec.beam_size and spec.beam_size > 1))

    def declare_mb(self, spec: CandidateSpec) -> float:
        peak = self.peaks.get(self._key(spec))
        wanted = max(FLOOR_MB, peak * MARGIN) if peak is not None else DEFAULT_MB
        return wanted if self.cap_mb is None else min(wanted, self.cap_mb)

    def options(self, spec: CandidateSpec) -> dict:
        """Ray options for `spec`'s compile task."""
        return {"memory": int(self.declare_mb(spec) * 2**20)}

    def killed(self, spec: CandidateSpec) -> None:
        """`spec`'s compile was killed for memory before it could be measured: its
        pipeline's next ones declare all a node has, so they run alone."""
        if self.cap_mb is not None:
            key = self._key(spec)
            self.peaks[key] = max(self.peaks.get(key, 0.0), self.cap_mb)

    def measured(self, spec: CandidateSpec, result: BuildResult | None) -> None:
        if result is not None and result.memory_mb:
            key = self._key(spec)
            self.peaks[key] = max(self.peaks.get(key, 0.0), result.memory_mb)
