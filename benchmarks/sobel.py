import halide as hl

from farm.benchmark_kit import schedule_manually, set_image_estimates


@hl.generator(name="sobel")
class Sobel:
    """Sobel edge magnitude of a uint8 image: |gx| + |gy| clamped to 255."""

    manual = hl.GeneratorParam("auto")
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = hl.Func("bounded_input")
        bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
        wide, smooth_v, smooth_h = hl.Func("wide"), hl.Func("smooth_v"), hl.Func("smooth_h")
        wide[x, y] = hl.cast(hl.UInt(16), bounded[x, y])
        smooth_v[x, y] = wide[x, y - 1] + 2 * wide[x, y] + wide[x, y + 1]
        smooth_h[x, y] = wide[x - 1, y] + 2 * wide[x, y] + wide[x + 1, y]
        gx = hl.absd(smooth_v[x + 1, y], smooth_v[x - 1, y])
        gy = hl.absd(smooth_h[x, y + 1], smooth_h[x, y - 1])
        g.output[x, y] = hl.cast(hl.UInt(8), hl.min(gx + gy, 255))

        set_image_estimates(g.input, g.output)
        if not g.using_autoscheduler():
            schedule_manually(g, g.output, x, y, image_inputs=[g.input], staged=[bounded])
