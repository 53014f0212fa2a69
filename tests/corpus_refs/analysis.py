"""NumPy references for benchmarks/corpus/analysis.py (arrays are [y, x])."""

import numpy as np

from corpus_refs import Case

W, H = 64, 48


def _image(rng):
    return {"input": rng.integers(0, 256, (H, W), dtype=np.uint8)}


def _low_contrast(rng):
    # levels bunched in the middle, so equalization has something to stretch
    return {"input": rng.integers(90, 150, (H, W), dtype=np.uint8)}


def _shapes(rng):
    """Blocks, a disc and noise: edges and corners in every direction."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.where((xx > 10) & (xx < 30) & (yy > 8) & (yy < 28), 200, 40)
    img = np.where((xx - 45) ** 2 + (yy - 30) ** 2 < 100, 120, img)
    img = img + rng.integers(-20, 21, (H, W))
    return {"input": np.clip(img, 0, 255).astype(np.uint8)}


def _shift(a, dx, dy, pad):
    """a[y + dy, x + dx] over the interior of an array padded by `pad` on each side."""
    h, w = a.shape[0] - 2 * pad, a.shape[1] - 2 * pad
    return a[pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def _valid(a, taps):
    """Sum of weight * a[y + dy, x + dx] over taps {(dx, dy): weight}; shrinks a by one on
    each side (every tap here is within 1)."""
    h, w = a.shape[0] - 2, a.shape[1] - 2
    return sum(wt * a[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for (dx, dy), wt in taps.items())


def _sobel(p):
    """int32 Sobel (gx, gy) of a padded array, shrunk by one on each side."""
    p = p.astype(np.int32)
    gx = _valid(p, {(1, -1): 1, (1, 0): 2, (1, 1): 1, (-1, -1): -1, (-1, 0): -2, (-1, 1): -1})
    gy = _valid(p, {(-1, 1): 1, (0, 1): 2, (1, 1): 1, (-1, -1): -1, (0, -1): -2, (1, -1): -1})
    return gx, gy


def histogram_equalize(input):
    cdf = np.cumsum(np.bincount(input.ravel(), minlength=256)).astype(np.int64)
    total = cdf[255]
    cdf_min = cdf[cdf > 0].min()
    denom = max(total - cdf_min, 1)
    lut = np.clip(((cdf - cdf_min) * 255 + denom // 2) // denom, 0, 255).astype(np.uint8)
    return lut[input]


def integral_image(input):
    return input.astype(np.uint32).cumsum(axis=1).cumsum(axis=0).astype(np.uint32)


def harris_response(input):
    gx, gy = _sobel(np.pad(input, 2, mode="edge"))  # padded by 1 still
    sums = []
    for prod in (gx * gx, gy * gy, gx * gy):
        box = _valid(prod, {(dx, dy): 1 for dx in (-1, 0, 1) for dy in (-1, 0, 1)})
        sums.append(box >> 8)
    sxx, syy, sxy = sums
    trace = sxx + syy
    return (sxx * syy - sxy * sxy - trace * ((trace * 10) >> 8)).astype(np.int32)


def canny_nms(input):
    p = np.pad(input, 3, mode="edge").astype(np.int32)
    blur = (_valid(p, {(dx, dy): (2 - abs(dx)) * (2 - abs(dy))
                       for dx in (-1, 0, 1) for dy in (-1, 0, 1)}) + 8) >> 4  # pad 2
    gx, gy = _sobel(blur)  # pad 1
    ax, ay = np.abs(gx), np.abs(gy)
    mag = ax + ay
    sector = np.where(ay * 29 <= ax * 12, 0,
                      np.where(ay * 12 >= ax * 29, 2,
                               np.where((gx > 0) == (gy > 0), 1, 3)))
    s = _shift(sector, 0, 0, 1)
    m = _shift(mag, 0, 0, 1)
    before = np.select([s == 0, s == 2, s == 1],
                       [_shift(mag, -1, 0, 1), _shift(mag, 0, -1, 1), _shift(mag, -1, -1, 1)],
                       _shift(mag, 1, -1, 1))
    after = np.select([s == 0, s == 2, s == 1],
                      [_shift(mag, 1, 0, 1), _shift(mag, 0, 1, 1), _shift(mag, 1, 1, 1)],
                      _shift(mag, -1, 1, 1))
    keep = (m >= before) & (m >= after)
    return np.where(keep, np.minimum(m >> 1, 255), 0).astype(np.uint8)


CASES = {
    "histogram_equalize": Case(_low_contrast, histogram_equalize),
    "integral_image": Case(_image, integral_image),
    "harris_response": Case(_shapes, harris_response),
    "canny_nms": Case(_shapes, canny_nms),
}
