import halide as hl

from farm.benchmark_kit import schedule_manually, set_image_estimates


@hl.generator(name="dilate3x3")
class Dilate3x3:
    """3x3 dilation (maximum) of a uint8 image."""

    manual = hl.GeneratorParam("auto")
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = hl.Func("bounded_input")
        bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
        vmax = hl.Func("vmax")
        vmax[x, y] = hl.max(hl.max(bounded[x, y - 1], bounded[x, y]), bounded[x, y + 1])
        g.output[x, y] = hl.max(hl.max(vmax[x - 1, y], vmax[x, y]), vmax[x + 1, y])

        set_image_estimates(g.input, g.output)
        if not g.using_autoscheduler():
            schedule_manually(g, g.output, x, y, image_inputs=[g.input], staged=[bounded])
