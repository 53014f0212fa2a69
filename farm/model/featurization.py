"""Adams2019 featurizations and .sample files.

A featurization is f32 values, one block of 326 per stage: 39 schedule
features, then 7x41 pipeline features. A .sample file is the featurization
followed by f32 runtime, i32 pipeline id and i32 schedule id.

The runtime is in **milliseconds**, in Halide's own files too: its loop hands RunGen's
"sec/iter" to featurization_to_sample, which multiplies it by 1000 ("sample file stores
times in milliseconds"), and its trainer reads ms ("Implausible runtime in ms"). Checked
on files the loop wrote (tests/data/halide_loop/).
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

SCHEDULE_FEATURES = 39
PIPELINE_FEATURES = 7 * 41
STAGE_FLOATS = SCHEDULE_FEATURES + PIPELINE_FEATURES


def stages(featurization: bytes) -> np.ndarray:
    """The featurization as an array of shape (stages, 326)."""
    if not featurization or len(featurization) % (4 * STAGE_FLOATS):
        raise ValueError(f"a featurization of {len(featurization)} bytes is not "
                         f"a whole number of {STAGE_FLOATS}-float stages")
    return np.frombuffer(featurization, dtype="<f4").reshape(-1, STAGE_FLOATS)


def schedule_key(featurization: bytes) -> str:
    """Equal for candidates whose schedule features are equal (the dedup key)."""
    return hashlib.sha256(stages(featurization)[:, :SCHEDULE_FEATURES].tobytes()).hexdigest()


def pipeline_id(featurization: bytes, params: str = "") -> int:
    """A positive 31-bit id from the pipeline features (and the generator's parameters,
    when it has any): stable across runs, never 0.

    Halide's own loop gives every pipeline id 0, which trains one model over
    several pipelines without saying so (Halide issue 7086). Two parameter sets of one
    generator can have equal pipeline features (a parameter that changes only a loop's
    extent) and different runtimes for one schedule: they are two pipelines.
    """
    data = stages(featurization)[:, SCHEDULE_FEATURES:].tobytes()
    digest = hashlib.sha256(data + (b"\0" + params.encode() if params else b"")).digest()
    return (int.from_bytes(digest[:4], "little") & 0x7FFFFFFF) or 1


def sample_bytes(featurization: bytes, runtime_ms: float, pipeline: int, schedule: int) -> bytes:
    """The bytes of a Halide .sample file."""
    stages(featurization)  # validates
    return featurization + struct.pack("<fii", runtime_ms, pipeline, schedule)
