"""Color: per-pixel color space conversions, tone curves and compositing of uint8 images.

Pointwise pipelines on planar (x, y, c) or semi-planar images: BT.601 RGB <-> YUV in
fixed point, NV12 decoding, a gamma lookup table built inside the pipeline, and
alpha blending. Inputs go through repeat_edge on x and y, so any output size is valid.
"""

import halide as hl

from farm.benchmark_kit import HEIGHT, WIDTH

U8, U16, I16, I32 = hl.UInt(8), hl.UInt(16), hl.Int(16), hl.Int(32)


def _edge_xy(buf):
    """repeat_edge on the x and y dimensions of `buf` only (channels are indexed exactly)."""
    return hl.BoundaryConditions.repeat_edge(
        buf, [hl.Range(buf.dim(0).min(), buf.dim(0).extent()),
              hl.Range(buf.dim(1).min(), buf.dim(1).extent())])


def _planar_estimates(*bufs, channels, width=WIDTH, height=HEIGHT):
    for b in bufs:
        b.set_estimates([(0, width), (0, height), (0, channels)])


def _yuv_to_rgb(yy, u, v):
    """BT.601 studio-range YUV (uint8 Exprs) to saturated uint8 R, G, B (8-bit coefficients)."""
    c = hl.cast(I32, yy) - 16
    d = hl.cast(I32, u) - 128
    e = hl.cast(I32, v) - 128
    luma = 298 * c + 128
    r = (luma + 409 * e) >> 8
    gr = (luma - 100 * d - 208 * e) >> 8
    b = (luma + 516 * d) >> 8
    return [hl.cast(U8, hl.clamp(ch, 0, 255)) for ch in (r, gr, b)]


@hl.generator(name="rgb_to_yuv")
class RgbToYuv:
    """Planar uint8 RGB to planar BT.601 studio-range YUV, 8-bit fixed-point coefficients."""

    input = hl.InputBuffer(U8, 3)
    output = hl.OutputBuffer(U8, 3)

    def generate(g):
        x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
        rgb = hl.Func("bounded_rgb")
        rgb[x, y, c] = _edge_xy(g.input)[x, y, c]
        r = hl.cast(I16, rgb[x, y, 0])
        gr = hl.cast(I16, rgb[x, y, 1])
        b = hl.cast(I16, rgb[x, y, 2])
        luma = hl.Func("luma")
        # 66 + 129 + 25 = 220: at most 56228, so uint16
        luma[x, y] = hl.cast(U8, ((66 * hl.cast(U16, r) + 129 * hl.cast(U16, gr)
                                   + 25 * hl.cast(U16, b) + 128) >> 8) + 16)
        chroma = hl.Func("chroma")
        # |sum| <= 112 * 255 + 128: int16
        u = ((-38 * r - 74 * gr + 112 * b + 128) >> 8) + 128
        v = ((112 * r - 94 * gr - 18 * b + 128) >> 8) + 128
        chroma[x, y] = hl.Tuple([hl.cast(U8, u), hl.cast(U8, v)])
        g.output[x, y, c] = hl.mux(c, [luma[x, y], chroma[x, y][0], chroma[x, y][1]])

        _planar_estimates(g.input, g.output, channels=3)


@hl.generator(name="yuv_to_rgb")
class YuvToRgb:
    """Planar BT.601 studio-range YUV to planar uint8 RGB, fixed point, saturating."""

    input = hl.InputBuffer(U8, 3)
    output = hl.OutputBuffer(U8, 3)

    def generate(g):
        x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
        yuv = hl.Func("bounded_yuv")
        yuv[x, y, c] = _edge_xy(g.input)[x, y, c]
        rgb = hl.Func("rgb")
        rgb[x, y] = hl.Tuple(_yuv_to_rgb(yuv[x, y, 0], yuv[x, y, 1], yuv[x, y, 2]))
        g.output[x, y, c] = hl.mux(c, [rgb[x, y][0], rgb[x, y][1], rgb[x, y][2]])

        _planar_estimates(g.input, g.output, channels=3)


@hl.generator(name="nv12_to_rgb")
class Nv12ToRgb:
    """NV12 (full-size Y plane, half-size interleaved UV plane) to planar uint8 RGB, BT.601."""

    y_plane = hl.InputBuffer(U8, 2)
    uv_plane = hl.InputBuffer(U8, 3)  # (c, x, y): c = 0 is U, 1 is V, interleaved
    output = hl.OutputBuffer(U8, 3)  # (x, y, c): planar RGB

    def generate(g):
        c, x, y = hl.Var("c"), hl.Var("x"), hl.Var("y")
        luma = hl.Func("bounded_luma")
        luma[x, y] = hl.BoundaryConditions.repeat_edge(g.y_plane)[x, y]
        uv = g.uv_plane
        chroma = hl.Func("bounded_chroma")
        chroma[c, x, y] = hl.BoundaryConditions.repeat_edge(
            uv, [hl.Range(uv.dim(0).min(), uv.dim(0).extent()),
                 hl.Range(uv.dim(1).min(), uv.dim(1).extent()),
                 hl.Range(uv.dim(2).min(), uv.dim(2).extent())])[c, x, y]
        # nearest-neighbour chroma upsampling: each UV pair covers a 2x2 block of luma
        up_u = chroma[0, x // 2, y // 2]
        up_v = chroma[1, x // 2, y // 2]
        rgb = hl.Func("rgb")
        rgb[x, y] = hl.Tuple(_yuv_to_rgb(luma[x, y], up_u, up_v))
        g.output[x, y, c] = hl.mux(c, [rgb[x, y][0], rgb[x, y][1], rgb[x, y][2]])

        # UV interleaved, as a camera or a codec hands it over: the pair innermost
        g.uv_plane.dim(0).set_bounds(0, 2)
        g.uv_plane.dim(1).set_stride(2)
        g.y_plane.set_estimates([(0, WIDTH), (0, HEIGHT)])
        g.uv_plane.set_estimates([(0, 2), (0, WIDTH // 2), (0, HEIGHT // 2)])
        _planar_estimates(g.output, channels=3)


@hl.generator(name="tone_lut")
class ToneLut:
    """Gamma tone curve on a uint8 RGB image through a 256-entry LUT built from `gamma`."""

    gamma = hl.GeneratorParam(0.45)
    input = hl.InputBuffer(U8, 3)
    output = hl.OutputBuffer(U8, 3)

    def generate(g):
        x, y, c, i = hl.Var("x"), hl.Var("y"), hl.Var("c"), hl.Var("i")
        bounded = hl.Func("bounded_input")
        bounded[x, y, c] = _edge_xy(g.input)[x, y, c]
        # one float power per table entry: 255 * (i / 255)^gamma, rounded
        lut = hl.Func("tone_table")
        level = hl.cast(hl.Float(32), i) / 255.0
        curve = hl.pow(level, hl.f32(float(g.gamma))) * 255.0 + 0.5
        lut[i] = hl.cast(U8, hl.clamp(curve, 0.0, 255.0))
        g.output[x, y, c] = lut[bounded[x, y, c]]

        _planar_estimates(g.input, g.output, channels=3)


@hl.generator(name="alpha_blend")
class AlphaBlend:
    """Foreground uint8 RGBA over background RGBA by the foreground's alpha, rounded /255."""

    foreground = hl.InputBuffer(U8, 3)
    background = hl.InputBuffer(U8, 3)
    output = hl.OutputBuffer(U8, 3)

    def generate(g):
        x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
        fg, bg = hl.Func("bounded_fg"), hl.Func("bounded_bg")
        fg[x, y, c] = _edge_xy(g.foreground)[x, y, c]
        bg[x, y, c] = _edge_xy(g.background)[x, y, c]
        # the alpha plane is read on its own: reading bounded_fg at both c and 3 would make
        # its channel footprint depend on c
        alpha = hl.Func("fg_alpha")
        alpha[x, y] = hl.cast(U16, _edge_xy(g.foreground)[x, y, 3])
        # colour: fg*a + bg*(255-a); alpha: 255*a + bg_a*(255-a) (the "over" operator)
        src = hl.select(c == 3, hl.u16(255), hl.cast(U16, fg[x, y, c]))
        mixed = hl.Func("mixed")
        mixed[x, y, c] = src * alpha[x, y] + hl.cast(U16, bg[x, y, c]) * (255 - alpha[x, y])
        # round(v / 255), exact for v <= 255 * 255, in uint16
        v = mixed[x, y, c] + 128
        g.output[x, y, c] = hl.cast(U8, (v + (v >> 8)) >> 8)

        # a third of the usual area: three 4-channel images move 47 MB at full size
        _planar_estimates(g.foreground, g.background, g.output, channels=4,
                          width=1024, height=HEIGHT // 2)
