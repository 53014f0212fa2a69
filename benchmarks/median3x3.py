import halide as hl

from farm.benchmark_kit import schedule_manually, set_image_estimates


def mid3(a, b, c):
    return hl.max(hl.min(a, b), hl.min(hl.max(a, b), c))


@hl.generator(name="median3x3")
class Median3x3:
    """3x3 median of a uint8 image: the mid of column minima, mids and maxima."""

    manual = hl.GeneratorParam("auto")
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = hl.Func("bounded_input")
        bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
        lo, md, hi = hl.Func("row_lo"), hl.Func("row_md"), hl.Func("row_hi")
        left, center, right = bounded[x - 1, y], bounded[x, y], bounded[x + 1, y]
        lo[x, y] = hl.min(hl.min(left, center), right)
        hi[x, y] = hl.max(hl.max(left, center), right)
        md[x, y] = mid3(left, center, right)
        max_of_lo = hl.max(hl.max(lo[x, y - 1], lo[x, y]), lo[x, y + 1])
        min_of_hi = hl.min(hl.min(hi[x, y - 1], hi[x, y]), hi[x, y + 1])
        mid_of_md = mid3(md[x, y - 1], md[x, y], md[x, y + 1])
        g.output[x, y] = mid3(max_of_lo, mid_of_md, min_of_hi)

        set_image_estimates(g.input, g.output)
        if not g.using_autoscheduler():
            schedule_manually(g, g.output, x, y, image_inputs=[g.input], staged=[bounded])
