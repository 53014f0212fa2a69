"""Helpers for writing benchmark generators (the built-in ones and yours).

A benchmark is a Python Halide generator (`@hl.generator`) with estimates on
every input and output. It may declare `manual = hl.GeneratorParam("auto")`
and call `schedule_manually()` when not autoscheduling; `manual` picks the
hand-written schedule:

- "auto": by target: the HVX schedule when the target has HVX, else the CPU one;
- "cpu": vectorize x by the natural width, parallel y in strips of 16 rows;
- "hvx": offload with .hexagon(), 128-byte vectors, 128x4 tiles, prefetch,
  parallel strips, as Halide's apps/hexagon_benchmarks do;
- "hvx-host": the HVX schedule without .hexagon(), to check it on the host.
"""

from __future__ import annotations

import halide as hl

# The image size the estimates describe (Halide's hexagon benchmarks).
WIDTH, HEIGHT = 1536, 2560
HVX_VECTOR_BYTES = 128
MANUAL_CHOICES = ("auto", "cpu", "hvx", "hvx-host")


def set_image_estimates(*params) -> None:
    """Estimate each 2-D input or output as a WIDTH x HEIGHT image."""
    for p in params:
        p.set_estimates([(0, WIDTH), (0, HEIGHT)])


def manual_choice(g) -> str:
    choice = str(getattr(g, "manual", "auto"))
    if choice not in MANUAL_CHOICES:
        raise ValueError(f"manual={choice!r}; choose one of {', '.join(MANUAL_CHOICES)}")
    if choice == "auto":
        return "hvx" if g.target().has_feature(hl.TargetFeature.HVX) else "cpu"
    return choice


def schedule_manually(g, output, x, y, *, image_inputs=(), staged=()) -> None:
    """Apply the manual schedule `g.manual` asks for to `output`.

    image_inputs: the uint8 image inputs (prefetched and stride-aligned on HVX).
    staged: Funcs the HVX schedule computes per row of the output (the bounded
    input, as the Hexagon apps do); the CPU schedule inlines them.
    """
    choice = manual_choice(g)
    if choice == "cpu":
        output.vectorize(x, g.natural_vector_size(hl.UInt(8))).parallel(y, 16)
        return
    v = HVX_VECTOR_BYTES
    xi, yi, yo = hl.Var("xi"), hl.Var("yi"), hl.Var("yo")
    # Row strides that are multiples of the vector size keep every row aligned.
    for buf in (*image_inputs, output):
        dim = buf.dim(1) if hasattr(buf, "dim") else buf.output_buffer().dim(1)
        dim.set_stride((dim.stride() // v) * v)
    for f in staged:
        f.compute_at(output, y).align_storage(x, v).vectorize(x, v, hl.TailStrategy.RoundUp)
    if choice == "hvx":
        output.hexagon()
    output.tile(x, y, xi, yi, v, 4, hl.TailStrategy.RoundUp).vectorize(xi).unroll(yi)
    for buf in image_inputs:
        output.prefetch(buf, y, y, 2)
    output.split(y, yo, y, 128).parallel(yo)
