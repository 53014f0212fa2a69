"""NumPy references for benchmarks/corpus/resample.py."""

from __future__ import annotations

import numpy as np

from corpus_refs import Case

H, W = 48, 64
ODD_H, ODD_W = 45, 61  # sizes that no power of two divides


def _u8_image(h, w):
    def inputs(rng):
        return {"input": rng.integers(0, 256, (h, w), dtype=np.uint8)}

    return inputs


def _source(n_out, num, den):
    """Integer index and 8-bit fraction of each output pixel centre's source position,
    (v + 1/2) * den / num - 1/2, by a fixed-point step."""
    v = np.arange(n_out, dtype=np.int64)
    step = (den * 65536 + num // 2) // num  # den / num with 16 fractional bits
    s = (((2 * v + 1) * step) >> 9) - 128
    return s >> 8, s & 255


def _rows(a, idx):
    return a[np.clip(idx, 0, a.shape[0] - 1), :]


def _cols(a, idx):
    return a[:, np.clip(idx, 0, a.shape[1] - 1)]


def _resize_bilinear(num, den):
    def reference(input):
        h, w = input.shape
        img = input.astype(np.int64)
        ix, fx = _source(w * num // den, num, den)
        iy, fy = _source(h * num // den, num, den)
        interp_x = _cols(img, ix) * (256 - fx) + _cols(img, ix + 1) * fx
        interp_y = (_rows(interp_x, iy) * (256 - fy)[:, None]
                    + _rows(interp_x, iy + 1) * fy[:, None])
        return ((interp_y + (1 << 15)) >> 16).astype(np.uint8)

    return reference


def _keys_taps(f):
    """Keys (a = -1/2) taps for 8-bit fractions f, in 1/128 units summing to 128: [4, n]."""
    t = f.astype(np.int64)
    one = 256
    w0 = -t**3 + 2 * t**2 * one - t * one**2
    w2 = -3 * t**3 + 4 * t**2 * one + t * one**2
    w3 = t**3 - t**2 * one
    q0, q2, q3 = ((w + (1 << 17)) >> 18 for w in (w0, w2, w3))
    return np.stack([q0, 128 - q0 - q2 - q3, q2, q3])


def _resize_bicubic(num, den):
    def reference(input):
        h, w = input.shape
        img = input.astype(np.int64)
        ix, fx = _source(w * num // den, num, den)
        iy, fy = _source(h * num // den, num, den)
        tx, ty = _keys_taps(fx), _keys_taps(fy)
        acc = 64 + sum(_cols(img, ix + j - 1) * tx[j] for j in range(4))
        interp_x = acc >> 7
        assert np.abs(interp_x).max() < 2**15
        acc = 64 + sum(_rows(interp_x, iy + j - 1) * ty[j][:, None] for j in range(4))
        return np.clip(acc >> 7, 0, 255).astype(np.uint8)

    return reference


BINOMIAL5 = (1, 4, 6, 4, 1)
# The pyramids' coarser levels have no boundary condition of their own: each extends as
# far as its consumer asks, computed from the edge-repeated input. Here every level is an
# array with the coordinates of its first element (its origin, per axis), computed from the
# input padded by PAD on every side, wherever that padding determines it.
PAD = 64


def _take(a, idx, axis):
    return a[:, idx] if axis == 1 else a[idx, :]


def _down_axis(a, origin, axis):
    """Binomial blur along axis at every second coordinate: out[X] = sum_j w_j a[2X+j-2]."""
    n = a.shape[axis]
    first, last = -(-(origin + 2) // 2), (origin + n - 3) // 2
    xs = np.arange(first, last + 1)
    return sum(b * _take(a, 2 * xs + j - 2 - origin, axis)
               for j, b in enumerate(BINOMIAL5)), first


def _down(level):
    a, (oy, ox) = level
    down_x, ox = _down_axis(a.astype(np.int64), ox, 1)
    acc, oy = _down_axis(down_x, oy, 0)
    return (acc + 128) >> 8, (oy, ox)


def _gaussian_levels(image, levels):
    out = [(np.pad(image.astype(np.int64), PAD, mode="edge"), (-PAD, -PAD))]
    for _ in range(levels - 1):
        out.append(_down(out[-1]))
    return out


def _crop(level, shape, at=(0, 0)):
    """The level over [at, at + shape)."""
    a, (oy, ox) = level
    y0, x0 = at[0] - oy, at[1] - ox
    assert y0 >= 0 and x0 >= 0 and y0 + shape[0] <= a.shape[0] and x0 + shape[1] <= a.shape[1]
    return a[y0:y0 + shape[0], x0:x0 + shape[1]]


def _gaussian_pyramid(input):
    h, w = input.shape
    return _crop(_gaussian_levels(input, 4)[-1], ((h + 7) // 8, (w + 7) // 8)).astype(np.uint8)


def _up_axis(a, origin, axis):
    """2x binomial expand along axis, rounded: out[X] = (a[(X-1)/2] + 3 a[X/2]
    + 3 a[(X+1)/2] + a[(X+2)/2] + 4) >> 3 (division rounding down)."""
    n = a.shape[axis]
    first, last = 2 * origin + 1, 2 * (origin + n) - 3
    xs = np.arange(first, last + 1)
    a0, a1, a2, a3 = (_take(a, (xs + d) // 2 - origin, axis) for d in (-1, 0, 1, 2))
    return (a0 + 3 * (a1 + a2) + a3 + 4) >> 3, first


def _upsample(level):
    a, (oy, ox) = level
    up_x, ox = _up_axis(a, ox, 1)
    up, oy = _up_axis(up_x, oy, 0)
    return up, (oy, ox)


def _common(*levels):
    """The levels cropped to the region they all cover."""
    y0 = max(o[0] for _, o in levels)
    x0 = max(o[1] for _, o in levels)
    y1 = min(o[0] + a.shape[0] for a, o in levels)
    x1 = min(o[1] + a.shape[1] for a, o in levels)
    return [_crop(lv, (y1 - y0, x1 - x0), (y0, x0)) for lv in levels], (y0, x0)


def _laplacian_pyramid(input):
    gauss = _gaussian_levels(input, 3)
    result = gauss[-1]
    for k in range(1, -1, -1):
        (g, predicted, coarse), origin = _common(gauss[k], _upsample(gauss[k + 1]),
                                                 _upsample(result))
        result = (coarse + (((g - predicted) * 3) >> 1), origin)
        assert np.abs(result[0]).max() < 2**12  # int16 in the pipeline, even times 8
    return np.clip(_crop(result, input.shape), 0, 255).astype(np.uint8)


CASES = {
    "resize_bilinear": Case(_u8_image(H, W), _resize_bilinear(2, 3)),
    "resize_bilinear@up3_2": Case(_u8_image(H, W), _resize_bilinear(3, 2),
                                  params={"scale_num": "3", "scale_den": "2"}),
    "resize_bicubic": Case(_u8_image(H, W), _resize_bicubic(3, 2)),
    "gaussian_pyramid": Case(_u8_image(ODD_H, ODD_W), _gaussian_pyramid),
    "laplacian_pyramid": Case(_u8_image(ODD_H, ODD_W), _laplacian_pyramid),
}
