// Two generators in one file (brighten, darken), for the farm's tests.
#include "Halide.h"
#include "include/pair_helpers.h"

using namespace Halide;

namespace {

class Brighten : public Generator<Brighten> {
public:
    GeneratorParam<int> tile{"tile", 16};
    GeneratorParam<bool> twice{"twice", false};
    Input<Buffer<uint8_t, 2>> input{"input"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        Var x("x"), y("y");
        Func once("once");
        once(x, y) = scaled(input(x, y), 3, 2);
        output(x, y) = twice ? scaled(once(x, y), 3, 2) : once(x, y);
        input.set_estimates({{0, 1024}, {0, 1024}});
        output.set_estimates({{0, 1024}, {0, 1024}});
        if (!using_autoscheduler()) {
            output.vectorize(x, 16).parallel(y, (int)tile);
        }
    }
};

class Darken : public Generator<Darken> {
public:
    Input<Buffer<uint8_t, 2>> input{"input"};
    Output<Buffer<uint8_t, 2>> output{"output"};

    void generate() {
        Var x("x"), y("y");
        output(x, y) = scaled(input(x, y), 1, 2);
        input.set_estimates({{0, 1024}, {0, 1024}});
        output.set_estimates({{0, 1024}, {0, 1024}});
        if (!using_autoscheduler()) {
            output.vectorize(x, 16).parallel(y, 16);
        }
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Brighten, brighten)
HALIDE_REGISTER_GENERATOR(Darken, darken)
