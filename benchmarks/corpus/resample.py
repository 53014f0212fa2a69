"""Resample: changing an image's size (bilinear and bicubic resizes) and multi-scale
pyramids built of blurs, 2x downsamples and 2x upsamples, in integer arithmetic."""

import halide as hl

from farm.benchmark_kit import HEIGHT, WIDTH, set_image_estimates

FRAC_BITS = 8  # fractional bits of a resize's source coordinates


def _bounded(g, name="bounded_input"):
    x, y = hl.Var("x"), hl.Var("y")
    bounded = hl.Func(name)
    bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
    return bounded, x, y


def _scale(g, name):
    num, den = int(g.scale_num), int(g.scale_den)
    if not (1 <= num <= 16 and 1 <= den <= 16):
        raise ValueError(f"{name}: scale_num={num}, scale_den={den}; each must be 1..16")
    return num, den


STEP_BITS = 16  # fractional bits of the fixed-point step between output pixels


def _source_coordinate(v, num, den):
    """Where output pixel v's centre lies in the input, (v + 1/2) * den / num - 1/2, with
    FRAC_BITS fractional bits, rounded down: stepping by den/num in fixed point (multiplies
    and shifts, no division)."""
    step = (den * (1 << STEP_BITS) + num // 2) // num
    return (((2 * v + 1) * step) >> (STEP_BITS + 1 - FRAC_BITS)) - (1 << (FRAC_BITS - 1))


def _resized_estimates(g, num, den, width=WIDTH, height=HEIGHT):
    """The input width x height, the output that scaled by num/den."""
    g.input.set_estimates([(0, width), (0, height)])
    g.output.set_estimates([(0, width * num // den), (0, height * num // den)])


@hl.generator(name="resize_bilinear")
class ResizeBilinear:
    """Bilinear resize of a uint8 image by scale_num/scale_den, 8-bit fixed-point weights."""

    scale_num = hl.GeneratorParam(2)
    scale_den = hl.GeneratorParam(3)
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        num, den = _scale(g, "resize_bilinear")
        bounded, x, y = _bounded(g)
        one, mask = 1 << FRAC_BITS, (1 << FRAC_BITS) - 1
        u16, u32 = hl.UInt(16), hl.UInt(32)
        sx, sy = _source_coordinate(x, num, den), _source_coordinate(y, num, den)
        ix, fx = sx >> FRAC_BITS, hl.cast(u16, sx & mask)
        iy, fy = sy >> FRAC_BITS, hl.cast(u32, sy & mask)
        # along x: 8 fractional bits kept (uint16)
        interp_x = hl.Func("interp_x")
        interp_x[x, y] = (hl.cast(u16, bounded[ix, y]) * (one - fx)
                          + hl.cast(u16, bounded[ix + 1, y]) * fx)
        # along y: 16 fractional bits, rounded away
        interp_y = (hl.cast(u32, interp_x[x, iy]) * (one - fy)
                    + hl.cast(u32, interp_x[x, iy + 1]) * fy)
        g.output[x, y] = hl.cast(hl.UInt(8), (interp_y + (1 << (2 * FRAC_BITS - 1)))
                                 >> (2 * FRAC_BITS))

        _resized_estimates(g, num, den)


WEIGHT_BITS = 7  # the bicubic taps sum to 2^WEIGHT_BITS


def _keys_weights(frac):
    """The 4 Keys cubic (a = -1/2) taps for a FRAC_BITS fixed-point fraction, in
    2^WEIGHT_BITS units; the 2nd tap takes the rounding so that they sum exactly."""
    t = hl.cast(hl.Int(32), frac)
    one = 1 << FRAC_BITS
    t2, t3 = t * t, t * t * t
    # each tap times 2 * one^3, exactly
    w0 = -t3 + 2 * t2 * one - t * one * one
    w2 = -3 * t3 + 4 * t2 * one + t * one * one
    w3 = t3 - t2 * one
    shift = 3 * FRAC_BITS + 1 - WEIGHT_BITS
    q0, q2, q3 = ((w + (1 << (shift - 1))) >> shift for w in (w0, w2, w3))
    return q0, (1 << WEIGHT_BITS) - q0 - q2 - q3, q2, q3


@hl.generator(name="resize_bicubic")
class ResizeBicubic:
    """Bicubic (Keys, a = -1/2) resize of a uint8 image by scale_num/scale_den, 7-bit weights."""

    scale_num = hl.GeneratorParam(3)
    scale_den = hl.GeneratorParam(2)
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        num, den = _scale(g, "resize_bicubic")
        bounded, x, y = _bounded(g)
        v, k = hl.Var("v"), hl.Var("k")
        mask = (1 << FRAC_BITS) - 1
        i16, i32 = hl.Int(16), hl.Int(32)
        # the taps of output column (or row) v: one table serves both directions
        taps = hl.Func("cubic_taps")
        w0, w1, w2, w3 = _keys_weights(_source_coordinate(v, num, den) & mask)
        taps[v, k] = hl.cast(i16, hl.select(k == 0, w0, k == 1, w1, k == 2, w2, w3))
        sx, sy = _source_coordinate(x, num, den), _source_coordinate(y, num, den)
        ix, iy = sx >> FRAC_BITS, sy >> FRAC_BITS
        rounding = hl.cast(i32, 1 << (WEIGHT_BITS - 1))
        # along x: int32 sums, rounded back to 8 bits in int16 (may over- and undershoot)
        acc = rounding
        for j in range(4):
            acc = acc + hl.cast(i32, bounded[ix + j - 1, y]) * hl.cast(i32, taps[x, j])
        interp_x = hl.Func("interp_x")
        interp_x[x, y] = hl.cast(i16, acc >> WEIGHT_BITS)
        acc = rounding
        for j in range(4):
            acc = acc + hl.cast(i32, interp_x[x, iy + j - 1]) * hl.cast(i32, taps[y, j])
        g.output[x, y] = hl.cast(hl.UInt(8), hl.clamp(acc >> WEIGHT_BITS, 0, 255))

        # a 768 x 1280 input: 3/2 of it is 1152 x 1920
        _resized_estimates(g, num, den, WIDTH // 2, HEIGHT // 2)


BINOMIAL5 = (1, 4, 6, 4, 1)  # sums to 16


def _gaussian_levels(g, levels):
    """The levels of a Gaussian pyramid of g.input, finest first: level 0 is the input with
    its edge repeated, each next one the one before blurred by a 5-tap binomial in x and y
    and subsampled 2x, with uint16 sums rounded once. Only level 0 has a boundary
    condition: the coarser levels extend as far as their consumers ask."""
    x, y = hl.Var("x"), hl.Var("y")
    u16 = hl.UInt(16)
    level0 = hl.Func("level0")
    level0[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
    out = [level0]
    for k in range(1, levels):
        src = out[-1]
        down_x, down = hl.Func(f"down{k}_x"), hl.Func(f"level{k}")
        down_x[x, y] = sum((hl.cast(u16, src[2 * x + j - 2, y]) * w
                            for j, w in enumerate(BINOMIAL5)), hl.cast(u16, 0))
        acc = sum((down_x[x, 2 * y + j - 2] * w for j, w in enumerate(BINOMIAL5)),
                  hl.cast(u16, 0))
        down[x, y] = hl.cast(hl.UInt(8), (acc + 128) >> 8)
        out.append(down)
    return out


@hl.generator(name="gaussian_pyramid")
class GaussianPyramid:
    """4-level Gaussian pyramid of a uint8 image (5-tap binomial, 2x down); the 1/8 level out."""

    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        g.output[x, y] = _gaussian_levels(g, 4)[-1][x, y]

        set_image_estimates(g.input)
        g.output.set_estimates([(0, WIDTH // 8), (0, HEIGHT // 8)])


def _upsample(src, name):
    """A level (src) upsampled 2x by the 5-tap binomial expand, along x then y, in int16,
    each pass rounded."""
    x, y = hl.Var("x"), hl.Var("y")

    def expand(f, v):
        # even v = 2i: (f[i-1] + 6 f[i] + f[i+1]) / 8; odd v = 2i+1: (f[i] + f[i+1]) / 2;
        # one formula for both, with no select on v's parity
        return (f((v - 1) // 2) + 3 * (f(v // 2) + f((v + 1) // 2)) + f((v + 2) // 2) + 4) >> 3

    up_x, up = hl.Func(f"{name}_up_x"), hl.Func(f"{name}_up")
    up_x[x, y] = expand(lambda i: hl.cast(hl.Int(16), src[i, y]), x)
    up[x, y] = expand(lambda i: up_x[x, i], y)
    return up


LAPLACIAN_LEVELS = 3
GAIN_NUM, GAIN_SHIFT = 3, 1  # detail gain 3/2


@hl.generator(name="laplacian_pyramid")
class LaplacianPyramid:
    """Detail boost of a uint8 image: a 3-level Laplacian pyramid, details x3/2, collapsed."""

    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        i16 = hl.Int(16)
        gauss = _gaussian_levels(g, LAPLACIAN_LEVELS)
        # collapse from the coarsest level, adding each boosted detail level on the way up
        result = hl.Func(f"collapsed{LAPLACIAN_LEVELS - 1}")
        result[x, y] = hl.cast(i16, gauss[-1][x, y])
        for k in range(LAPLACIAN_LEVELS - 2, -1, -1):
            predicted = _upsample(gauss[k + 1], f"level{k + 1}")
            detail = hl.Func(f"detail{k}")
            detail[x, y] = hl.cast(i16, gauss[k][x, y]) - predicted[x, y]
            coarse = _upsample(result, f"collapsed{k + 1}")
            result = hl.Func(f"collapsed{k}")
            result[x, y] = coarse[x, y] + ((detail[x, y] * GAIN_NUM) >> GAIN_SHIFT)
        g.output[x, y] = hl.cast(hl.UInt(8), hl.clamp(result[x, y], 0, 255))

        set_image_estimates(g.input, g.output)
