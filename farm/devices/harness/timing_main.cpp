// Halide farm timing harness.
//
// Links against one pipeline compiled with the fixed function name
// `farm_pipeline` and reuses Halide's RunGen.h to build inputs from the
// pipeline's estimates (exactly as `RunGenMain --estimate_all` does). Unlike
// RunGenMain, which prints only its best case, it prints every sample, so
// the farm can store all repeats and judge their spread.
//
// Output protocol (one item per line on stdout):
//   FARM_SAMPLE_MS <milliseconds per iteration>   (once per sample)
//
// Each sample loops the pipeline for at least --min_sample_ms; the best of many
// samples spread over a few tenths of a second is what stays stable on a noisy host.
//   FARM_ITERATIONS <iterations per sample>
//   FARM_DONE
#include "RunGen.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#ifdef FARM_HEXAGON
#include "HalideRuntimeHexagonHost.h"
#endif

extern "C" int farm_pipeline_argv(void **args);
extern "C" const struct halide_filter_metadata_t *farm_pipeline_metadata();

namespace {

void log_cout(const std::string &s) { std::cout << s; }
void log_cerr(const std::string &s) { std::cerr << s; }
void log_none(const std::string &) {}
void log_warn(const std::string &s) { std::cerr << "Warning: " << s; }
void log_fail(const std::string &s) {
    std::cerr << s << "\n";
    std::cerr.flush();
    std::exit(3);
}

double now_seconds() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

double flag_value(int argc, char **argv, const char *name, double fallback) {
    const size_t n = std::strlen(name);
    for (int i = 1; i < argc; i++) {
        if (std::strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') {
            return std::atof(argv[i] + n + 1);
        }
    }
    return fallback;
}

#ifdef FARM_HEXAGON
// As Halide's apps/hexagon_benchmarks/process.cpp does (and Halide issue 4571 explains):
// time with the DSP in turbo and HVX powered on once, not per call, and restore both
// afterwards. An atexit handler restores them on every exit, a failed run's included.
void hexagon_restore() {
    halide_hexagon_power_hvx_off(nullptr);
    halide_hexagon_set_performance_mode(nullptr, halide_hexagon_power_default);
}

void hexagon_prepare() {
    std::atexit(hexagon_restore);
    int mode = halide_hexagon_set_performance_mode(nullptr, halide_hexagon_power_turbo);
    int power = halide_hexagon_power_hvx_on(nullptr);
    if (mode != 0 || power != 0) {
        std::cerr << "could not put the DSP in turbo with HVX on (errors " << mode << ", "
                  << power << ")\n";
        std::exit(5);
    }
}
#endif

}  // namespace

namespace Halide {
namespace RunGen {
Logger log() {
    return {log_cout, log_none, log_warn, log_fail};
}
}  // namespace RunGen
}  // namespace Halide

int main(int argc, char **argv) {
    using namespace Halide::RunGen;
    const int samples = (int)flag_value(argc, argv, "--samples", 10);
    const double min_sample_s = flag_value(argc, argv, "--min_sample_ms", 20) / 1000.0;
    const double warmup_s = flag_value(argc, argv, "--warmup_ms", 30) / 1000.0;
    // A very slow schedule stops early (after 3 samples at least) once this much is spent.
    const double max_total_s = flag_value(argc, argv, "--max_total_ms", 2000) / 1000.0;
    // So does one clearly slower than this (the driver passes a multiple of the best so far):
    // a loser needs ranking, not precision.
    const double cutoff_ms = flag_value(argc, argv, "--cutoff_ms", 0);
    if (samples < 1) {
        std::cerr << "--samples must be at least 1\n";
        return 2;
    }

    RunGen r(farm_pipeline_argv, farm_pipeline_metadata());
    r.set_quiet(true);
    std::set<std::string> seen;
    // Same as RunGenMain's --estimate_all: random inputs sized by the estimates.
    r.validate(seen, "random:0:estimate_then_auto", "estimate", true);
    r.load_inputs("estimate");
    std::vector<Shape> shapes = r.run_bounds_query();
    r.adapt_input_buffers(shapes);
    r.allocate_output_buffers(shapes);

    std::vector<void *> filter_argv = r.build_filter_argv();
    auto run_once = [&]() {
        int result = farm_pipeline_argv(filter_argv.data());
        if (result != 0) {
            std::cerr << "pipeline returned error " << result << "\n";
            std::exit(4);
        }
    };

#ifdef FARM_HEXAGON
    hexagon_prepare();
#endif
    // Warm up (page in buffers, spin up the thread pool) and size a sample so
    // that one sample lasts at least min_sample_s.
    double t0 = now_seconds();
    int warm = 0;
    double one = 0;
    do {
        double s = now_seconds();
        run_once();
        one = now_seconds() - s;
        warm++;
    } while (now_seconds() - t0 < warmup_s);
    int iterations = 1;
    if (one > 0 && one < min_sample_s) {
        iterations = (int)(min_sample_s / one) + 1;
    }

    std::cout << "FARM_ITERATIONS " << iterations << "\n";
    std::cout << std::setprecision(9);
    const double sampling_start = now_seconds();
    double best_ms = 1e300;
    for (int i = 0; i < samples; i++) {
        if (i >= 3 && (now_seconds() - sampling_start > max_total_s ||
                       (cutoff_ms > 0 && best_ms > cutoff_ms))) {
            break;
        }
        double s = now_seconds();
        for (int k = 0; k < iterations; k++) {
            run_once();
        }
        double per_iter = (now_seconds() - s) / iterations;
        best_ms = std::min(best_ms, per_iter * 1000.0);
        std::cout << "FARM_SAMPLE_MS " << per_iter * 1000.0 << "\n";
    }
    std::cout << "FARM_DONE" << std::endl;
    return 0;
}
