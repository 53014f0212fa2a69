"""The farm's random pipelines (BENCH `random`): a seed is one pipeline, for one version.

After the Adams2019 paper's recipe (a cost model is trained on many random programs and
schedules), written from its description with Halide's Python API. A pipeline is a chain
of `stages` stages over 3-D images (x, y, channel) of `size` x `size` pixels, each stage
drawn from the kinds real image and DNN pipelines use:

- pointwise: an affine map, an activation (ReLU, clamp, abs; tanh-like for floats), a cast;
- stencils: a dense k x k convolution (k = 3, 5 or 7), a separable one (two stages);
- resampling: a 2x downsample (average or max pooling), a 2x upsample (nearest or linear);
- layout: a transpose of x and y, a channel slice or broadcast;
- reductions: a box sum over an RDom, a histogram used as a lookup table, a scan (running
  sum along x);
- all-to-all: a channel mix (a 1x1 convolution, matmul-like, over an RDom of channels);
- joins: two earlier stages combined (sum, min/max, select).

`types=float` computes in float32; `types=int` takes and gives uint8 and computes in
int16, widening to int32 only inside sums: the integer family HVX vectorizes (Halide's HVX
path gives floats a vector width of 1). Every input and the output carry estimates.

Version 2 draws pipelines shaped like real image pipelines' stencils (the six built-ins
are 2-D, one channel, and conv3x3 convolves with a mask that is an input of its own): its
images are 2-D, one channel, and it adds two kinds, a convolution whose taps are read
from a second input (`mask`, 7 x 7), and a block mix (each output of a 16-wide block of
x a weighted sum of the whole block: the all-to-all kind without channels). Version 1
stays the default: models trained on version 2 transferred worse to the built-ins
(PERFORMANCE.md, "Version 2 of the generator").

The pipeline depends only on (version, seed, stages, size, types): the draws come from
Python's random.Random seeded with them, never from global state. A new draw order or a
new stage kind is a new version, so the pipelines of a version never change.
"""

from __future__ import annotations

import random as stdlib_random
from typing import Any

import halide as hl

VERSION = 1  # the default
VERSIONS = (1, 2)
KINDS = ("pointwise", "cast", "conv", "separable", "downsample", "upsample", "transpose",
         "channels", "boxsum", "histogram", "scan", "mix", "join")
PLANAR_KINDS = ("pointwise", "cast", "conv", "masked", "separable", "downsample", "upsample",
                "transpose", "boxsum", "histogram", "scan", "blockmix", "join")  # version 2
MASK = 7  # version 2's mask input is MASK x MASK
BLOCK = 16  # the width of a block mix's blocks
MIN_SIDE = 16  # no downsample below this many pixels a side
# Bounds a mistyped value meets before it builds for hours or allocates gigabytes:
# Halide's own random pipelines have 12-20 stages.
MAX_STAGES, MAX_SIDE = 64, 8192
MAX_CHANNELS = 16
HIST_BINS = 64


class _Stage:
    """A Func of the chain and the extents it is used over."""

    def __init__(self, func: hl.Func, width: int, height: int, channels: int):
        self.func, self.width, self.height, self.channels = func, width, height, channels


class _Drawer:
    """Draws a pipeline's stages from `rng`; `floats` picks the family. With a `mask` (an
    input, version 2) its images are planar: 2-D, the channel index dropped."""

    def __init__(self, rng: stdlib_random.Random, floats: bool, mask: Any = None):
        self.rng, self.floats, self.mask = rng, floats, mask
        self.x, self.y, self.c = hl.Var("x"), hl.Var("y"), hl.Var("c")
        self.work = hl.Float(32) if floats else hl.Int(16)
        self.wide = hl.Float(32) if floats else hl.Int(32)
        self.count = 0
        self.site = self.at(self.x, self.y, self.c)  # where every stage is defined

    def at(self, x, y, c) -> tuple:
        """A site of an image: (x, y, c), or (x, y) when planar."""
        return (x, y) if self.mask is not None else (x, y, c)

    def func(self, kind: str) -> hl.Func:
        self.count += 1
        return hl.Func(f"s{self.count}_{kind}")

    def narrow(self, e: hl.Expr, shift: int = 0) -> hl.Expr:
        """A wide value back to the working type (ints: shifted right, saturated)."""
        if self.floats:
            return e
        return hl.saturating_cast(self.work, e >> shift if shift else e)

    def weight(self) -> int:
        return self.rng.choice((-2, -1, 1, 1, 2, 3))

    def stage(self, kind: str, chain: list[_Stage]) -> _Stage:
        return getattr(self, f"_{kind}")(chain[-1], chain)

    # pointwise and casts
    def _pointwise(self, s: _Stage, chain) -> _Stage:
        f = self.func("pointwise")
        v = s.func[self.site]
        op = self.rng.choice(("affine", "relu", "clamp", "abs", "square"))
        if op == "affine":
            a, b = self.rng.randint(1, 3), self.rng.randint(-8, 8)
            f[self.site] = self.narrow(hl.cast(self.wide, v) * a + b, 1 if a > 1 else 0)
        elif op == "relu":
            f[self.site] = hl.max(v, hl.cast(self.work, 0))
        elif op == "clamp":
            f[self.site] = hl.clamp(v, hl.cast(self.work, -64), hl.cast(self.work, 64))
        elif op == "abs":
            f[self.site] = hl.cast(self.work, hl.abs(v))
        elif self.floats:  # a smooth activation: x / (1 + |x|)
            f[self.site] = v / (1.0 + hl.abs(v))
        else:
            f[self.site] = self.narrow(hl.cast(self.wide, v) * v, 7)
        return _Stage(f, s.width, s.height, s.channels)

    def _cast(self, s: _Stage, chain) -> _Stage:
        """Through a narrower type and back (quantization, as image pipelines do)."""
        f = self.func("cast")
        if self.floats:  # fixed point with 6 fractional bits
            f[self.site] = hl.cast(self.work, hl.saturating_cast(
                hl.Int(16), s.func[self.site] * 64.0)) / 64.0
        else:
            f[self.site] = hl.cast(self.work, hl.saturating_cast(hl.UInt(8), s.func[self.site]))
        return _Stage(f, s.width, s.height, s.channels)

    # stencils
    def _convolve(self, s: _Stage, kind: str, k: int, weight) -> _Stage:
        """A k x k convolution of `s`, tap (dx, dy) weighted by `weight(dx, dy)`, called
        row by row (a draw's order is part of the pipeline)."""
        x, y, c, f = self.x, self.y, self.c, self.func(kind)
        total: hl.Expr = hl.cast(self.wide, 0)
        for dy in range(k):
            for dx in range(k):
                total = total + weight(dx, dy) * hl.cast(
                    self.wide, s.func[self.at(x + dx - k // 2, y + dy - k // 2, c)])
        f[self.site] = self.narrow(total / (k * k) if self.floats else total, 4)
        return _Stage(f, s.width, s.height, s.channels)

    def _conv(self, s: _Stage, chain) -> _Stage:
        return self._convolve(s, "conv", self.rng.choice((3, 3, 5, 7)),
                              lambda dx, dy: self.weight())

    def _masked(self, s: _Stage, chain) -> _Stage:
        """A k x k convolution whose taps are read from the mask input (version 2), as
        conv3x3 reads its mask: a second, tiny input read on every tap."""
        mask = self.mask
        assert mask is not None
        k = self.rng.choice((3, 3, 5, MASK))
        at = self.rng.randint(0, MASK - k)  # where in the mask its taps start
        return self._convolve(s, "masked", k, lambda dx, dy: hl.cast(
            self.wide, mask[at + dx, at + dy]))

    def _separable(self, s: _Stage, chain) -> _Stage:
        x, y, c = self.x, self.y, self.c
        k = self.rng.choice((3, 5, 7))
        taps = [self.weight() for _ in range(k)]
        rows, cols = self.func("sep_x"), self.func("sep_y")
        zero = hl.cast(self.wide, 0)
        rows[self.site] = self.narrow(sum((
            t * hl.cast(self.wide, s.func[self.at(x + i - k // 2, y, c)])
            for i, t in enumerate(taps)), zero), 2)
        cols[self.site] = self.narrow(sum((
            t * hl.cast(self.wide, rows[self.at(x, y + i - k // 2, c)])
            for i, t in enumerate(taps)), zero), 2)
        return _Stage(cols, s.width, s.height, s.channels)

    # resampling
    def _downsample(self, s: _Stage, chain) -> _Stage:
        if min(s.width, s.height) < 2 * MIN_SIDE:
            return self._pointwise(s, chain)
        x, y, c, f = self.x, self.y, self.c, self.func("down")
        taps = [s.func[self.at(2 * x + i, 2 * y + j, c)] for j in (0, 1) for i in (0, 1)]
        if self.rng.random() < 0.5:  # max pooling
            f[self.site] = hl.max(hl.max(taps[0], taps[1]), hl.max(taps[2], taps[3]))
        else:  # average pooling
            wide = [hl.cast(self.wide, t) for t in taps]
            f[self.site] = self.narrow(sum(wide[1:], wide[0]) / 4 if self.floats
                                       else sum(wide[1:], wide[0]), 2)
        return _Stage(f, s.width // 2, s.height // 2, s.channels)

    def _upsample(self, s: _Stage, chain) -> _Stage:
        x, y, c, f = self.x, self.y, self.c, self.func("up")
        if self.rng.random() < 0.5:  # nearest
            f[self.site] = s.func[self.at(x // 2, y // 2, c)]
        else:  # linear in x and y
            a = hl.cast(self.wide, s.func[self.at(x // 2, y // 2, c)])
            b = hl.cast(self.wide, s.func[self.at((x + 1) // 2, (y + 1) // 2, c)])
            f[self.site] = self.narrow(a + b, 1) if not self.floats else (a + b) * 0.5
        return _Stage(f, s.width * 2, s.height * 2, s.channels)

    # layout
    def _transpose(self, s: _Stage, chain) -> _Stage:
        x, y, c, f = self.x, self.y, self.c, self.func("transpose")
        f[self.site] = s.func[self.at(y, x, c)]
        return _Stage(f, s.height, s.width, s.channels)

    def _channels(self, s: _Stage, chain) -> _Stage:
        """A slice of one channel broadcast to several, or a subset of the channels."""
        x, y, c, f = self.x, self.y, self.c, self.func("channels")
        if s.channels > 1 and self.rng.random() < 0.5:
            keep = self.rng.randint(1, s.channels - 1)
            f[x, y, c] = s.func[x, y, c % keep]
            return _Stage(f, s.width, s.height, keep)
        pick = self.rng.randrange(s.channels)
        wanted = self.rng.choice((2, 3, 4, 8))
        f[x, y, c] = s.func[x, y, pick] + hl.cast(self.work, c)
        return _Stage(f, s.width, s.height, wanted)

    # reductions and scans
    def _boxsum(self, s: _Stage, chain) -> _Stage:
        x, y, c, f = self.x, self.y, self.c, self.func("boxsum")
        k = self.rng.choice((3, 5, 9))
        r = hl.RDom([(-(k // 2), k), (-(k // 2), k)])
        total = hl.sum(hl.cast(self.wide, s.func[self.at(x + r.x, y + r.y, c)]))
        f[self.site] = total / (k * k) if self.floats else self.narrow(total, 4)
        return _Stage(f, s.width, s.height, s.channels)

    def _histogram(self, s: _Stage, chain) -> _Stage:
        """A histogram of a channel over the whole image, then used as a lookup table."""
        b = hl.Var("b")
        hist, lut = self.func("hist"), self.func("lut")
        r = hl.RDom([(0, s.width), (0, s.height)])
        bucket = hl.clamp(hl.cast(hl.Int(32), s.func[self.at(r.x, r.y, 0)]) + HIST_BINS // 2,
                          0, HIST_BINS - 1)
        hist[b] = 0
        hist[bucket] += 1
        index = hl.clamp(hl.cast(hl.Int(32), s.func[self.site]) + HIST_BINS // 2, 0,
                         HIST_BINS - 1)
        lut[self.site] = hl.cast(self.work, hist[index] >> 8) if not self.floats \
            else hl.cast(self.work, hist[index]) / (s.width * s.height)
        return _Stage(lut, s.width, s.height, s.channels)

    def _scan(self, s: _Stage, chain) -> _Stage:
        """A running sum along x, with its own update over an RDom (a scan)."""
        y, c, f = self.y, self.c, self.func("scan")
        r = hl.RDom([(1, s.width - 1)])
        f[self.site] = hl.cast(self.wide, s.func[self.site])
        f[self.at(r.x, y, c)] = f[self.at(r.x - 1, y, c)] + hl.cast(
            self.wide, s.func[self.at(r.x, y, c)])
        out, total = self.func("scan_out"), f[self.site]
        out[self.site] = self.narrow(total / s.width if self.floats else total, 6)
        return _Stage(out, s.width, s.height, s.channels)

    # all-to-all
    def _mix(self, s: _Stage, chain) -> _Stage:
        """A 1x1 convolution: each output channel a weighted sum of every input channel."""
        x, y, c, k = self.x, self.y, self.c, hl.Var("k")
        w, f = self.func("mix_weights"), self.func("mix")
        out_channels = self.rng.choice((4, 8, MAX_CHANNELS))
        step = self.rng.randint(1, 7)
        w[c, k] = hl.cast(self.wide, (c * step + k) % 5 - 2)
        r = hl.RDom([(0, s.channels)])
        f[x, y, c] = self.narrow(hl.sum(w[c, r] * hl.cast(self.wide, s.func[x, y, r])), 3)
        return _Stage(f, s.width, s.height, out_channels)

    def _blockmix(self, s: _Stage, chain) -> _Stage:
        """Each output of a BLOCK-wide block of x a weighted sum of the whole block (version
        2): all-to-all, matmul-like, without a channel dimension."""
        x, y, f = self.x, self.y, self.func("blockmix")
        step = self.rng.randint(1, 7)
        r = hl.RDom([(0, BLOCK)])
        w = hl.cast(self.wide, ((x % BLOCK) * step + r) % 5 - 2)
        f[x, y] = self.narrow(hl.sum(w * hl.cast(self.wide, s.func[x // BLOCK * BLOCK + r, y])),
                              3)
        return _Stage(f, s.width, s.height, s.channels)

    # joins
    def _join(self, s: _Stage, chain) -> _Stage:
        """This stage with an earlier one of the same extents (the input at the least)."""
        same = [t for t in chain[:-1] if (t.width, t.height) == (s.width, s.height)]
        if not same:
            return self._pointwise(s, chain)
        other = self.rng.choice(same)
        x, y, c, f = self.x, self.y, self.c, self.func("join")
        a, b = s.func[self.site], other.func[self.at(x, y, c % other.channels)]
        op = self.rng.choice(("add", "max", "select"))
        if op == "add":
            f[self.site] = self.narrow(hl.cast(self.wide, a) + b, 1)
        elif op == "max":
            f[self.site] = hl.max(a, b)
        else:
            f[self.site] = hl.select(a > b, a - b, b - a)
        return _Stage(f, s.width, s.height, s.channels)


def _planar(version: int) -> bool:
    """Whether `version` draws 2-D one-channel images with a mask input (version 2)."""
    return version == 2


@hl.generator(name="random")
class RandomPipeline:
    """A random pipeline of `stages` stages over size x size images (see the module)."""

    seed = hl.GeneratorParam(0)
    stages = hl.GeneratorParam(8)
    size = hl.GeneratorParam(256)
    types = hl.GeneratorParam("float")
    version = hl.GeneratorParam(VERSION)

    def configure(g):
        if str(g.types) not in ("float", "int"):
            raise ValueError(f"types={g.types}: choose float or int")
        if int(g.version) not in VERSIONS:
            raise ValueError(f"version={g.version}: this farm draws versions "
                             f"{', '.join(map(str, VERSIONS))}")
        if not (1 <= int(g.stages) <= MAX_STAGES and MIN_SIDE <= int(g.size) <= MAX_SIDE):
            raise ValueError(f"stages must be 1 to {MAX_STAGES} and size {MIN_SIDE} to "
                             f"{MAX_SIDE}")
        floats = str(g.types) == "float"
        dims = 2 if _planar(int(g.version)) else 3
        g.add_input("input", hl.InputBuffer(hl.Float(32) if floats else hl.UInt(8), dims))
        if dims == 2:  # the stencils' taps, as conv3x3's int8 mask
            g.add_input("mask", hl.InputBuffer(hl.Float(32) if floats else hl.Int(8), 2))
        g.add_output("output", hl.OutputBuffer(hl.Float(32) if floats else hl.UInt(8), dims))

    def generate(g):
        floats, version = str(g.types) == "float", int(g.version)
        rng = stdlib_random.Random(f"farm-random/{version}/{g.seed}/{g.stages}/{g.size}/"
                                   f"{g.types}")
        planar = _planar(version)
        draw = _Drawer(rng, floats, g.mask if planar else None)
        x, y, c = draw.x, draw.y, draw.c
        side, channels = int(g.size), 1 if planar else 3
        start = draw.func("input")
        bounded = hl.BoundaryConditions.repeat_edge(g.input)
        start[draw.site] = hl.cast(draw.work, bounded[draw.site])
        chain = [_Stage(start, side, side, channels)]
        for _ in range(int(g.stages)):
            chain.append(draw.stage(rng.choice(PLANAR_KINDS if planar else KINDS), chain))
        last = chain[-1]
        out_type = hl.Float(32) if floats else hl.UInt(8)
        if planar:
            g.output[x, y] = hl.saturating_cast(out_type, last.func[x, y])
            g.mask.set_estimates([(0, MASK), (0, MASK)])
        else:
            g.output[x, y, c] = hl.saturating_cast(out_type, last.func[x, y, c % last.channels])
        g.input.set_estimates(list(draw.at((0, side), (0, side), (0, channels))))
        g.output.set_estimates(list(draw.at((0, last.width), (0, last.height),
                                            (0, last.channels))))
        if not g.using_autoscheduler():  # the manual schedule: every stage computed at
            # root, vectorized and parallel (Halide's default, everything inlined,
            # recomputes stencils of stencils without end)
            vector = g.natural_vector_size(draw.work)
            for stage in chain:
                stage.func.compute_root().vectorize(x, vector).parallel(y)
            g.output.vectorize(x, vector).parallel(y)
