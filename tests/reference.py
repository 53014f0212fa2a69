"""numpy references for the built-in benchmarks (arrays indexed [y, x])."""

import numpy as np


def _pad(img, r):
    return np.pad(img, r, mode="edge")


def _shifted(img, r):
    """Yield (dx, dy, view) of the edge-padded image shifted by each offset in [-r, r]."""
    p = _pad(img, r)
    h, w = img.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            yield dx, dy, p[r + dy:r + dy + h, r + dx:r + dx + w]


def dilate3x3(img):
    return np.max(np.stack([v for _, _, v in _shifted(img, 1)]), axis=0)


def median3x3(img):
    return np.median(np.stack([v for _, _, v in _shifted(img, 1)]), axis=0).astype(np.uint8)


def gaussian5x5(img):
    k = np.array([1, 4, 6, 4, 1], dtype=np.uint32)
    acc = np.zeros(img.shape, dtype=np.uint32)
    for dx, dy, v in _shifted(img, 2):
        acc += k[dx + 2] * k[dy + 2] * v.astype(np.uint32)
    return ((acc + 128) >> 8).astype(np.uint8)


def sobel(img):
    views = {(dx, dy): v.astype(np.int32) for dx, dy, v in _shifted(img, 1)}
    def v(dx, dy):
        return views[(dx, dy)]
    smooth_v = {dx: v(dx, -1) + 2 * v(dx, 0) + v(dx, 1) for dx in (-1, 1)}
    smooth_h = {dy: v(-1, dy) + 2 * v(0, dy) + v(1, dy) for dy in (-1, 1)}
    gx = np.abs(smooth_v[1] - smooth_v[-1])
    gy = np.abs(smooth_h[1] - smooth_h[-1])
    return np.minimum(gx + gy, 255).astype(np.uint8)


def conv3x3(img, mask, acc_type):
    acc = np.zeros(img.shape, dtype=acc_type)
    for dx, dy, v in _shifted(img, 1):
        # numpy integer arithmetic wraps like Halide's (int16 may overflow by design)
        acc = (acc + v.astype(acc_type) * acc_type(mask[dy + 1, dx + 1])).astype(acc_type)
    return np.clip(acc >> 4, 0, 255).astype(np.uint8)


REFERENCES = {
    "dilate3x3": dilate3x3,
    "median3x3": median3x3,
    "gaussian5x5": gaussian5x5,
    "sobel": sobel,
    "conv3x3a16": lambda img, mask: conv3x3(img, mask, np.int16),
    "conv3x3a32": lambda img, mask: conv3x3(img, mask, np.int32),
}
