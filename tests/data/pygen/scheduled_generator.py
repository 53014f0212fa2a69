"""A generator whose schedule ignores using_autoscheduler(), as Halide's
python_bindings/apps/blur_generator.py does: Halide refuses to autoschedule it."""

import halide as hl


@hl.generator()
class always_scheduled:
    input_buf = hl.InputBuffer(hl.UInt(16), 2)
    output_buf = hl.OutputBuffer(hl.UInt(16), 2)

    def generate(g):
        x, y = hl.vars("x y")
        clamped = hl.BoundaryConditions.repeat_edge(g.input_buf)
        g.output_buf[x, y] = (clamped[x, y] + clamped[x + 1, y]) // 2
        g.output_buf.vectorize(x, 8).parallel(y)
        g.input_buf.set_estimates([(0, 1536), (0, 2560)])
        g.output_buf.set_estimates([(0, 1536), (0, 2560)])
