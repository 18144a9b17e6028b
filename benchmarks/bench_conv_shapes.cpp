// Every distinct convolution of ECO Lite and ECO Full (16 segments, one clip), under every
// algorithm that applies, with the reference kernel as the accuracy oracle. Counters:
// GFLOP/s (direct-convolution equivalent: 2 per MAC), peak% (of the widest ISA's FMA peak on
// the same thread count) and rel_err (largest difference from the reference over the largest
// reference value).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <map>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "ops/conv/conv.hpp"
#include "ops/conv/conv_fast.hpp"

namespace {

using namespace ecocpu;

struct Shape5 {
  reference::ConvProblem p;
  std::string id;
};

// "16x3>64 1x224x224 k7x7 s2 p3": batch x in > out channels, input extent, window.
std::string key(const reference::ConvProblem& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lldx%lld>%lld %lldx%lldx%lld ", static_cast<long long>(p.batch),
                static_cast<long long>(p.in_channels), static_cast<long long>(p.out_channels),
                static_cast<long long>(p.in_extent[0]), static_cast<long long>(p.in_extent[1]),
                static_cast<long long>(p.in_extent[2]));
  return buf + p.window.describe();
}

std::vector<Shape5> eco_conv_shapes() {
  std::map<std::string, Shape5> unique;
  for (const char* arch : {"ECO", "ECOfull"}) {
    ModelConfig c;
    c.arch = arch;
    c.segments = 16;
    Graph g = build_model(c);
    for (const auto& n : g.nodes) {
      if (n.op->kind() != OpKind::Conv) continue;
      const auto& conv = static_cast<const Conv&>(*n.op);
      const reference::ConvProblem p = conv.problem(g.values[n.inputs[0]].shape, g.values[n.output].shape);
      unique.emplace(key(p), Shape5{p, n.id});
    }
  }
  std::vector<Shape5> out;
  for (auto& [k, s] : unique) out.push_back(s);
  return out;
}

double g_peak_gflops = 0;

void bench_conv(benchmark::State& state, Shape5 shape, fast::ConvAlgo algo) {
  const auto& p = shape.p;
  const int64_t in_n = p.batch * p.in_channels * p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_n = p.batch * p.out_channels * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  const int64_t w_n = p.out_channels * p.in_channels * p.window.volume();
  Tensor in = random_input(Shape{in_n}, 1), w = random_input(Shape{w_n}, 2), b = random_input(Shape{p.out_channels}, 3);
  for (int64_t i = 0; i < w_n; ++i) w.data()[i] *= 1e-3f;
  Tensor out(Shape{out_n}), ref(Shape{out_n});
  reference::conv(p, in.data(), w.data(), b.data(), ref.data());
  const fast::PreparedConv conv = fast::prepare_conv(p, algo, w.data());
  fast::ConvEpilogue e;
  e.bias = b.data();
  for (auto _ : state) {
    fast::run_conv(conv, in.data(), e, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  float diff = 0, scale = 0;
  for (int64_t i = 0; i < out_n; ++i) {
    diff = std::max(diff, std::abs(out.data()[i] - ref.data()[i]));
    scale = std::max(scale, std::abs(ref.data()[i]));
  }
  const double flops = 2.0 * static_cast<double>(out_n / p.out_channels) * static_cast<double>(p.out_channels) *
                       static_cast<double>(p.in_channels * p.window.volume());
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["peak%"] = benchmark::Counter(flops / g_peak_gflops * 1e-9 * 100.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rel_err"] = diff / scale;
  state.SetLabel(shape.id + " " + key(p));
}

}  // namespace

int main(int argc, char** argv) {
  g_peak_gflops = measure_fma_peak(selected_gemm_kernel(), omp_get_max_threads());
  for (const auto& s : eco_conv_shapes()) {
    std::vector<fast::ConvAlgo> algos{fast::ConvAlgo::Im2colGemm};
    if (fast::choose_conv_algo(s.p) == fast::ConvAlgo::Direct1x1Gemm) algos.push_back(fast::ConvAlgo::Direct1x1Gemm);
    if (fast::winograd_applies(s.p)) algos.push_back(fast::ConvAlgo::Winograd);
    for (auto algo : algos) {
      benchmark::RegisterBenchmark((s.id + "/" + fast::conv_algo_name(algo)).c_str(), bench_conv, s, algo)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  std::printf("FMA peak (%s, %d threads): %.1f GFLOP/s\n", selected_gemm_kernel().name.c_str(),
              omp_get_max_threads(), g_peak_gflops);
  return 0;
}
