"""A box filter declared the way Halide's own python_bindings/apps are: an unnamed
@hl.generator (Halide names it after its class when the file runs as a script) with
@hl.alias variants that set generator params."""

import halide as hl


@hl.alias(
    box_Adams2019={"autoscheduler": "Adams2019", "radius": 2},
    box_Mullapudi2016={"autoscheduler": "Mullapudi2016"},
)
@hl.generator()
class box:
    radius = hl.GeneratorParam(1)

    input_buf = hl.InputBuffer(hl.UInt(16), 2)
    output_buf = hl.OutputBuffer(hl.UInt(16), 2)

    def generate(g):
        x, y = hl.vars("x y")
        r = hl.RDom([(-g.radius, 2 * g.radius + 1)])
        clamped = hl.BoundaryConditions.repeat_edge(g.input_buf)
        across = hl.Func("across")
        across[x, y] = hl.u32(0)
        across[x, y] += hl.u32(clamped[x + r.x, y])
        down = hl.Func("down")
        down[x, y] = hl.u32(0)
        down[x, y] += across[x, y + r.x]
        g.output_buf[x, y] = hl.u16(down[x, y] // ((2 * g.radius + 1) ** 2))
        g.input_buf.set_estimates([(0, 1536), (0, 2560)])
        g.output_buf.set_estimates([(0, 1536), (0, 2560)])
        if not g.using_autoscheduler():
            across.compute_at(g.output_buf, y).vectorize(x, 8)
            g.output_buf.vectorize(x, 8).parallel(y)


if __name__ == "__main__":
    raise SystemExit("run as a script: the farm must not run this block")
