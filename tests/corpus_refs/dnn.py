"""NumPy references for the dnn family (benchmarks/corpus/dnn.py): quantized operators with
TFLite-style requantization. Halide (c, x, y) is numpy [y, x, c]; a filter (c_in, kx, ky,
c_out) is numpy [c_out, ky, kx, c_in]. The quantization parameters below are the
generators' defaults."""

from __future__ import annotations

import math

import numpy as np

from corpus_refs import Case

H, W = 10, 12  # the small test inputs' spatial size (numpy order)
M_0_7071 = 1518500250


def scale_by(value, multiplier, shift):
    """(value * multiplier) >> 31 rounded (saturated to int32), then >> shift rounded."""
    return rounding_shift_right(mul_q31(value, multiplier), shift)


def mul_q31(a, b):
    """a * b / 2^31 rounded half up, saturated to int32."""
    return np.clip((a.astype(np.int64) * b + (1 << 30)) >> 31, -(2**31), 2**31 - 1)


def rounding_shift_right(a, n):
    """a / 2^n rounded half up, for n >= 0 (a scalar or one per element)."""
    n = np.asarray(n, np.int64)
    return (a + ((1 << n) >> 1)) >> n


def floor_log2(x):
    return np.array([int(v).bit_length() - 1 for v in x.ravel()], np.int64).reshape(x.shape)


def reciprocal(x):
    """1 / x = h / 2^(30 + n): x normalised to v in [0.5, 1) (Q31), h ~ 1 / (4 v) by a
    linear guess and three Newton steps h <- 4 h (1/2 - v h)."""
    n = floor_log2(x)
    v = x.astype(np.int64) << (30 - n)
    h = round(12 / 17 * 2**31) - mul_q31(v, round(8 / 17 * 2**31))
    for _ in range(3):
        h = mul_q31(h, (1 << 30) - mul_q31(v, h)) << 2
    return h, n


def reciprocal_sqrt(x):
    """1 / sqrt(x) = s / 2^(30 + k): x normalised to u in [0.25, 1) (Q31), s ~ 1 / (4
    sqrt(u)) by a linear guess and three Newton steps s <- 4 s (3/8 - 2 u s^2)."""
    k = floor_log2(x) >> 1
    up = 29 - 2 * k
    x = x.astype(np.int64)
    u = np.where(up >= 0, x << np.maximum(up, 0), x >> np.maximum(-up, 0))
    s = round(2.1 / 4 * 2**31) - mul_q31(u, round(1.15 / 4 * 2**31))
    for _ in range(3):
        s = mul_q31(s, (3 << 28) - (mul_q31(u, mul_q31(s, s)) << 1)) << 2
    return s, k


def requantize(acc, multiplier, shift, zero):
    return np.clip(scale_by(acc, multiplier, shift) + zero, 0, 255).astype(np.uint8)


def centered(a, zero):
    return a.astype(np.int64) - zero


def u8(rng, *shape, low=0, high=256):
    return rng.integers(low, high, size=shape, dtype=np.uint8)


# conv3x3_q ------------------------------------------------------------------------------

def conv_case(ci, co):
    def inputs(rng):
        return {"input": u8(rng, H, W, ci), "filter": u8(rng, co, 3, 3, ci),
                "bias": rng.integers(-20000, 20000, size=co, dtype=np.int32)}

    def reference(input, filter, bias, zi=128, zf=119, zo=128, m=M_0_7071, s=10):
        padded = np.pad(centered(input, zi), ((1, 1), (1, 1), (0, 0)))
        f = centered(filter, zf)
        h, w = input.shape[:2]
        acc = np.broadcast_to(bias.astype(np.int64), (h, w, co)).copy()
        for ky in range(3):
            for kx in range(3):
                acc += np.einsum("yxi,oi->yxo", padded[ky:ky + h, kx:kx + w], f[:, ky, kx])
        return requantize(acc, m, s, zo)

    return Case(inputs, reference, params={"channels_in": str(ci), "channels_out": str(co)})


# depthwise3x3_q -------------------------------------------------------------------------

def depthwise_inputs(rng, c=8):
    return {"input": u8(rng, H, W, c), "filter": u8(rng, 3, 3, c),
            "bias": rng.integers(-5000, 5000, size=c, dtype=np.int32)}


def depthwise_reference(input, filter, bias, zi=128, zf=131, zo=128, m=M_0_7071, s=8):
    padded = np.pad(centered(input, zi), ((1, 1), (1, 1), (0, 0)))
    f = centered(filter, zf)
    h, w, c = input.shape
    acc = np.broadcast_to(bias.astype(np.int64), (h, w, c)).copy()
    for ky in range(3):
        for kx in range(3):
            acc += padded[ky:ky + h, kx:kx + w] * f[ky, kx]
    return requantize(acc, m, s, zo)


# pointwise_q ----------------------------------------------------------------------------

def pointwise_case(ci, co):
    def inputs(rng):
        return {"input": u8(rng, H, W, ci), "filter": u8(rng, co, ci),
                "bias": rng.integers(-20000, 20000, size=co, dtype=np.int32)}

    def reference(input, filter, bias, zi=128, zf=124, zo=128, m=M_0_7071, s=9):
        acc = centered(input, zi) @ centered(filter, zf).T + bias
        return requantize(acc, m, s, zo)

    return Case(inputs, reference, params={"channels_in": str(ci), "channels_out": str(co)})


# fully_connected_q ----------------------------------------------------------------------

FC = {"features": 256, "outputs": 256, "batch": 4}


def fc_inputs(rng):
    f, o, b = FC["features"], FC["outputs"], FC["batch"]
    return {"input": u8(rng, b, f), "filter": u8(rng, o, f),
            "bias": rng.integers(-50000, 50000, size=o, dtype=np.int32)}


def fc_reference(input, filter, bias, zi=128, zf=127, zo=128, m=M_0_7071, s=11):
    # the default shift is for 1024 features; the test has fewer, so the sums are smaller
    acc = centered(input, zi) @ centered(filter, zf).T + bias
    return requantize(acc, m, s, zo)


# max_pool, avg_pool ---------------------------------------------------------------------

POOL_H, POOL_W = 11, 14  # one odd size: the last window hangs over the edge


def pool_inputs(rng):
    return {"input": u8(rng, POOL_H, POOL_W, 32)}


def windows(a):
    """The 3x3 stride-2 windows of a [h, w, c] (zero outside): [9, ceil(h/2), ceil(w/2), c]."""
    h, w = a.shape[:2]
    oh, ow = (h + 1) // 2, (w + 1) // 2
    padded = np.pad(a, ((0, 2), (0, 2), (0, 0)))
    return np.stack([padded[ky:ky + 2 * oh:2, kx:kx + 2 * ow:2]
                     for ky in range(3) for kx in range(3)])


def max_pool_reference(input):
    return windows(input).max(axis=0)


def avg_pool_reference(input):
    total = windows(input.astype(np.int64)).sum(axis=0)
    count = windows(np.ones((*input.shape[:2], 1), np.int64)).sum(axis=0)
    # the rounded mean, as TFLite divides: (sum + count / 2) / count
    return ((total + count // 2) // count).astype(np.uint8)


# add_q, mul_q ---------------------------------------------------------------------------

def two_tensor_inputs(rng):
    return {"a": u8(rng, H, W, 8), "b": u8(rng, H, W, 8)}


def add_reference(a, b):
    a_scaled = scale_by(centered(a, 120) << 20, 1073741824, 0)
    b_scaled = scale_by(centered(b, 133) << 20, 1288490189, 1)
    return requantize(a_scaled + b_scaled, 1342177280, 19, 128)


def mul_reference(a, b):
    return requantize(centered(a, 120) * centered(b, 133), 1288490189, 5, 128)


# softmax_q ------------------------------------------------------------------------------

def softmax_inputs(rng):
    x = u8(rng, H, W, 128, low=100, high=180)
    x[0, :4] = u8(rng, 4, 128)  # a few pixels over the whole range
    return {"input": x}


EXP2_POLY = (1073739778, -744157487, 257095898, -57151877, 7346532)  # 2^-u, u in [0, 1), Q30


def exp_q15(d, scale):
    """~ round(2^15 exp(-scale d)): t = d scale / ln 2 in Q16, 2^-frac(t) by the
    polynomial (Horner, Q31 products), shifted right by floor(t) (0 from 2^-16 down)."""
    t = d.astype(np.int64) * round(scale / math.log(2) * 2**16)
    n = np.minimum(t >> 16, 16)
    u = (t & 0xFFFF) << 15
    p = np.full_like(t, EXP2_POLY[-1])
    for a in reversed(EXP2_POLY[:-1]):
        p = a + mul_q31(u, p)
    return np.where(n == 16, 0, rounding_shift_right(p, n + 15))


def softmax_reference(input, scale=0.0625):
    exps = exp_q15(input.max(axis=2, keepdims=True) - input.astype(np.int64), scale)
    total = exps.sum(axis=2, keepdims=True)
    h, n = reciprocal(total)
    scaled = mul_q31(exps << 15, h)
    return np.clip(rounding_shift_right(scaled, n + 6), 0, 255).astype(np.uint8)


def softmax_float(input, scale=0.0625):
    """Softmax in floats, to check the fixed-point one (not the pipeline) against."""
    e = np.exp(-scale * (input.max(axis=2, keepdims=True) - input.astype(np.float64)))
    return np.clip(np.round(256 * e / e.sum(axis=2, keepdims=True)), 0, 255)


# l2norm_q -------------------------------------------------------------------------------

def l2norm_inputs(rng):
    x = u8(rng, H, W, 8)
    x[0, 0] = 128  # an all-zero vector
    x[0, 1] = 128
    x[0, 1, 3] = 200  # a vector along one axis: saturates at 256 -> 255
    return {"input": x}


def l2norm_reference(input, zi=128):
    d = centered(input, zi)
    sum_sq = np.maximum((d * d).sum(axis=2, keepdims=True), 1)
    s, k = reciprocal_sqrt(sum_sq)
    inv_norm = rounding_shift_right(s, k + 7)  # 2^23 / sqrt(sum_sq)
    return np.clip(rounding_shift_right(d * inv_norm, 16) + 128, 0, 255).astype(np.uint8)


def l2norm_float(input, zi=128):
    """The L2 norm in floats, to check the fixed-point one (not the pipeline) against."""
    d = input.astype(np.float64) - zi
    norm = np.sqrt(np.maximum((d * d).sum(axis=2, keepdims=True), 1))
    return np.clip(np.round(128 * d / norm) + 128, 0, 255)


CASES = {
    "conv3x3_q": conv_case(8, 8),
    "conv3x3_q@odd": conv_case(5, 12),
    "depthwise3x3_q": Case(depthwise_inputs, depthwise_reference, params={"channels": "8"}),
    "pointwise_q": pointwise_case(16, 8),
    "pointwise_q@wide": pointwise_case(7, 33),
    "fully_connected_q": Case(fc_inputs, fc_reference,
                              params={k: str(v) for k, v in FC.items()}),
    "max_pool": Case(pool_inputs, max_pool_reference, params={"channels": "32"}),
    "avg_pool": Case(pool_inputs, avg_pool_reference, params={"channels": "32"}),
    "add_q": Case(two_tensor_inputs, add_reference, params={"channels": "8"}),
    "mul_q": Case(two_tensor_inputs, mul_reference, params={"channels": "8"}),
    "softmax_q": Case(softmax_inputs, softmax_reference, params={"channels": "128"}),
    "l2norm_q": Case(l2norm_inputs, l2norm_reference, params={"channels": "8"}),
}
