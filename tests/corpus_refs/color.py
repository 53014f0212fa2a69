"""NumPy references for benchmarks/corpus/color.py (arrays are [c, y, x], or [y, x, c]
for the interleaved NV12 UV plane)."""

import numpy as np

from corpus_refs import Case

W, H = 64, 48


def _image(channels):
    return lambda rng: {"input": rng.integers(0, 256, (channels, H, W), dtype=np.uint8)}


def rgb_to_yuv(input):
    r, g, b = (input[k].astype(np.int32) for k in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return np.stack([y, u, v]).astype(np.uint8)


def _yuv_to_rgb(y, u, v):
    c = y.astype(np.int32) - 16
    d = u.astype(np.int32) - 128
    e = v.astype(np.int32) - 128
    luma = 298 * c + 128
    r = (luma + 409 * e) >> 8
    g = (luma - 100 * d - 208 * e) >> 8
    b = (luma + 516 * d) >> 8
    return [np.clip(ch, 0, 255).astype(np.uint8) for ch in (r, g, b)]


def yuv_to_rgb(input):
    return np.stack(_yuv_to_rgb(input[0], input[1], input[2]))


def nv12_inputs(rng):
    return {"y_plane": rng.integers(0, 256, (H, W), dtype=np.uint8),
            "uv_plane": rng.integers(0, 256, (H // 2, W // 2, 2), dtype=np.uint8)}


def nv12_to_rgb(y_plane, uv_plane):
    # nearest-neighbour chroma: pixel (x, y) takes UV pair (x // 2, y // 2)
    up = uv_plane.repeat(2, axis=0).repeat(2, axis=1)[:y_plane.shape[0], :y_plane.shape[1]]
    return np.stack(_yuv_to_rgb(y_plane, up[..., 0], up[..., 1]))


def tone_table(gamma):
    level = np.arange(256, dtype=np.float32) / np.float32(255)
    curve = np.power(level, np.float32(gamma)) * np.float32(255) + np.float32(0.5)
    return np.clip(curve, 0, 255).astype(np.uint8)


def tone_lut(gamma):
    return lambda input: tone_table(gamma)[input]


def blend_inputs(rng):
    return {"foreground": rng.integers(0, 256, (4, H, W), dtype=np.uint8),
            "background": rng.integers(0, 256, (4, H, W), dtype=np.uint8)}


def alpha_blend(foreground, background):
    a = foreground[3].astype(np.int64)
    src = foreground.astype(np.int64)
    src[3] = 255
    mixed = src * a + background.astype(np.int64) * (255 - a)
    # exact rounding division: round half up of mixed / 255
    return ((2 * mixed + 255) // 510).astype(np.uint8)


CASES = {
    "rgb_to_yuv": Case(_image(3), rgb_to_yuv),
    "yuv_to_rgb": Case(_image(3), yuv_to_rgb),
    "nv12_to_rgb": Case(nv12_inputs, nv12_to_rgb),
    # float pow per table entry: a last-ulp difference may move a rounding by one level
    "tone_lut": Case(_image(3), tone_lut(0.45), atol=1),
    "tone_lut@gamma2.2": Case(_image(3), tone_lut(2.2), params={"gamma": "2.2"}, atol=1),
    "alpha_blend": Case(blend_inputs, alpha_blend),
}
