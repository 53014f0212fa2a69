"""NumPy references for benchmarks/corpus/filters.py."""

from __future__ import annotations

from math import comb

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from corpus_refs import Case

H, W = 48, 64


def _u8_image(rng):
    return {"input": rng.integers(0, 256, (H, W), dtype=np.uint8)}


def _u16_image(rng):
    return {"input": rng.integers(0, 65536, (H, W), dtype=np.uint16)}


def _box_blur(radius):
    def reference(input):
        n = 2 * radius + 1
        p = np.pad(input.astype(np.int64), radius, mode="edge")
        sums = sliding_window_view(p, (n, n)).sum(axis=(2, 3))
        return ((sums + n * n // 2) // (n * n)).astype(np.uint8)

    return reference


def _gaussian_blur(taps):
    def reference(input):
        w = [comb(taps - 1, k) for k in range(taps)]
        half, shift = taps // 2, taps - 1
        h, wd = input.shape
        p = np.pad(input.astype(np.int64), half, mode="edge")
        bx = sum(w[k] * p[:, k:k + wd] for k in range(taps))
        bx = (bx + (1 << (shift - 1))) >> shift
        by = sum(w[k] * bx[k:k + h, :] for k in range(taps))
        return ((by + (1 << (shift - 1))) >> shift).astype(np.uint16)

    return reference


def _median5x5(input):
    p = np.pad(input, 2, mode="edge")
    windows = sliding_window_view(p, (5, 5)).reshape(*input.shape, 25)
    return np.sort(windows, axis=-1)[..., 12].astype(np.uint8)


def _morph_open5x5(input):
    p = np.pad(input, 4, mode="edge")
    eroded = sliding_window_view(p, (5, 5)).min(axis=(2, 3))
    return sliding_window_view(eroded, (5, 5)).max(axis=(2, 3)).astype(np.uint8)


def _fir16_inputs(rng):
    # |taps| <= 4000: the sum of 16 products stays within int32 (and saturates at times)
    return {"input": rng.integers(-32768, 32768, (H, W), dtype=np.int16),
            "coef": rng.integers(-4000, 4001, 16, dtype=np.int16)}


def _fir16(input, coef):
    w = input.shape[1]
    p = np.pad(input.astype(np.int64), ((0, 0), (15, 0)))  # zeros before the first sample
    acc = sum(int(coef[k]) * p[:, 15 - k:15 - k + w] for k in range(16))
    return np.clip((acc + (1 << 14)) >> 15, -32768, 32767).astype(np.int16)


CASES = {
    "box_blur": Case(_u8_image, _box_blur(2)),
    "box_blur@r1": Case(_u8_image, _box_blur(1), params={"radius": "1"}),
    "gaussian_blur": Case(_u16_image, _gaussian_blur(7)),
    "gaussian_blur@taps3": Case(_u16_image, _gaussian_blur(3), params={"taps": "3"}),
    "median5x5": Case(_u8_image, _median5x5),
    "morph_open5x5": Case(_u8_image, _morph_open5x5),
    "fir16": Case(_fir16_inputs, _fir16),
}
