"""Unsharp masking: a pipeline that is not one of the built-in six, for tests/perf/quality.py.

Nothing in the farm was tuned on it: it checks that the farm's choices hold for a pipeline
nobody tuned them on. A separable 5x5 binomial blur subtracted from the image, with a
manual schedule (tiles, vectors, parallel rows) for comparison.
"""

import halide as hl


@hl.generator(name="unsharp")
class Unsharp:
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        clamped = hl.BoundaryConditions.repeat_edge(g.input)
        wide = hl.Func("wide")
        wide[x, y] = hl.cast(hl.Int(32), clamped[x, y])
        blur_x = hl.Func("blur_x")
        blur_x[x, y] = (wide[x - 2, y] + 4 * wide[x - 1, y] + 6 * wide[x, y]
                        + 4 * wide[x + 1, y] + wide[x + 2, y])
        blur_y = hl.Func("blur_y")
        blur_y[x, y] = (blur_x[x, y - 2] + 4 * blur_x[x, y - 1] + 6 * blur_x[x, y]
                        + 4 * blur_x[x, y + 1] + blur_x[x, y + 2]) >> 8
        sharp = hl.Func("sharp")
        sharp[x, y] = 2 * wide[x, y] - blur_y[x, y]
        g.output[x, y] = hl.cast(hl.UInt(8), hl.clamp(sharp[x, y], 0, 255))
        g.input.set_estimates([(0, 1536), (0, 2560)])
        g.output.set_estimates([(0, 1536), (0, 2560)])
        if not g.using_autoscheduler():
            xi, yi = hl.Var("xi"), hl.Var("yi")
            g.output.tile(x, y, xi, yi, 64, 32).vectorize(xi, 16).parallel(y)
            blur_x.compute_at(g.output, x).vectorize(x, 16)
