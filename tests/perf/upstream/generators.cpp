// C++ generators of two farm benchmarks (same algorithms and Funcs as benchmarks/*.py),
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

}  // namespace

HALIDE_REGISTER_GENERATOR(Median3x3, median3x3)
HALIDE_REGISTER_GENERATOR(Gaussian5x5, gaussian5x5)
