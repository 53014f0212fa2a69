import halide as hl

from farm.benchmark_kit import schedule_manually, set_image_estimates


def conv3x3(g, accumulator: hl.Type):
    x, y = hl.Var("x"), hl.Var("y")
    bounded = hl.Func("bounded_input")
    bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
    acc = hl.cast(accumulator, 0)
    for dy in range(3):
        for dx in range(3):
            acc = acc + (hl.cast(accumulator, bounded[x + dx - 1, y + dy - 1])
                         * hl.cast(accumulator, g.mask[dx, dy]))
    g.output[x, y] = hl.cast(hl.UInt(8), hl.clamp(acc >> 4, 0, 255))

    set_image_estimates(g.input, g.output)
    g.mask.set_estimates([(0, 3), (0, 3)])
    if not g.using_autoscheduler():
        schedule_manually(g, g.output, x, y, image_inputs=[g.input], staged=[bounded])


@hl.generator(name="conv3x3a16")
class Conv3x3a16:
    """3x3 convolution of a uint8 image with an int8 mask, int16 accumulator, >> 4."""

    manual = hl.GeneratorParam("auto")
    input = hl.InputBuffer(hl.UInt(8), 2)
    mask = hl.InputBuffer(hl.Int(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        conv3x3(g, hl.Int(16))


@hl.generator(name="conv3x3a32")
class Conv3x3a32:
    """3x3 convolution of a uint8 image with an int8 mask, int32 accumulator, >> 4."""

    manual = hl.GeneratorParam("auto")
    input = hl.InputBuffer(hl.UInt(8), 2)
    mask = hl.InputBuffer(hl.Int(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        conv3x3(g, hl.Int(32))
