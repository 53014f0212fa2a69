"""Imported by pyramid_generator.py from its folder."""

import halide as hl


def downsample(f: hl.Func, taps: list[int]) -> hl.Func:
    """Separable filter with `taps`, then keep every other pixel in x and y."""
    x, y = hl.vars("x y")
    half = len(taps) // 2
    across, down = hl.Func("across"), hl.Func("down")
    across[x, y] = sum(hl.u16(f[2 * x + i - half, y]) * t for i, t in enumerate(taps))
    down[x, y] = sum(across[x, 2 * y + i - half] * t for i, t in enumerate(taps))
    return hl.lambda_func(x, y, down[x, y] // (sum(taps) ** 2))
