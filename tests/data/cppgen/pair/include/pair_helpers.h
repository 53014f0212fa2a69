// Included from a subfolder: C++ headers of subfolders travel with the generator.
#pragma once
#include "Halide.h"

inline Halide::Expr scaled(Halide::Expr v, int numerator, int denominator) {
    using namespace Halide;
    return cast<uint8_t>(min(cast<uint16_t>(v) * numerator / denominator, 255));
}
