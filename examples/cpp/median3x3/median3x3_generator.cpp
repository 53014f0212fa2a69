// 3x3 median of a uint8 image: the mid of row minima, mids and maxima (C++ twin of the
// built-in median3x3, in the layout of Halide's apps/hexagon_benchmarks).
//
// The same stages as benchmarks/median3x3.py, so both have the same pipeline features.
// Estimates are set always; the manual schedule applies when no autoscheduler runs.
#include "Halide.h"

using namespace Halide;

namespace {

Expr mid3(Expr a, Expr b, Expr c) {
    return max(min(a, b), min(max(a, b), c));
}

class Median3x3 : public Generator<Median3x3> {
public:
    Input<Buffer<uint8_t, 2>> input{"input"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        bounded_input(x, y) = BoundaryConditions::repeat_edge(input)(x, y);
        Expr left = bounded_input(x - 1, y), center = bounded_input(x, y),
             right = bounded_input(x + 1, y);
        row_lo(x, y) = min(min(left, center), right);
        row_hi(x, y) = max(max(left, center), right);
        row_md(x, y) = mid3(left, center, right);
        Expr max_of_lo = max(max(row_lo(x, y - 1), row_lo(x, y)), row_lo(x, y + 1));
        Expr min_of_hi = min(min(row_hi(x, y - 1), row_hi(x, y)), row_hi(x, y + 1));
        Expr mid_of_md = mid3(row_md(x, y - 1), row_md(x, y), row_md(x, y + 1));
        output(x, y) = mid3(max_of_lo, mid_of_md, min_of_hi);

        input.set_estimates({{0, 1536}, {0, 2560}});
        output.set_estimates({{0, 1536}, {0, 2560}});
    }

    void schedule() {
        if (using_autoscheduler()) {
            return;
        }
        if (get_target().has_feature(Target::HVX)) {
            const int vector_size = 128;
            Var xi{"xi"}, yi{"yi"}, yo{"yo"};
            input.dim(1).set_stride((input.dim(1).stride() / vector_size) * vector_size);
            output.dim(1).set_stride((output.dim(1).stride() / vector_size) * vector_size);
            bounded_input.compute_at(Func(output), y)
                .align_storage(x, vector_size)
                .vectorize(x, vector_size, TailStrategy::RoundUp);
            output.hexagon()
                .tile(x, y, xi, yi, vector_size, 4, TailStrategy::RoundUp)
                .vectorize(xi)
                .unroll(yi);
            output.prefetch(input, y, y, 2);
            output.split(y, yo, y, 128).parallel(yo);
        } else {
            output.vectorize(x, natural_vector_size<uint8_t>()).parallel(y, 16);
        }
    }

private:
    Var x{"x"}, y{"y"};
    Func bounded_input{"bounded_input"};
    Func row_lo{"row_lo"}, row_md{"row_md"}, row_hi{"row_hi"};
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Median3x3, median3x3)
