// A generator that burns `spin_s` seconds of CPU while it builds its pipeline, for the
// farm's compile-timeout tests.
#include <chrono>

#include "Halide.h"

using namespace Halide;

namespace {

enum class Mode { Fast, Slow };

class Spin : public Generator<Spin> {
public:
    GeneratorParam<float> spin_s{"spin_s", 0.0f};
    GeneratorParam<Mode> mode{"mode", Mode::Fast, {{"fast", Mode::Fast}, {"slow", Mode::Slow}}};
    Input<Buffer<uint8_t, 1>> input{"input"};
    Output<Buffer<uint8_t, 1>> output{"output"};

    void generate() {
        volatile unsigned long sink = 0;
        auto until = std::chrono::steady_clock::now() +
                     std::chrono::duration<double>((float)spin_s);
        while (std::chrono::steady_clock::now() < until) {
            sink = sink + 1;
        }
        Var x("x");
        output(x) = input(x) + 1;
        input.set_estimates({{0, 1024}});
        output.set_estimates({{0, 1024}});
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Spin, spin)
