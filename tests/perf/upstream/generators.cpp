// C++ generators of two farm benchmarks (same algorithms and Funcs as benchmarks/*.py) and of
// unsharp (tests/perf/pipelines/unsharp.py),
// for running Halide's own adams2019_autotune_loop.sh beside the farm.
#include "Halide.h"

using namespace Halide;

namespace {

constexpr int kWidth = 1536, kHeight = 2560;

Expr mid3(Expr a, Expr b, Expr c) {
    return max(min(a, b), min(max(a, b), c));
}

class Median3x3 : public Generator<Median3x3> {
public:
    Input<Buffer<uint8_t, 2>> input{"input"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        Var x{"x"}, y{"y"};
        Func bounded{"bounded_input"}, lo{"row_lo"}, md{"row_md"}, hi{"row_hi"};
        bounded(x, y) = BoundaryConditions::repeat_edge(input)(x, y);
        Expr l = bounded(x - 1, y), c = bounded(x, y), r = bounded(x + 1, y);
        lo(x, y) = min(min(l, c), r);
        hi(x, y) = max(max(l, c), r);
        md(x, y) = mid3(l, c, r);
        output(x, y) = mid3(max(max(lo(x, y - 1), lo(x, y)), lo(x, y + 1)),
                            mid3(md(x, y - 1), md(x, y), md(x, y + 1)),
                            min(min(hi(x, y - 1), hi(x, y)), hi(x, y + 1)));
        input.set_estimates({{0, kWidth}, {0, kHeight}});
        output.set_estimates({{0, kWidth}, {0, kHeight}});
        if (!using_autoscheduler()) {
            output.vectorize(x, natural_vector_size<uint8_t>()).parallel(y, 16);
        }
    }
};

Expr taps5(Expr a, Expr b, Expr c, Expr d, Expr e) {
    return a + 4 * b + 6 * c + 4 * d + e;
}

class Gaussian5x5 : public Generator<Gaussian5x5> {
public:
    Input<Buffer<uint8_t, 2>> input{"input"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        Var x{"x"}, y{"y"};
        Func bounded{"bounded_input"}, wide{"wide"}, rows{"rows"}, cols{"cols"};
        bounded(x, y) = BoundaryConditions::repeat_edge(input)(x, y);
        wide(x, y) = cast<uint16_t>(bounded(x, y));
        rows(x, y) = taps5(wide(x, y - 2), wide(x, y - 1), wide(x, y), wide(x, y + 1),
                           wide(x, y + 2));
        cols(x, y) = taps5(rows(x - 2, y), rows(x - 1, y), rows(x, y), rows(x + 1, y),
                           rows(x + 2, y));
        output(x, y) = cast<uint8_t>((cols(x, y) + 128) >> 8);
        input.set_estimates({{0, kWidth}, {0, kHeight}});
        output.set_estimates({{0, kWidth}, {0, kHeight}});
        if (!using_autoscheduler()) {
            output.vectorize(x, natural_vector_size<uint8_t>()).parallel(y, 16);
        }
    }
};

// Unsharp masking as tests/perf/pipelines/unsharp.py: a separable 5x5 binomial blur subtracted
// from the image. No farm choice was tuned on it.
class Unsharp : public Generator<Unsharp> {
public:
    Input<Buffer<uint8_t, 2>> input{"input"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        Var x{"x"}, y{"y"};
        Func clamped{"clamped"}, wide{"wide"}, blur_x{"blur_x"}, blur_y{"blur_y"},
            sharp{"sharp"};
        clamped(x, y) = BoundaryConditions::repeat_edge(input)(x, y);
        wide(x, y) = cast<int32_t>(clamped(x, y));
        blur_x(x, y) = taps5(wide(x - 2, y), wide(x - 1, y), wide(x, y), wide(x + 1, y),
                             wide(x + 2, y));
        blur_y(x, y) = taps5(blur_x(x, y - 2), blur_x(x, y - 1), blur_x(x, y),
                             blur_x(x, y + 1), blur_x(x, y + 2)) >> 8;
        sharp(x, y) = 2 * wide(x, y) - blur_y(x, y);
        output(x, y) = cast<uint8_t>(clamp(sharp(x, y), 0, 255));
        input.set_estimates({{0, kWidth}, {0, kHeight}});
        output.set_estimates({{0, kWidth}, {0, kHeight}});
        if (!using_autoscheduler()) {
            Var xi{"xi"}, yi{"yi"};
            output.tile(x, y, xi, yi, 64, 32).vectorize(xi, 16).parallel(y);
            blur_x.compute_at(output, x).vectorize(x, 16);
        }
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Median3x3, median3x3)
HALIDE_REGISTER_GENERATOR(Gaussian5x5, gaussian5x5)
HALIDE_REGISTER_GENERATOR(Unsharp, unsharp)
