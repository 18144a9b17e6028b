// SGEMM against the machine's FMA peak, Eigen and (when built with it) OpenBLAS, in one binary.
// Counters: GFLOP/s (2 per multiply-add) and percent of the peak measured by bench_fma_peak for
// the same thread count.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <Eigen/Dense>
#include <chrono>
#include <cmath>

#include "eco/random_weights.hpp"
#include "ops/gemm/gemm.hpp"
#ifdef ECOCPU_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using namespace ecocpu;
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

double g_peak_gflops[3] = {0, 0, 0};  // by thread count, of the widest ISA

struct Operands {
  Tensor a, b, c;
  explicit Operands(int64_t n) : a(random_input(Shape{n, n}, 1)), b(random_input(Shape{n, n}, 2)), c(Shape{n, n}) {}
};

void report(benchmark::State& state, int64_t n, int threads) {
  const double flops = 2.0 * std::pow(static_cast<double>(n), 3);
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  if (g_peak_gflops[threads] > 0) {
    state.counters["peak%"] = benchmark::Counter(flops / g_peak_gflops[threads] * 1e-9 * 100.0,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  }
}

void bench_ecocpu(benchmark::State& state, std::size_t kernel_index) {
  const auto& kernels = available_gemm_kernels();
  if (kernel_index >= kernels.size()) {
    state.SkipWithError("ISA not available on this CPU");
    return;
  }
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  omp_set_num_threads(threads);
  Operands o(n);
  for (auto _ : state) {
    kernels[kernel_index].run({n, n, n, o.a.data(), n, o.b.data(), n, o.c.data(), n}, {});
    benchmark::DoNotOptimize(o.c.data());
  }
  state.SetLabel(kernels[kernel_index].name);
  report(state, n, threads);
}

void bench_eigen(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  Eigen::setNbThreads(threads);
  Operands o(n);
  Eigen::Map<Matrix> a(o.a.data(), n, n), b(o.b.data(), n, n), c(o.c.data(), n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(o.c.data());
  }
  report(state, n, threads);
}

#ifdef ECOCPU_HAVE_OPENBLAS
void bench_openblas(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  openblas_set_num_threads(threads);
  Operands o(n);
  const auto ni = static_cast<int>(n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, o.a.data(), ni, o.b.data(), ni, 0.0f, o.c.data(), ni);
    benchmark::DoNotOptimize(o.c.data());
  }
  report(state, n, threads);
}
#endif

void args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int n : {256, 1024, 2048}) b->Args({n, threads});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  // Measure the peak first so every GEMM row can report a percentage of it.
  const auto& kernels = available_gemm_kernels();
  for (int threads : {1, 2}) g_peak_gflops[threads] = measure_fma_peak(kernels.front(), threads);
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    benchmark::RegisterBenchmark(("ecocpu/" + kernels[i].name).c_str(), bench_ecocpu, i)->Apply(args);
  }
  benchmark::RegisterBenchmark("eigen", bench_eigen)->Apply(args);
#ifdef ECOCPU_HAVE_OPENBLAS
  benchmark::RegisterBenchmark("openblas", bench_openblas)->Apply(args);
#endif
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  for (const auto& k : kernels) {
    std::printf("FMA peak of %s: %.1f GFLOP/s on 1 thread, %.1f on 2\n", k.name.c_str(),
                measure_fma_peak(k, 1), measure_fma_peak(k, 2));
  }
  return 0;
}
