// A stand-in for the Hexagon host runtime's power calls: it logs each call, in order, on
// the harness's own stdout (the same stream as its samples). FARM_STANDIN_HVX_ON_FAILS=1
// makes powering HVX on fail.
#include <cstdlib>
#include <iostream>

extern "C" int halide_hexagon_set_performance_mode(void *, int mode) {
    std::cout << "HEXAGON set_performance_mode " << mode << std::endl;
    return 0;
}

extern "C" int halide_hexagon_power_hvx_on(void *) {
    std::cout << "HEXAGON power_hvx_on" << std::endl;
    return std::getenv("FARM_STANDIN_HVX_ON_FAILS") ? -1 : 0;
}

extern "C" int halide_hexagon_power_hvx_off(void *) {
    std::cout << "HEXAGON power_hvx_off" << std::endl;
    return 0;
}
