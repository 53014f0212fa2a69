// A user's own random pipeline generator, in C++: `seed` draws a chain of `stages` image
// stages (stencils, separable blurs, pointwise maps, joins, down/up-sampling, row sums).
// `farm pretrain --generator tests/perf/pipelines/seeded_chain` draws pipelines from it.
#include "Halide.h"

#include <random>
#include <vector>

using namespace Halide;

namespace {

class SeededChain : public Generator<SeededChain> {
public:
    GeneratorParam<int> seed{"seed", 0};
    GeneratorParam<int> stages{"stages", 6, 1, 32};
    GeneratorParam<int> size{"size", 512};
    Input<Buffer<float, 2>> input{"input"};
    Output<Buffer<float, 2>> output{"output"};

    void generate() {
        std::mt19937 draw((unsigned)(int)seed);
        Var x("x"), y("y");
        std::vector<Func> chain;
        Func first("in_clamped");
        first(x, y) = BoundaryConditions::repeat_edge(input)(x, y);
        chain.push_back(first);
        for (int i = 0; i < (int)stages; i++) {
            Func prev = chain.back();
            Func f("stage_" + std::to_string(i));
            switch (draw() % 6) {
            case 0: {  // a k x k box stencil, k in 3, 5
                int r = 1 + (int)(draw() % 2);
                RDom k(-r, 2 * r + 1, -r, 2 * r + 1);
                f(x, y) = sum(prev(x + k.x, y + k.y)) / float((2 * r + 1) * (2 * r + 1));
                break;
            }
            case 1: {  // a separable 5-tap blur
                Func row("row_" + std::to_string(i));
                row(x, y) = (prev(x - 2, y) + 4 * prev(x - 1, y) + 6 * prev(x, y) +
                             4 * prev(x + 1, y) + prev(x + 2, y)) / 16.0f;
                f(x, y) = (row(x, y - 2) + 4 * row(x, y - 1) + 6 * row(x, y) +
                           4 * row(x, y + 1) + row(x, y + 2)) / 16.0f;
                break;
            }
            case 2: {  // a pointwise map and an activation
                float a = 0.5f + (draw() % 100) / 100.0f;
                f(x, y) = max(prev(x, y) * a - 0.1f, 0.0f);
                break;
            }
            case 3: {  // a join with an earlier stage
                Func other = chain[draw() % chain.size()];
                f(x, y) = (prev(x, y) + other(x, y)) * 0.5f;
                break;
            }
            case 4: {  // down- then up-sampling by 2
                Func down("down_" + std::to_string(i));
                down(x, y) = (prev(2 * x, 2 * y) + prev(2 * x + 1, 2 * y) +
                              prev(2 * x, 2 * y + 1) + prev(2 * x + 1, 2 * y + 1)) * 0.25f;
                f(x, y) = down(x / 2, y / 2);
                break;
            }
            default: {  // a running sum over 8 pixels of a row
                RDom r(0, 8);
                f(x, y) = 0.0f;
                f(x, y) += prev(x + r, y) * 0.125f;
                break;
            }
            }
            chain.push_back(f);
        }
        output(x, y) = chain.back()(x, y);
        input.set_estimates({{0, (int)size}, {0, (int)size}});
        output.set_estimates({{0, (int)size}, {0, (int)size}});
        if (!using_autoscheduler()) {
            for (size_t i = 1; i < chain.size(); i++) {
                chain[i].compute_root().vectorize(x, 8).parallel(y);
            }
            output.vectorize(x, 8).parallel(y);
        }
    }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(SeededChain, seeded_chain)
