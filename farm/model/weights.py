"""Adams2019 cost-model weights files: validate, extract the baseline, hash.

The autoscheduler plugin only prints a warning on a missing or corrupt
weights file and then autoschedules with random weights, so every file is
checked here before any work starts.

Format (little-endian): u32 signature, u32 pipeline-features version,
u32 schedule-features version, u32 buffer count; then per buffer u32 ndims,
ndims x u32 extents, prod(extents) x f32.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from farm import atomic
from farm.errors import WeightsError
from farm.machine.halide_env import halide_env

SIGNATURE = 0x68776631  # b"1fwh" read as little-endian u32
PIPELINE_FEATURES_VERSION = 3
SCHEDULE_FEATURES_VERSION = 3
SHAPES = ((8, 40, 7), (8,), (24, 39), (24,), (32, 32), (32,))
SIZE = 16 + sum(4 + 4 * len(s) + 4 * math.prod(s) for s in SHAPES)  # 17136
MAX_WEIGHTS_BYTES = 2**20  # read no further (a file of 17136 to 1 MB: check() says why not)


@dataclass(frozen=True)
class Weights:
    data: bytes
    origin: str  # where they came from, for messages

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check(data: bytes, origin: str) -> Weights:
    """Return `data` as Weights, or raise WeightsError saying what is wrong."""
    problem = _problem(data)
    if problem:
        raise WeightsError(
            f"{origin} is not a usable Adams2019 weights file: {problem}. Use "
            "`farm weights baseline --out FILE` for the built-in weights or a file a run wrote "
            "under RUN_DIR/weights/")
    return Weights(data, origin)


def _problem(data: bytes) -> str | None:
    if len(data) < 16:
        return f"only {len(data)} bytes"
    sig, pver, sver, count = struct.unpack_from("<IIII", data, 0)
    if sig != SIGNATURE:
        return f"bad signature 0x{sig:08x} (want 0x{SIGNATURE:08x})"
    if (pver, sver) != (PIPELINE_FEATURES_VERSION, SCHEDULE_FEATURES_VERSION):
        return (f"feature versions {pver}/{sver}, this Halide uses "
                f"{PIPELINE_FEATURES_VERSION}/{SCHEDULE_FEATURES_VERSION}")
    if count != len(SHAPES):
        return f"{count} buffers (want {len(SHAPES)})"
    offset = 16
    for i, want in enumerate(SHAPES):
        if offset + 4 > len(data):
            return f"truncated in buffer {i}"
        (ndims,) = struct.unpack_from("<I", data, offset)
        if ndims != len(want) or offset + 4 + 4 * ndims > len(data):
            return f"buffer {i} has {ndims} dimensions (want {len(want)})"
        shape = struct.unpack_from(f"<{ndims}I", data, offset + 4)
        if tuple(shape) != want:
            return f"buffer {i} has shape {tuple(shape)} (want {want})"
        offset += 4 + 4 * ndims + 4 * math.prod(shape)
        if offset > len(data):
            return f"truncated in buffer {i}"
    if offset != len(data):
        return f"{len(data) - offset} trailing bytes"
    floats = memoryview(data)[16:]
    if any(not math.isfinite(v) for v in _floats(floats)):
        return "contains NaN or infinite values"
    if not any(_floats(memoryview(data)[o:o + 4 * n]).any() for o, n in _spans(data)):
        return "every weight is zero (a blank model, which ranks every schedule alike)"
    return None


def buffers(weights: Weights) -> list[tuple[int, int]]:
    """(byte offset, float count) of each weight buffer's data in the file."""
    return _spans(weights.data)


def _spans(data: bytes) -> list[tuple[int, int]]:
    out, offset = [], 16
    for shape in SHAPES:
        (ndims,) = struct.unpack_from("<I", data, offset)
        offset += 4 + 4 * ndims
        out.append((offset, math.prod(shape)))
        offset += 4 * math.prod(shape)
    return out


def perturbed(weights: Weights, seed: int, scale: float) -> Weights:
    """`weights` with each value multiplied by (1 + scale * N(0, 1)): a model that ranks
    schedules differently but not at random, for exploration (parameter-space noise)."""
    import numpy as np

    data = bytearray(weights.data)
    rng = np.random.default_rng(seed)
    for offset, n in buffers(weights):
        values = np.frombuffer(weights.data, "<f4", n, offset)
        noisy = values * (1 + scale * rng.standard_normal(n)).astype("<f4")
        data[offset:offset + 4 * n] = noisy.astype("<f4").tobytes()
    return check(bytes(data), f"{weights.origin} perturbed (seed {seed}, scale {scale:g})")


def averaged(models: Sequence[Weights], origin: str) -> Weights:
    """The element-wise mean of `models` (a "soup": models fine-tuned from the same start
    lie in one basin, and their mean often ranks better than each)."""
    import numpy as np

    if not models:
        raise ValueError("no weights to average")
    data = bytearray(models[0].data)
    for offset, n in buffers(models[0]):
        mean = np.mean([np.frombuffer(m.data, "<f4", n, offset) for m in models], axis=0)
        data[offset:offset + 4 * n] = mean.astype("<f4").tobytes()
    return check(bytes(data), origin)


def _floats(buf: memoryview):
    import numpy as np

    # Dimension headers are small integers whose bit patterns are finite floats,
    # so checking the whole tail as f32 is safe and simple.
    return np.frombuffer(buf, dtype="<f4")


def load(path: str | os.PathLike) -> Weights:
    path = Path(path)
    try:
        data = atomic.read_regular(path, MAX_WEIGHTS_BYTES)
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    except OSError as e:
        raise WeightsError(f"cannot read weights file {path}: {e.strerror}") from None
    except ValueError as e:  # a folder, a FIFO, a link to /dev/zero
        raise WeightsError(f"cannot read weights file {path}: {e}") from None
    return check(data, str(path))


def baseline() -> Weights:
    """The weights compiled into libautoschedule_adams2019.so.

    The halide wheel ships no baseline.weights file; the same bytes sit in the
    plugin, found by their signature and validated by the shape list.
    """
    plugin = halide_env().plugin
    blob = plugin.read_bytes()
    header = struct.pack("<IIII", SIGNATURE, PIPELINE_FEATURES_VERSION,
                         SCHEDULE_FEATURES_VERSION, len(SHAPES))
    start = blob.find(header)
    while start >= 0:
        candidate = blob[start:start + SIZE]
        if _problem(candidate) is None:
            return Weights(candidate, f"baseline weights in {plugin.name}")
        start = blob.find(header, start + 1)
    raise WeightsError(
        f"no baseline weights found inside {plugin}; this halide build may differ from 21.x. "
        "Pass --weights FILE")


BASELINE = "baseline"  # `--weights baseline`: Halide's own weights


def resolve(path: str | os.PathLike | None) -> Weights:
    """`--weights` as given: a file, or "baseline" (or None) for Halide's baseline weights.
    "baseline" with a file of that name in the current folder is refused as ambiguous."""
    if path is not None and str(path) == BASELINE:
        if os.path.lexists(BASELINE):
            raise WeightsError("--weights baseline is ambiguous: a file named 'baseline' is "
                               "in this folder; give ./baseline for the file, or run "
                               "elsewhere for Halide's baseline weights")
        return baseline()
    return baseline() if path is None else load(path)


def write(weights: Weights, path: str | os.PathLike) -> None:
    """Write atomically and durably, so a crash never leaves a half-written weights file."""
    from farm import atomic

    atomic.write_bytes(path, weights.data)


def cached_file(weights: Weights) -> Path:
    """A file holding these weights on this node, for the autoscheduler to read: a cache
    entry named by its content's sha256, checked against it before use (random bytes
    written over one gave a schedule 12.8x slower than manual, unwarned) and made again
    when damaged."""
    from farm.machine.cache import build_once, cache_dir

    return build_once(cache_dir("weights") / f"{weights.sha256}.weights",
                      lambda tmp: write(weights, tmp))
