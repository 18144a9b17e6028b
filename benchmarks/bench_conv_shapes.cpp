// Every distinct convolution of ECO Lite and ECO Full (16 segments, one clip), under every
// algorithm that applies, with the reference kernel as the accuracy oracle; the algorithms that
// read and write channels-last run a second time that way ("_cl": activations in their layout
// outside the timing, as oneDNN's blocked run has them). Counters:
// GFLOP/s (direct-convolution equivalent: 2 per MAC), peak% (of the widest ISA's FMA peak on
// the same thread count) and rel_err (largest difference from the reference over the largest
// reference value). With oneDNN installed (Debian's libdnnl-dev, found at configure time), each
// shape also runs as oneDNN's convolution_auto twice: "onednn" with the memory formats it prefers
// (weights and activations reordered to them once, outside the timing), oneDNN's best case inside
// a network that stays in its blocked layout; and "onednn_plain" with plain NC(D)HW activations in
// and out, the contract our kernels work to (weights still in its preferred format, prepared once).
// The channels-last runs and oneDNN's keep their activations in huge pages, as a plan's arena does.
// On a CPU with AVX512-BF16, the channels-last runs of the algorithms with a bf16 form run in bf16
// too ("_cl_bf16", --precision bf16's kernels), and oneDNN in bf16 ("onednn_bf16": bf16
// activations and weights in its preferred formats, float sums, as OpenVINO's default runs
// convolutions on such a CPU; its activations take half the memory ours do). peak% stays
// relative to the float FMA peak, so bf16 can pass 100.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <unordered_map>

#include "eco/model.hpp"
#include "eco/random_weights.hpp"
#include "ops/conv/conv.hpp"
#include "ops/conv/conv_fast.hpp"
#include "ops/gemm/bf16.hpp"
#include "tensor/scratch.hpp"

#ifdef ECOCPU_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

using namespace ecocpu;

struct Shape5 {
  reference::ConvProblem p;
  std::string id;
  bool in_lite = false;  // ECO Lite has it too (ECO Full has every shape)
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
      const bool lite = std::string(arch) == "ECO";
      Shape5& shape = unique.emplace(key(p), Shape5{p, n.id, lite}).first->second;
      shape.in_lite = shape.in_lite || lite;
    }
  }
  std::vector<Shape5> out;
  for (auto& [k, s] : unique) out.push_back(s);
  return out;
}

double g_peak_gflops = 0;

// A shape's random input, weights (small, so that outputs stay moderate) and bias, its output
// buffer and the reference kernel's output.
struct ConvData {
  Tensor in, w, b, out, ref;
  explicit ConvData(const reference::ConvProblem& p) {
    const int64_t in_n = p.batch * p.in_channels * p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
    const int64_t out_n = p.batch * p.out_channels * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
    const int64_t w_n = p.out_channels * p.in_channels * p.window.volume();
    in = random_input(Shape{in_n}, 1);
    w = random_input(Shape{w_n}, 2);
    b = random_input(Shape{p.out_channels}, 3);
    for (int64_t i = 0; i < w_n; ++i) w.data()[i] *= 1e-3f;
    out = Tensor(Shape{out_n});
    ref = Tensor(Shape{out_n});
    reference::conv(p, in.data(), w.data(), b.data(), ref.data());
  }
};

// GFLOP/s, peak% and rel_err of `out` against the reference output `ref`.
void set_counters(benchmark::State& state, const Shape5& shape, const Tensor& out, const Tensor& ref) {
  const auto& p = shape.p;
  float diff = 0, scale = 0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    diff = std::max(diff, std::abs(out.data()[i] - ref.data()[i]));
    scale = std::max(scale, std::abs(ref.data()[i]));
  }
  const double flops = 2.0 * static_cast<double>(out.numel()) * static_cast<double>(p.in_channels * p.window.volume());
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["peak%"] = benchmark::Counter(flops / g_peak_gflops * 1e-9 * 100.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rel_err"] = diff / scale;
  state.SetLabel(shape.id + " " + key(p) + (shape.in_lite ? " lite" : ""));
}

void bench_conv(benchmark::State& state, Shape5 shape, fast::ConvAlgo algo) {
  const auto& p = shape.p;
  ConvData d(p);
  const fast::PreparedConv conv = fast::prepare_conv(p, algo, d.w.data());
  fast::ConvEpilogue e;
  e.bias = d.b.data();
  for (auto _ : state) {
    fast::run_conv(conv, d.in.data(), e, d.out.data());
    benchmark::DoNotOptimize(d.out.data());
  }
  set_counters(state, shape, d.out, d.ref);
  if (algo == fast::choose_conv_algo(p)) state.SetLabel(shape.id + " " + key(p) + (shape.in_lite ? " lite" : "") + " chosen");
}

// An algorithm that reads and writes channels-last, with both copies made outside the timing:
// its input in the padded layout it works from, its output unpadded. This is the same contract
// as oneDNN's blocked run (activations already in the kernel's layout), as between two such
// convolutions in a network that hands its activations over channels-last. Winograd on the
// input's phases reads planes only (a network's first convolution): its copy of the phases is
// inside the timing, more work than the contract asks.
void bench_conv_channels_last(benchmark::State& state, Shape5 shape, fast::ConvAlgo algo, fast::Precision precision) {
  const auto& p = shape.p;
  ConvData d(p);
  const fast::PreparedConv conv = fast::prepare_conv(p, algo, d.w.data(), nullptr, precision);
  if (conv.precision != precision) return state.SkipWithError("no bf16 form for this layer on this CPU");
  const bool reads_planes = !fast::takes_channels_last(conv);
  const fast::PaddedInput in_layout = reads_planes ? fast::unpadded_channels_last(p.in_extent, p.in_channels)
                                                   : fast::input_layout(conv);
  const fast::PaddedInput out_layout = fast::unpadded_channels_last(p.out_extent, p.out_channels);
  // In memory like the plan's activation arena: huge pages where large, 64-byte aligned either way
  // (a vector's 16-byte alignment splits every channels-last store across two cache lines).
  const std::shared_ptr<float> in_memory = shared_floats(p.batch * in_layout.floats(), Pages::huge);
  const std::shared_ptr<float> out_memory = shared_floats(p.batch * out_layout.floats(), Pages::huge);
  Tensor in = Tensor::view(in_memory.get(), Shape{p.batch * in_layout.floats()});
  Tensor out = Tensor::view(out_memory.get(), Shape{p.batch * out_layout.floats()});
  if (reads_planes) {
    std::copy_n(d.in.data(), d.in.numel(), in.data());
  } else {
    fast::to_channels_last(p, in_layout, d.in.data(), in.data());
  }
  fast::ConvEpilogue e;
  e.bias = d.b.data();
  e.channels_last_out = &out_layout;
  for (auto _ : state) {
    fast::run_conv(conv, in.data(), e, out.data(), !reads_planes);
    benchmark::DoNotOptimize(out.data());
  }
  const int64_t volume = p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t c = 0; c < p.out_channels; ++c)
      for (int64_t v = 0; v < volume; ++v) {
        d.out.data()[(n * p.out_channels + c) * volume + v] = out.data()[n * out_layout.floats() + v * p.out_channels + c];
      }
  set_counters(state, shape, d.out, d.ref);
}

#ifdef ECOCPU_HAVE_ONEDNN
dnnl::memory::dims dims_of(bool volumetric, int64_t n, int64_t c, const std::array<int64_t, 3>& extent) {
  if (volumetric) return {n, c, extent[0], extent[1], extent[2]};
  return {n, c, extent[1], extent[2]};
}

dnnl::memory::dims spatial(bool volumetric, const std::array<int64_t, 3>& v) {
  if (volumetric) return {v[0], v[1], v[2]};
  return {v[1], v[2]};
}

enum class OnednnRun { blocked, plain, bf16 };

void bench_onednn(benchmark::State& state, Shape5 shape, OnednnRun run) {
  using namespace dnnl;
  const auto& p = shape.p;
  const bool vol = p.window.kernel[0] != 1 || p.in_extent[0] != 1;
  const bool plain_activations = run == OnednnRun::plain;
  const auto f32 = memory::data_type::f32;
  const auto operands = run == OnednnRun::bf16 ? memory::data_type::bf16 : f32;
  const auto plain = vol ? memory::format_tag::ncdhw : memory::format_tag::nchw;
  const auto plain_w = vol ? memory::format_tag::oidhw : memory::format_tag::oihw;
  const memory::dims src_dims = dims_of(vol, p.batch, p.in_channels, p.in_extent);
  const memory::dims dst_dims = dims_of(vol, p.batch, p.out_channels, p.out_extent);
  memory::dims w_dims{p.out_channels, p.in_channels};
  for (auto k : spatial(vol, p.window.kernel)) w_dims.push_back(k);
  std::array<int64_t, 3> pad_r{};
  for (int a = 0; a < 3; ++a) {
    pad_r[a] = (p.out_extent[a] - 1) * p.window.stride[a] + p.window.kernel[a] - p.in_extent[a] - p.window.pad[a];
  }
  const auto any = memory::format_tag::any;
  const auto activations = plain_activations ? plain : any;
  const memory::desc src_md(src_dims, operands, activations), w_md(w_dims, operands, any),
      b_md({p.out_channels}, f32, memory::format_tag::x), dst_md(dst_dims, operands, activations);
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const convolution_forward::desc desc(prop_kind::forward_inference, algorithm::convolution_auto, src_md, w_md, b_md,
                                       dst_md, spatial(vol, p.window.stride), spatial(vol, p.window.pad),
                                       spatial(vol, pad_r));
  const convolution_forward::primitive_desc pd(desc, eng);

  ConvData d(p);

  memory src_plain({src_dims, f32, plain}, eng, d.in.data()), w_plain({w_dims, f32, plain_w}, eng, d.w.data());
  memory dst_plain({dst_dims, f32, plain}, eng, d.out.data());
  memory bias({{p.out_channels}, f32, memory::format_tag::x}, eng, d.b.data());
  // Its activations in the same memory as ours (huge pages), like for like.
  const auto activation_memory = [](const memory::desc& md) { return shared_floats((md.get_size() + 3) / 4, Pages::huge); };
  const std::shared_ptr<float> src_memory = activation_memory(pd.src_desc()), dst_memory = activation_memory(pd.dst_desc());
  memory src(pd.src_desc(), eng, src_memory.get()), weights(pd.weights_desc(), eng), dst(pd.dst_desc(), eng, dst_memory.get());
  reorder(src_plain, src).execute(strm, src_plain, src);
  reorder(w_plain, weights).execute(strm, w_plain, weights);
  const convolution_forward conv(pd);
  const std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}};
  for (auto _ : state) {
    conv.execute(strm, args);
    strm.wait();
  }
  reorder(dst, dst_plain).execute(strm, dst, dst_plain);
  strm.wait();
  set_counters(state, shape, d.out, d.ref);
  state.SetLabel(shape.id + " " + key(p) + " " + pd.impl_info_str());
}
#endif

}  // namespace

int main(int argc, char** argv) {
  g_peak_gflops = measure_fma_peak(selected_gemm_kernel(), omp_get_max_threads());
  for (const auto& s : eco_conv_shapes()) {
    std::vector<fast::ConvAlgo> algos{fast::ConvAlgo::Im2colGemm, fast::ConvAlgo::TapGemm};
    if (fast::choose_conv_algo(s.p) == fast::ConvAlgo::Direct1x1Gemm) algos.push_back(fast::ConvAlgo::Direct1x1Gemm);
    if (fast::winograd_applies(s.p)) algos.push_back(fast::ConvAlgo::Winograd);
    if (fast::phase_winograd_applies(s.p)) algos.push_back(fast::ConvAlgo::PhaseWinograd);
    for (auto algo : algos) {
      benchmark::RegisterBenchmark((s.id + "/" + fast::conv_algo_name(algo)).c_str(), bench_conv, s, algo)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
      fast::PreparedConv form;
      form.algo = algo;
      const bool phases = algo == fast::ConvAlgo::PhaseWinograd;  // planes in, channels-last out
      if (!(fast::takes_channels_last(form) || phases) || !fast::writes_channels_last(form)) continue;
      benchmark::RegisterBenchmark((s.id + "/" + fast::conv_algo_name(algo) + "_cl").c_str(), bench_conv_channels_last,
                                   s, algo, fast::Precision::fp32)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
      if (!bf16_gemm_kernel() || algo == fast::ConvAlgo::Im2colGemm || phases) continue;
      benchmark::RegisterBenchmark((s.id + "/" + fast::conv_algo_name(algo) + "_cl_bf16").c_str(),
                                   bench_conv_channels_last, s, algo, fast::Precision::bf16)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
    }
#ifdef ECOCPU_HAVE_ONEDNN
    const std::pair<OnednnRun, const char*> runs[] = {
        {OnednnRun::blocked, "/onednn"}, {OnednnRun::plain, "/onednn_plain"}, {OnednnRun::bf16, "/onednn_bf16"}};
    for (const auto& [run, name] : runs) {
      if (run == OnednnRun::bf16 && !bf16_gemm_kernel()) continue;
      benchmark::RegisterBenchmark((s.id + name).c_str(), bench_onednn, s, run)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
#endif
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  std::printf("FMA peak (%s, %d threads): %.1f GFLOP/s\n", selected_gemm_kernel().name.c_str(),
              omp_get_max_threads(), g_peak_gflops);
  return 0;
}
