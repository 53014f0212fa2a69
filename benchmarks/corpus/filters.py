"""Filters: local neighbourhood filters of an image (blurs, rank and morphological filters,
a 1-D FIR), all in integer arithmetic."""

import math

import halide as hl

from farm.benchmark_kit import set_image_estimates


def _bounded(g, name="bounded_input"):
    x, y = hl.Var("x"), hl.Var("y")
    bounded = hl.Func(name)
    bounded[x, y] = hl.BoundaryConditions.repeat_edge(g.input)[x, y]
    return bounded, x, y


@hl.generator(name="box_blur")
class BoxBlur:
    """Separable (2*radius+1)^2 box blur of a uint8 image, uint16 sums, rounded mean."""

    radius = hl.GeneratorParam(2)
    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        r = int(g.radius)
        if not 1 <= r <= 7:  # (2r+1)^2 * 255 must fit in uint16
            raise ValueError(f"box_blur: radius={r}; choose 1..7")
        bounded, x, y = _bounded(g)
        u16 = hl.UInt(16)
        sum_x, sum_y = hl.Func("sum_x"), hl.Func("sum_y")
        acc = hl.cast(u16, bounded[x - r, y])
        for dx in range(-r + 1, r + 1):
            acc = acc + hl.cast(u16, bounded[x + dx, y])
        sum_x[x, y] = acc
        acc = sum_x[x, y - r]
        for dy in range(-r + 1, r + 1):
            acc = acc + sum_x[x, y + dy]
        sum_y[x, y] = acc
        n = (2 * r + 1) ** 2
        g.output[x, y] = hl.cast(hl.UInt(8), (sum_y[x, y] + n // 2) // n)

        set_image_estimates(g.input, g.output)


@hl.generator(name="gaussian_blur")
class GaussianBlur:
    """Separable binomial (Gaussian) blur of a uint16 image, 3, 5 or 7 taps, rounded per pass."""

    taps = hl.GeneratorParam(7)
    input = hl.InputBuffer(hl.UInt(16), 2)
    output = hl.OutputBuffer(hl.UInt(16), 2)

    def generate(g):
        taps = int(g.taps)
        if taps not in (3, 5, 7):
            raise ValueError(f"gaussian_blur: taps={taps}; choose 3, 5 or 7")
        weights = [math.comb(taps - 1, k) for k in range(taps)]
        shift = taps - 1  # the weights sum to 2^(taps-1)
        half = taps // 2
        bounded, x, y = _bounded(g)
        u32 = hl.UInt(32)
        blur_x = hl.Func("blur_x")
        acc = hl.cast(u32, 1 << (shift - 1))
        for k, w in enumerate(weights):
            acc = acc + hl.cast(u32, bounded[x + k - half, y]) * w
        blur_x[x, y] = hl.cast(hl.UInt(16), acc >> shift)
        acc = hl.cast(u32, 1 << (shift - 1))
        for k, w in enumerate(weights):
            acc = acc + hl.cast(u32, blur_x[x, y + k - half]) * w
        g.output[x, y] = hl.cast(hl.UInt(16), acc >> shift)

        set_image_estimates(g.input, g.output)


# A sorting network for 5 values (9 compare-exchanges).
SORT5 = ((0, 1), (3, 4), (2, 4), (2, 3), (0, 3), (0, 2), (1, 4), (1, 3), (1, 2))


def _exchange(a, b):
    """(min, max) of a and b, where None stands for a value above every other."""
    if a is None:
        return b, None
    if b is None:
        return a, None
    return hl.min(a, b), hl.max(a, b)


def _merge(a, b):
    """Batcher's odd-even merge of two sorted lists of one power-of-two length."""
    if len(a) == 1:
        return list(_exchange(a[0], b[0]))
    evens, odds = _merge(a[0::2], b[0::2]), _merge(a[1::2], b[1::2])
    out = [evens[0]]
    for i in range(len(odds) - 1):
        out.extend(_exchange(odds[i], evens[i + 1]))
    out.append(odds[-1])
    return out


def _padded(values, n):
    return list(values) + [None] * (n - len(values))


@hl.generator(name="median5x5")
class Median5x5:
    """5x5 median of a uint8 image: sorted columns, merged pairwise, then the 13th of 25."""

    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        bounded, x, y = _bounded(g)
        # each column of 5 sorted, once per (x, y)
        column = [bounded[x, y + dy] for dy in range(-2, 3)]
        for i, j in SORT5:
            column[i], column[j] = _exchange(column[i], column[j])
        col_sorted = hl.Func("col_sorted")
        col_sorted[x, y] = hl.Tuple(column)

        def col(at):
            return [col_sorted[at, y][i] for i in range(5)]

        # columns x and x + 1 merged: 10 sorted values, shared by neighbouring outputs
        pair = _merge(_padded(col(x), 8), _padded(col(x + 1), 8))[:10]
        pair_sorted = hl.Func("pair_sorted")
        pair_sorted[x, y] = hl.Tuple(pair)

        def pair_at(at):
            return [pair_sorted[at, y][i] for i in range(10)]

        # columns x-2..x+1 merged: only ranks 7..12 of their 20 can be the median
        quad = _merge(_padded(pair_at(x - 2), 16), _padded(pair_at(x), 16))[7:13]
        quad_ranks = hl.Func("quad_ranks")
        quad_ranks[x, y] = hl.Tuple(quad)

        # the 13th smallest of the 20 (A) and column x+2 (B): the least, over the ways of
        # taking 13 - i from A and i from B, of the larger of the last ones taken
        a = {7 + i: quad_ranks[x, y][i] for i in range(6)}
        b = col(x + 2)
        median = a[12]
        for i in range(1, 6):
            median = hl.min(median, hl.max(a[12 - i], b[i - 1]))
        g.output[x, y] = median

        set_image_estimates(g.input, g.output)


@hl.generator(name="morph_open5x5")
class MorphOpen5x5:
    """Morphological opening of a uint8 image: separable 5x5 erosion then 5x5 dilation."""

    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        bounded, x, y = _bounded(g)

        def reduce5(op, f, dx, dy):
            acc = f[x - 2 * dx, y - 2 * dy]
            for k in range(-1, 3):
                acc = op(acc, f[x + k * dx, y + k * dy])
            return acc

        erode_x, eroded = hl.Func("erode_x"), hl.Func("eroded")
        dilate_x = hl.Func("dilate_x")
        erode_x[x, y] = reduce5(hl.min, bounded, 1, 0)
        eroded[x, y] = reduce5(hl.min, erode_x, 0, 1)
        dilate_x[x, y] = reduce5(hl.max, eroded, 1, 0)
        g.output[x, y] = reduce5(hl.max, dilate_x, 0, 1)

        set_image_estimates(g.input, g.output)


FIR_TAPS, FIR_SHIFT = 16, 15


@hl.generator(name="fir16")
class Fir16:
    """16-tap causal FIR along x of int16 rows, Q15 int16 taps, int32 sums, rounded, saturated."""

    input = hl.InputBuffer(hl.Int(16), 2)
    coef = hl.InputBuffer(hl.Int(16), 1)
    output = hl.OutputBuffer(hl.Int(16), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        signal = hl.Func("signal")  # zero before the first and after the last sample
        signal[x, y] = hl.BoundaryConditions.constant_exterior(g.input, 0)[x, y]
        i32 = hl.Int(32)
        filtered = hl.Func("filtered")
        acc = hl.cast(i32, 1 << (FIR_SHIFT - 1))
        for k in range(FIR_TAPS):
            acc = acc + hl.cast(i32, signal[x - k, y]) * hl.cast(i32, g.coef[k])
        filtered[x, y] = acc >> FIR_SHIFT
        g.output[x, y] = hl.saturating_cast(hl.Int(16), filtered[x, y])

        set_image_estimates(g.input, g.output)
        g.coef.set_estimates([(0, FIR_TAPS)])
