"""Quantized neural-network operators as on-device inference runs them: uint8 activations
with zero points, int32 accumulation and TFLite-style requantization (a rounding doubling
high multiply by a fixed-point int32 multiplier, a rounding right shift, the output zero
point added, saturated to uint8).

Layout: activations are (c, x, y) in Halide's dims, channels innermost (NHWC without the
batch). Filters keep TFLite's OHWI order: a 3x3 convolution's filter is (c_in, kx, ky,
c_out), a depthwise filter (c, kx, ky), a 1x1 convolution's (c_in, c_out) and a fully
connected layer's (features, outputs). Filters are uint8 with a zero point, biases int32.
Channel and feature counts are GeneratorParams, and the buffers' channel dims are
exactly those. Quantization parameters are GeneratorParams too; a multiplier is a real
factor m in [0.5, 1) stored as round(m * 2^31), applied as (x * multiplier) >> 31
rounded, then >> shift rounded.
Integer arithmetic throughout, as a DSP without vector floats runs it: softmax and the L2
norm take exponentials by a polynomial, reciprocals and reciprocal square roots by
Newton's method, all in fixed point.
"""

import math

import halide as hl

U8, I16, I32, U32 = hl.UInt(8), hl.Int(16), hl.Int(32), hl.UInt(32)
EXP_BITS = 15  # the fraction bits of softmax's exps
# 2^-u for u in [0, 1): a least-squares degree-4 polynomial, coefficients in Q30 (error 2e-6)
EXP2_POLY = (1073739778, -744157487, 257095898, -57151877, 7346532)

# Estimated sizes: mobile-net layers (MobileNet v1's 56x56x128 and 28x28x128 stages). The
# channel defaults are multiples of 128, a HVX vector of uint8: narrower channels leave
# every vector of the innermost dim part empty.
CONV_SIZE = 56
DEPTHWISE_SIZE = 56
POINTWISE_SIZE = 28
POOL_SIZE = 112  # the input's; a stride-2 pool's output is half of it
ELEMENTWISE_SIZE = 56
SOFTMAX_SIZE = 32
L2NORM_SIZE = 56


def offset(value, zero):
    """A uint8 value minus its zero point, as int16."""
    return hl.cast(I16, value) - hl.cast(I16, zero)


def scale_by(value, multiplier, shift):
    """value (int32) times the fixed-point multiplier, rounded, then >> shift rounded."""
    return hl.rounding_shift_right(mul_q31(value, hl.i32(multiplier)), shift)


def requantize(acc, multiplier, shift, zero):
    """An int32 accumulator to uint8: scaled, the output zero point added, saturated."""
    return hl.saturating_cast(U8, scale_by(acc, multiplier, shift) + zero)


def mul_q31(a, b):
    """a * b / 2^31 rounded, saturated: the product of two int32 fixed-point numbers."""
    return hl.rounding_mul_shift_right(a, b, 31)


def floor_log2(x):
    """floor(log2(x)) of an int32 x > 0."""
    return 31 - hl.count_leading_zeros(x)


def reciprocal(x):
    """1 / x of an int32 x > 0 as (h, n): 1 / x = h / 2^(30 + n), h in (2^29, 2^30].

    x is normalised to v = x / 2^(n + 1) in [0.5, 1); h approximates 1 / (4 v) in Q31,
    from a linear first guess (48 / 17 - 32 / 17 v) / 4 and three Newton steps
    h <- h (2 - 4 v h), each computed as 4 h (1 / 2 - v h) to stay below 1."""
    n = floor_log2(x)
    v = x << (30 - n)
    h = hl.i32(round(12 / 17 * 2**31)) - mul_q31(v, hl.i32(round(8 / 17 * 2**31)))
    for _ in range(3):
        h = mul_q31(h, hl.i32(1 << 30) - mul_q31(v, h)) << 2
    return h, n


def reciprocal_sqrt(x):
    """1 / sqrt(x) of an int32 x > 0 as (s, k): 1 / sqrt(x) = s / 2^(30 + k).

    x is normalised to u = x / 4^(k + 1) in [0.25, 1); s approximates 1 / (4 sqrt(u)) in
    Q31, from a linear first guess (2.1 - 1.15 u) / 4 and three Newton steps
    s <- s (3 - 16 u s^2) / 2, each computed as 4 s (3 / 8 - 2 u s^2) to stay below 1."""
    k = floor_log2(x) >> 1
    up = 29 - 2 * k  # 2k <= 30
    u = hl.select(up >= 0, x << hl.max(up, 0), x >> hl.max(-up, 0))
    s = hl.i32(round(2.1 / 4 * 2**31)) - mul_q31(u, hl.i32(round(1.15 / 4 * 2**31)))
    for _ in range(3):
        s = mul_q31(s, hl.i32(3 << 28) - (mul_q31(u, mul_q31(s, s)) << 1)) << 2
    return s, k


def exp_q15(d, scale):
    """2^15 exp(-scale d) rounded, for an int32 d >= 0: with t = d scale / ln 2 in Q16,
    2^-t = 2^-frac(t) >> floor(t), 2^-frac(t) by a degree-4 polynomial in Q30."""
    t = d * hl.i32(round(scale / math.log(2) * 2**16))
    n = hl.min(t >> 16, 16)  # 2^-16 and below round to 0 in Q15
    u = (t & 0xFFFF) << 15  # frac(t) in Q31
    p = hl.i32(EXP2_POLY[-1])
    for a in reversed(EXP2_POLY[:-1]):
        p = hl.i32(a) + mul_q31(u, p)
    return hl.select(n == 16, 0, hl.rounding_shift_right(p, n + (30 - EXP_BITS)))


def clamped(buf, v):
    """buf at v, each coordinate clamped into buf (its edge repeated outside)."""
    return buf[[hl.clamp(hl.likely(e), buf.dim(i).min(), buf.dim(i).max())
                for i, e in enumerate(v)]]


def bounded(buf, dims, name):
    """buf with its edge repeated outside it in every dim: a schedule's tiles may compute
    more of a Func than the output needs (the last tile shifted in, rounded up)."""
    f = hl.Func(name)
    v = [hl.Var(n) for n in "cxyz"[:dims]]
    f[v] = clamped(buf, v)
    return f


def edge_wrapped(buf, dims, name):
    """bounded() through Halide's repeat_edge: the same values; conv3x3_q uses it, as
    Adams2019 (beam 32) schedules the convolution in half the time with it (~30 s)."""
    f = hl.Func(name)
    v = [hl.Var(n) for n in "cxyz"[:dims]]
    f[v] = hl.BoundaryConditions.repeat_edge(buf)[v]
    return f


def zero_padded(buf, zero, name):
    """buf (c, x, y) with its zero point outside it in x and y (its edge in c)."""
    c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
    w, h = buf.dim(1), buf.dim(2)
    inside = (x >= w.min()) & (x <= w.max()) & (y >= h.min()) & (y <= h.max())
    f = hl.Func(name)
    f[c, x, y] = hl.select(inside, hl.BoundaryConditions.repeat_edge(buf)[c, x, y], hl.u8(zero))
    return f


def shape(buf, *extents, fixed=1):
    """Estimate buf's dims as extents; its first `fixed` dims (channels, features: set by
    GeneratorParams) are exactly those, as a compiled network's are."""
    buf.set_estimates([(0, e) for e in extents])
    dims = buf if hasattr(buf, "dim") else buf.output_buffer()
    for i in range(fixed):
        dims.dim(i).set_bounds(0, extents[i])


@hl.generator(name="conv3x3_q")
class Conv3x3Q:
    """Quantized 3x3 convolution, stride 1, zero-point padding, int32 bias, requantized."""

    channels_in = hl.GeneratorParam(32)
    channels_out = hl.GeneratorParam(32)
    input_zero = hl.GeneratorParam(128)
    filter_zero = hl.GeneratorParam(119)
    output_zero = hl.GeneratorParam(128)
    multiplier = hl.GeneratorParam(1518500250)  # 0.7071
    shift = hl.GeneratorParam(10)

    input = hl.InputBuffer(U8, 3)  # (c_in, x, y)
    filter = hl.InputBuffer(U8, 4)  # (c_in, kx, ky, c_out)
    bias = hl.InputBuffer(I32, 1)  # (c_out)
    output = hl.OutputBuffer(U8, 3)  # (c_out, x, y)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        padded = zero_padded(g.input, g.input_zero, "padded_input")
        filt = edge_wrapped(g.filter, 4, "bounded_filter")
        bias = edge_wrapped(g.bias, 1, "bounded_bias")
        r = hl.RDom([(0, g.channels_in), (0, 3), (0, 3)], "r")
        acc = hl.Func("acc")
        acc[c, x, y] = bias[c]
        acc[c, x, y] += hl.cast(I32, hl.widening_mul(
            offset(padded[r.x, x + r.y - 1, y + r.z - 1], g.input_zero),
            offset(filt[r.x, r.y, r.z, c], g.filter_zero)))
        g.output[c, x, y] = requantize(acc[c, x, y], g.multiplier, g.shift, g.output_zero)

        shape(g.input, g.channels_in, CONV_SIZE, CONV_SIZE)
        shape(g.filter, g.channels_in, 3, 3, g.channels_out, fixed=4)
        shape(g.bias, g.channels_out)
        shape(g.output, g.channels_out, CONV_SIZE, CONV_SIZE)


@hl.generator(name="depthwise3x3_q")
class Depthwise3x3Q:
    """Quantized depthwise 3x3 convolution (multiplier 1), zero-point padding, requantized."""

    channels = hl.GeneratorParam(128)
    input_zero = hl.GeneratorParam(128)
    filter_zero = hl.GeneratorParam(131)
    output_zero = hl.GeneratorParam(128)
    multiplier = hl.GeneratorParam(1518500250)  # 0.7071
    shift = hl.GeneratorParam(8)

    input = hl.InputBuffer(U8, 3)  # (c, x, y)
    filter = hl.InputBuffer(U8, 3)  # (c, kx, ky)
    bias = hl.InputBuffer(I32, 1)  # (c)
    output = hl.OutputBuffer(U8, 3)  # (c, x, y)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        padded = zero_padded(g.input, g.input_zero, "padded_input")
        filt, bias = bounded(g.filter, 3, "bounded_filter"), bounded(g.bias, 1, "bounded_bias")
        r = hl.RDom([(0, 3), (0, 3)], "r")
        acc = hl.Func("acc")
        acc[c, x, y] = bias[c]
        acc[c, x, y] += hl.cast(I32, hl.widening_mul(
            offset(padded[c, x + r.x - 1, y + r.y - 1], g.input_zero),
            offset(filt[c, r.x, r.y], g.filter_zero)))
        g.output[c, x, y] = requantize(acc[c, x, y], g.multiplier, g.shift, g.output_zero)

        shape(g.input, g.channels, DEPTHWISE_SIZE, DEPTHWISE_SIZE)
        shape(g.filter, g.channels, 3, 3, fixed=3)
        shape(g.bias, g.channels)
        shape(g.output, g.channels, DEPTHWISE_SIZE, DEPTHWISE_SIZE)


@hl.generator(name="pointwise_q")
class PointwiseQ:
    """Quantized 1x1 convolution: a matrix multiply over channels, int32 bias, requantized."""

    channels_in = hl.GeneratorParam(128)
    channels_out = hl.GeneratorParam(128)
    input_zero = hl.GeneratorParam(128)
    filter_zero = hl.GeneratorParam(124)
    output_zero = hl.GeneratorParam(128)
    multiplier = hl.GeneratorParam(1518500250)  # 0.7071
    shift = hl.GeneratorParam(9)

    input = hl.InputBuffer(U8, 3)  # (c_in, x, y)
    filter = hl.InputBuffer(U8, 2)  # (c_in, c_out)
    bias = hl.InputBuffer(I32, 1)  # (c_out)
    output = hl.OutputBuffer(U8, 3)  # (c_out, x, y)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        inp = bounded(g.input, 3, "bounded_input")
        filt, bias = bounded(g.filter, 2, "bounded_filter"), bounded(g.bias, 1, "bounded_bias")
        r = hl.RDom([(0, g.channels_in)], "r")
        acc = hl.Func("acc")
        acc[c, x, y] = bias[c]
        acc[c, x, y] += hl.cast(I32, hl.widening_mul(
            offset(inp[r, x, y], g.input_zero), offset(filt[r, c], g.filter_zero)))
        g.output[c, x, y] = requantize(acc[c, x, y], g.multiplier, g.shift, g.output_zero)

        shape(g.input, g.channels_in, POINTWISE_SIZE, POINTWISE_SIZE)
        shape(g.filter, g.channels_in, g.channels_out, fixed=2)
        shape(g.bias, g.channels_out)
        shape(g.output, g.channels_out, POINTWISE_SIZE, POINTWISE_SIZE)


@hl.generator(name="fully_connected_q")
class FullyConnectedQ:
    """Quantized fully connected layer: a batch of uint8 vectors times uint8 weights."""

    features = hl.GeneratorParam(1024)
    outputs = hl.GeneratorParam(1024)
    batch = hl.GeneratorParam(16)
    input_zero = hl.GeneratorParam(128)
    filter_zero = hl.GeneratorParam(127)
    output_zero = hl.GeneratorParam(128)
    multiplier = hl.GeneratorParam(1518500250)  # 0.7071
    shift = hl.GeneratorParam(11)

    input = hl.InputBuffer(U8, 2)  # (features, batch)
    filter = hl.InputBuffer(U8, 2)  # (features, outputs)
    bias = hl.InputBuffer(I32, 1)  # (outputs)
    output = hl.OutputBuffer(U8, 2)  # (outputs, batch)

    def generate(g):
        o, b = hl.Var("o"), hl.Var("b")
        inp = bounded(g.input, 2, "bounded_input")
        filt, bias = bounded(g.filter, 2, "bounded_filter"), bounded(g.bias, 1, "bounded_bias")
        r = hl.RDom([(0, g.features)], "r")
        acc = hl.Func("acc")
        acc[o, b] = bias[o]
        acc[o, b] += hl.cast(I32, hl.widening_mul(
            offset(inp[r, b], g.input_zero), offset(filt[r, o], g.filter_zero)))
        g.output[o, b] = requantize(acc[o, b], g.multiplier, g.shift, g.output_zero)

        shape(g.input, g.features, g.batch)
        shape(g.filter, g.features, g.outputs, fixed=2)
        shape(g.bias, g.outputs)
        shape(g.output, g.outputs, g.batch)


@hl.generator(name="max_pool")
class MaxPool:
    """3x3 max pooling, stride 2, of uint8 (c, x, y); windows past the edge ignore the outside."""

    channels = hl.GeneratorParam(128)

    input = hl.InputBuffer(U8, 3)  # (c, x, y)
    output = hl.OutputBuffer(U8, 3)  # (c, x / 2, y / 2)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        # the smallest uint8 outside: a max never picks it over an element inside
        padded = zero_padded(g.input, 0, "padded_input")
        r = hl.RDom([(0, 3), (0, 3)], "r")
        g.output[c, x, y] = hl.maximum(padded[c, 2 * x + r.x, 2 * y + r.y])

        shape(g.input, g.channels, POOL_SIZE, POOL_SIZE)
        shape(g.output, g.channels, POOL_SIZE // 2, POOL_SIZE // 2)


@hl.generator(name="avg_pool")
class AvgPool:
    """3x3 average pooling, stride 2, of uint8: the rounded mean of the window's elements inside."""

    channels = hl.GeneratorParam(128)

    input = hl.InputBuffer(U8, 3)  # (c, x, y)
    output = hl.OutputBuffer(U8, 3)  # (c, x / 2, y / 2)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        padded = zero_padded(g.input, 0, "padded_input")
        r = hl.RDom([(0, 3), (0, 3)], "r")
        window_sum = hl.sum(hl.cast(U32, padded[c, 2 * x + r.x, 2 * y + r.y]), "window_sum")
        # how many of the window's columns and rows are inside the input
        w, h = g.input.dim(1), g.input.dim(2)
        cols = hl.min(2 * x + 2, w.max()) - hl.max(2 * x, w.min()) + 1
        rows = hl.min(2 * y + 2, h.max()) - hl.max(2 * y, h.min()) + 1
        count = hl.Func("count")
        count[x, y] = hl.cast(U32, cols * rows)
        # (sum + count / 2) / count as a multiply by ceil(2^16 / count), exact for these
        # sums; a count is 1, 2, 3, 4, 6 or 9
        n = count[x, y]
        inverse = hl.Func("inverse_count")
        inverse[x, y] = hl.select(n == 9, hl.u32(7282), n == 6, hl.u32(10923),
                                  n == 4, hl.u32(16384), n == 3, hl.u32(21846),
                                  n == 2, hl.u32(32768), hl.u32(65536))
        g.output[c, x, y] = hl.cast(
            U8, ((window_sum + n // 2) * inverse[x, y]) >> 16)

        shape(g.input, g.channels, POOL_SIZE, POOL_SIZE)
        shape(g.output, g.channels, POOL_SIZE // 2, POOL_SIZE // 2)


@hl.generator(name="add_q")
class AddQ:
    """Quantized add of two uint8 tensors of different scales via a common fixed-point scale."""

    channels = hl.GeneratorParam(128)
    a_zero = hl.GeneratorParam(120)
    b_zero = hl.GeneratorParam(133)
    output_zero = hl.GeneratorParam(128)
    left_shift = hl.GeneratorParam(20)
    # scales 0.05 (a), 0.03 (b), 0.08 (output): the common scale is 2 * 0.05 / 2^20
    a_multiplier = hl.GeneratorParam(1073741824)  # 0.5
    a_shift = hl.GeneratorParam(0)
    b_multiplier = hl.GeneratorParam(1288490189)  # 0.6 >> 1 = 0.3
    b_shift = hl.GeneratorParam(1)
    output_multiplier = hl.GeneratorParam(1342177280)  # 0.625 >> 19 = 1.25 / 2^20
    output_shift = hl.GeneratorParam(19)

    a = hl.InputBuffer(U8, 3)  # (c, x, y)
    b = hl.InputBuffer(U8, 3)
    output = hl.OutputBuffer(U8, 3)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        a, b = bounded(g.a, 3, "bounded_a"), bounded(g.b, 3, "bounded_b")
        a_scaled, b_scaled = hl.Func("a_scaled"), hl.Func("b_scaled")
        a_scaled[c, x, y] = scale_by(
            hl.cast(I32, offset(a[c, x, y], g.a_zero)) << g.left_shift, g.a_multiplier, g.a_shift)
        b_scaled[c, x, y] = scale_by(
            hl.cast(I32, offset(b[c, x, y], g.b_zero)) << g.left_shift, g.b_multiplier, g.b_shift)
        total = hl.Func("sum")
        total[c, x, y] = a_scaled[c, x, y] + b_scaled[c, x, y]
        g.output[c, x, y] = requantize(total[c, x, y], g.output_multiplier, g.output_shift,
                                       g.output_zero)

        size = (g.channels, ELEMENTWISE_SIZE, ELEMENTWISE_SIZE)
        for buf in (g.a, g.b, g.output):
            shape(buf, *size)


@hl.generator(name="mul_q")
class MulQ:
    """Quantized elementwise multiply of two uint8 tensors, the int32 product requantized."""

    channels = hl.GeneratorParam(128)
    a_zero = hl.GeneratorParam(120)
    b_zero = hl.GeneratorParam(133)
    output_zero = hl.GeneratorParam(128)
    # scales 0.05 (a), 0.03 (b), 0.08 (output): 0.01875 = 0.6 >> 5
    multiplier = hl.GeneratorParam(1288490189)
    shift = hl.GeneratorParam(5)

    a = hl.InputBuffer(U8, 3)  # (c, x, y)
    b = hl.InputBuffer(U8, 3)
    output = hl.OutputBuffer(U8, 3)

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        a, b = bounded(g.a, 3, "bounded_a"), bounded(g.b, 3, "bounded_b")
        product = hl.Func("product")
        product[c, x, y] = hl.cast(I32, hl.widening_mul(offset(a[c, x, y], g.a_zero),
                                                        offset(b[c, x, y], g.b_zero)))
        g.output[c, x, y] = requantize(product[c, x, y], g.multiplier, g.shift, g.output_zero)

        size = (g.channels, ELEMENTWISE_SIZE, ELEMENTWISE_SIZE)
        for buf in (g.a, g.b, g.output):
            shape(buf, *size)


@hl.generator(name="softmax_q")
class SoftmaxQ:
    """Quantized softmax over channels: fixed-point exp of max - x, reciprocal of their sum."""

    channels = hl.GeneratorParam(128)
    input_scale = hl.GeneratorParam(0.0625)  # beta times the input's scale

    input = hl.InputBuffer(U8, 3)  # (c, x, y)
    output = hl.OutputBuffer(U8, 3)  # (c, x, y), scale 1/256, zero point 0

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        r = hl.RDom([(0, g.channels)], "r")
        inp = bounded(g.input, 3, "bounded_input")
        channel_max = hl.Func("channel_max")
        channel_max[x, y] = hl.maximum(inp[r, x, y])
        exps = hl.Func("exps")
        exps[c, x, y] = exp_q15(hl.cast(I32, channel_max[x, y] - inp[c, x, y]), g.input_scale)
        exp_sum = hl.Func("exp_sum")
        exp_sum[x, y] = hl.sum(exps[r, x, y])
        # exps * 256 / sum: sum >= 2^15 (the max's own exp), so sum's log2 n >= 15
        inverse, log2_sum = hl.Func("inverse_sum"), hl.Func("log2_sum")
        inverse[x, y], log2_sum[x, y] = reciprocal(exp_sum[x, y])
        scaled = mul_q31(exps[c, x, y] << (31 - 16), inverse[x, y])  # exps * h / 2^16
        g.output[c, x, y] = hl.saturating_cast(
            U8, hl.rounding_shift_right(scaled, log2_sum[x, y] + (30 - 16 - 8)))

        shape(g.input, g.channels, SOFTMAX_SIZE, SOFTMAX_SIZE)
        shape(g.output, g.channels, SOFTMAX_SIZE, SOFTMAX_SIZE)


@hl.generator(name="l2norm_q")
class L2NormQ:
    """Quantized L2 normalisation over channels: int32 sum of squares, fixed-point rsqrt."""

    channels = hl.GeneratorParam(128)
    input_zero = hl.GeneratorParam(128)

    input = hl.InputBuffer(U8, 3)  # (c, x, y)
    output = hl.OutputBuffer(U8, 3)  # (c, x, y), scale 1/128, zero point 128

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        r = hl.RDom([(0, g.channels)], "r")
        inp = bounded(g.input, 3, "bounded_input")
        centered = hl.Func("centered")
        centered[c, x, y] = offset(inp[c, x, y], g.input_zero)
        sum_sq = hl.Func("sum_sq")
        sum_sq[x, y] = hl.sum(hl.cast(I32, hl.widening_mul(centered[r, x, y], centered[r, x, y])))
        # 2^23 / sqrt(sum_sq) rounded: |centered| <= sqrt(sum_sq), so the products fit
        s, k = reciprocal_sqrt(hl.max(sum_sq[x, y], 1))
        inv_norm = hl.Func("inv_norm")
        inv_norm[x, y] = hl.rounding_shift_right(s, k + (30 - 23))
        scaled = hl.cast(I32, centered[c, x, y]) * inv_norm[x, y]
        g.output[c, x, y] = hl.saturating_cast(U8, hl.rounding_shift_right(scaled, 23 - 7) + 128)

        shape(g.input, g.channels, L2NORM_SIZE, L2NORM_SIZE)
        shape(g.output, g.channels, L2NORM_SIZE, L2NORM_SIZE)
