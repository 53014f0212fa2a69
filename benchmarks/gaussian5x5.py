import halide as hl

from farm.benchmark_kit import schedule_manually, set_image_estimates


def taps5(a, b, c, d, e):
    return a + 4 * b + 6 * c + 4 * d + e


@hl.generator(name="gaussian5x5")
class Gaussian5x5:
    """5x5 Gaussian blur of a uint8 image: separable 1-4-6-4-1, rounding >> 8."""

    manual = hl.GeneratorParam("auto")
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = hl.Func("bounded_input")
        bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
        wide, rows, cols = hl.Func("wide"), hl.Func("rows"), hl.Func("cols")
        wide[x, y] = hl.cast(hl.UInt(16), bounded[x, y])
        rows[x, y] = taps5(wide[x, y - 2], wide[x, y - 1], wide[x, y], wide[x, y + 1],
                           wide[x, y + 2])
        cols[x, y] = taps5(rows[x - 2, y], rows[x - 1, y], rows[x, y], rows[x + 1, y],
                           rows[x + 2, y])
        g.output[x, y] = hl.cast(hl.UInt(8), (cols[x, y] + 128) >> 8)

        set_image_estimates(g.input, g.output)
        if not g.using_autoscheduler():
            schedule_manually(g, g.output, x, y, image_inputs=[g.input], staged=[bounded])
