
import halide as hl


@hl.generator(name="brighten")
class Brighten:
    """Add 10 to every pixel."""
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        g.output[x, y] = hl.saturating_add(g.input[x, y], hl.cast(hl.UInt(8), 10))
        g.input.set_estimates([(0, 1536), (0, 2560)])
        g.output.set_estimates([(0, 1536), (0, 2560)])
