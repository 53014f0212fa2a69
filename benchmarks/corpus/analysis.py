"""Analysis: image statistics and feature detectors on uint8 images.

Reductions and scans (a histogram and its cumulative sum, a summed-area table) and
gradient-based detectors (Harris corner response, Canny-style non-maximum suppression),
all in integer arithmetic. Inputs go through repeat_edge, so any output size is valid.
"""

import halide as hl

from farm.benchmark_kit import HEIGHT, set_image_estimates

U8, U16, I16, I32, U32 = hl.UInt(8), hl.UInt(16), hl.Int(16), hl.Int(32), hl.UInt(32)


def _bounded(buf, x, y):
    f = hl.Func("bounded_input")
    f[x, y] = hl.BoundaryConditions.repeat_edge(buf)[x, y]
    return f


def _sobel(p, x, y, name):
    """Sobel gradients of int16 Func `p` (values 0..255) as int16 Funcs (gx, gy), each in
    [-1020, 1020]."""
    # separable: [1 2 1] smoothing across, [-1 0 1] difference along
    smooth_y, smooth_x = hl.Func(f"{name}_smooth_y"), hl.Func(f"{name}_smooth_x")
    smooth_y[x, y] = p[x, y - 1] + 2 * p[x, y] + p[x, y + 1]
    smooth_x[x, y] = p[x - 1, y] + 2 * p[x, y] + p[x + 1, y]
    gx, gy = hl.Func(f"{name}_gx"), hl.Func(f"{name}_gy")
    gx[x, y] = smooth_y[x + 1, y] - smooth_y[x - 1, y]
    gy[x, y] = smooth_x[x, y + 1] - smooth_x[x, y - 1]
    return gx, gy


@hl.generator(name="histogram_equalize")
class HistogramEqualize:
    """Histogram equalization of a uint8 image: histogram, cumulative sum scan, LUT, apply."""

    input = hl.InputBuffer(U8, 2)
    output = hl.OutputBuffer(U8, 2)

    def generate(g):
        x, y, i = hl.Var("x"), hl.Var("y"), hl.Var("i")
        bounded = _bounded(g.input, x, y)
        pixels = hl.RDom([(g.input.dim(0).min(), g.input.dim(0).extent()),
                          (g.input.dim(1).min(), g.input.dim(1).extent())], "pixels")
        hist = hl.Func("hist")
        hist[i] = 0
        hist[hl.cast(I32, g.input[pixels.x, pixels.y])] += 1
        cdf = hl.Func("cdf")
        cdf[i] = hist[i]
        bins = hl.RDom([(1, 255)], "bins")
        cdf[bins.x] = cdf[bins.x - 1] + hist[bins.x]
        # the smallest nonzero cumulative count: the count of the darkest level present
        levels = hl.RDom([(0, 256)], "levels")
        total = cdf[255]
        cdf_min = hl.Func("cdf_min")
        count = hl.Expr(cdf[levels.x])
        cdf_min[()] = hl.minimum(hl.select(count > 0, count, total))
        # (cdf - cdf_min) * 255 / (total - cdf_min), rounded; < 2^31 for up to 8M pixels
        lut = hl.Func("equalize_lut")
        denom = hl.max(total - cdf_min[()], 1)
        level = ((cdf[i] - cdf_min[()]) * 255 + denom // 2) // denom
        lut[i] = hl.cast(U8, hl.clamp(level, 0, 255))
        g.output[x, y] = lut[hl.cast(I32, bounded[x, y])]

        set_image_estimates(g.input, g.output)


@hl.generator(name="integral_image")
class IntegralImage:
    """Summed-area table of a uint8 image as uint32: a scan along x, then a scan along y."""

    input = hl.InputBuffer(U8, 2)
    output = hl.OutputBuffer(U32, 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = _bounded(g.input, x, y)
        x0, w = g.input.dim(0).min(), g.input.dim(0).extent()
        y0, h = g.input.dim(1).min(), g.input.dim(1).extent()
        row_sum = hl.Func("row_sum")
        row_sum[x, y] = hl.cast(U32, bounded[x, y])
        rx = hl.RDom([(x0 + 1, w - 1)], "rx")
        row_sum[rx.x, y] = row_sum[rx.x - 1, y] + row_sum[rx.x, y]
        table = hl.Func("table")
        table[x, y] = row_sum[x, y]
        ry = hl.RDom([(y0 + 1, h - 1)], "ry")
        table[x, ry.x] = table[x, ry.x - 1] + table[x, ry.x]
        g.output[x, y] = table[x, y]

        # a third of the usual area: the scans are serial along one axis each
        for buf in (g.input, g.output):
            buf.set_estimates([(0, 1024), (0, HEIGHT // 2)])


@hl.generator(name="harris_response")
class HarrisResponse:
    """Harris corner response of a uint8 image: Sobel, 3x3 box sums, det - k*trace^2, int32."""

    input = hl.InputBuffer(U8, 2)
    output = hl.OutputBuffer(I32, 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = _bounded(g.input, x, y)
        wide = hl.Func("wide")
        wide[x, y] = hl.cast(I16, bounded[x, y])
        gx, gy = _sobel(wide, x, y, "sobel")
        products = {}
        for name, a, b in (("ixx", gx, gx), ("iyy", gy, gy), ("ixy", gx, gy)):
            f = hl.Func(name)
            f[x, y] = hl.cast(I32, a[x, y]) * hl.cast(I32, b[x, y])  # |.| <= 1020^2
            products[name] = f
        sums = {}
        for name, f in products.items():
            across, box = hl.Func(f"{name}_sum_x"), hl.Func(f"s{name[1:]}")
            across[x, y] = f[x - 1, y] + f[x, y] + f[x + 1, y]
            # the 3x3 sum (< 2^23.2) >> 8 keeps every product below in int32
            box[x, y] = (across[x, y - 1] + across[x, y] + across[x, y + 1]) >> 8
            sums[name] = box
        sxx, syy, sxy = sums["ixx"][x, y], sums["iyy"][x, y], sums["ixy"][x, y]
        det = sxx * syy - sxy * sxy
        trace = sxx + syy
        # k = 10/256 (about 0.04) in Q8: k * trace^2 = trace * ((trace * 10) >> 8)
        g.output[x, y] = det - trace * ((trace * 10) >> 8)

        set_image_estimates(g.input, g.output)


@hl.generator(name="canny_nms")
class CannyNms:
    """Canny edge thinning of a uint8 image: 3x3 blur, Sobel, L1 magnitude, 4-sector NMS; uint8."""

    input = hl.InputBuffer(U8, 2)
    output = hl.OutputBuffer(U8, 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        bounded = _bounded(g.input, x, y)
        # 3x3 binomial blur [1 2 1]^T [1 2 1] / 16, rounded
        blur_x, blur = hl.Func("blur_x"), hl.Func("blur")
        blur_x[x, y] = (hl.cast(U16, bounded[x - 1, y]) + 2 * hl.cast(U16, bounded[x, y])
                        + hl.cast(U16, bounded[x + 1, y]))
        blur[x, y] = hl.cast(U8, (blur_x[x, y - 1] + 2 * blur_x[x, y] + blur_x[x, y + 1] + 8) >> 4)

        def b(dx, dy):
            return hl.cast(U16, blur[x + dx, y + dy])

        # Sobel in unsigned halves: gx = right - left, gy = below - above, each side <= 1020
        right = b(1, -1) + 2 * b(1, 0) + b(1, 1)
        left = b(-1, -1) + 2 * b(-1, 0) + b(-1, 1)
        below = b(-1, 1) + 2 * b(0, 1) + b(1, 1)
        above = b(-1, -1) + 2 * b(0, -1) + b(1, -1)
        ax, ay = hl.absd(right, left), hl.absd(below, above)
        # gradient direction in 4 sectors, tan(22.5 deg) ~ 12/29: 0 horizontal gradient
        # (compare left/right), 2 vertical (up/down), 1 and 3 the two diagonals
        same_sign = (right > left) == (below > above)
        sector = hl.select(ay * 29 <= ax * 12, hl.u8(0),
                           hl.select(ay * 12 >= ax * 29, hl.u8(2),
                                     hl.select(same_sign, hl.u8(1), hl.u8(3))))
        # L1 magnitude (<= 2040) and sector together, so the NMS reads one Func
        gradient = hl.Func("gradient")
        gradient[x, y] = hl.Tuple([ax + ay, sector])
        mag, s = gradient[x, y][0], gradient[x, y][1]

        def along(dx0, dy0, dx2, dy2, dx1, dy1, dx3, dy3):
            """The magnitude at the neighbour along the gradient of each sector (0, 2, 1, 3)."""
            def at(dx, dy):
                return gradient[x + dx, y + dy][0]

            return hl.select(s == 0, at(dx0, dy0),
                             hl.select(s == 2, at(dx2, dy2),
                                       hl.select(s == 1, at(dx1, dy1), at(dx3, dy3))))

        before = along(-1, 0, 0, -1, -1, -1, 1, -1)
        after = along(1, 0, 0, 1, 1, 1, -1, 1)
        keep = (mag >= before) & (mag >= after)
        g.output[x, y] = hl.select(keep, hl.cast(U8, hl.min(mag >> 1, 255)), hl.u8(0))

        set_image_estimates(g.input, g.output)
