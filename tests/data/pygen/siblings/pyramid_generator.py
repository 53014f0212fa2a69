"""Two levels of a blur pyramid, with its helpers in a sibling module and its taps in a data
file next to it: what travels with a generator that is more than one file."""

from pathlib import Path

import halide as hl
from pyramid_helpers import downsample

TAPS = [int(t) for t in (Path(__file__).parent / "taps.txt").read_text().split()]


@hl.generator()
class pyramid:
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.vars("x y")
        level1 = downsample(hl.BoundaryConditions.repeat_edge(g.input), TAPS)
        level2 = downsample(level1, TAPS)
        g.output[x, y] = hl.u8(level2[x, y])
        if not g.using_autoscheduler():
            g.output.vectorize(x, 16).parallel(y)
        g.input.set_estimates([(0, 1024), (0, 1024)])
        g.output.set_estimates([(0, 256), (0, 256)])
