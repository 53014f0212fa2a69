// 3x3 convolution of a uint8 image with an int8 mask, >> 4 and clamped: one generator
// whose accumulator type is a generator parameter, as in Halide's apps/hexagon_benchmarks
// (conv3x3:accumulator_type=int16 and =int32 are two pipelines, the built-in
// conv3x3a16 and conv3x3a32).
//
// The same stages as benchmarks/conv3x3.py. Estimates are set always; the manual
// schedule applies when no autoscheduler runs.
#include "Halide.h"

using namespace Halide;

namespace {

class Conv3x3 : public Generator<Conv3x3> {
public:
    GeneratorParam<Type> accumulator_type{"accumulator_type", Int(16)};
    Input<Buffer<uint8_t, 2>> input{"input"};
    Input<Buffer<int8_t, 2>> mask{"mask"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        bounded_input(x, y) = BoundaryConditions::repeat_edge(input)(x, y);
        Expr acc = cast(accumulator_type, 0);
        for (int dy = 0; dy < 3; dy++) {
            for (int dx = 0; dx < 3; dx++) {
                acc = acc + cast(accumulator_type, bounded_input(x + dx - 1, y + dy - 1)) *
                                cast(accumulator_type, mask(dx, dy));
            }
        }
        output(x, y) = cast<uint8_t>(clamp(acc >> 4, 0, 255));

        input.set_estimates({{0, 1536}, {0, 2560}});
        mask.set_estimates({{0, 3}, {0, 3}});
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
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv3x3, conv3x3)
