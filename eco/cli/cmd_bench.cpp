// ecocpu bench: forward-pass latency, peak memory and a per-layer table.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>

#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/api/loading.hpp"
#include "eco/random_weights.hpp"
#include "eco/report.hpp"
#include "graph/plan.hpp"
#include "tensor/scratch.hpp"

namespace ecocpu::cli {

namespace {

double peak_rss_mb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Direct-convolution-equivalent work of a step: 2 per MAC of every node it runs.
double step_flops(const Graph& g, const PlanStep& s) {
  double flops = 0;
  for (int n : s.nodes()) flops += 2.0 * static_cast<double>(g.nodes[n].cost.macs);
  return flops;
}

struct Timings {
  std::vector<double> latency_ms;            // per timed run
  std::vector<std::vector<double>> step_ms;  // per step, per timed run
  double median_ms = 0, min_ms = 0, max_ms = 0;
};

Timings time_plan(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input,
                  int64_t warmup, int64_t iters) {
  using Clock = std::chrono::steady_clock;
  Timings t;
  t.step_ms.resize(plan.steps.size());
  for (int64_t it = 0; it < warmup + iters; ++it) {
    const bool timed = it >= warmup;
    auto start = Clock::now(), previous = start;
    run_plan(plan, weights, input, [&](int step, const Tensor&) {
      auto now = Clock::now();
      if (timed) t.step_ms[step].push_back(std::chrono::duration<double, std::milli>(now - previous).count());
      previous = now;
    });
    if (timed) t.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  t.median_ms = median(t.latency_ms);
  t.min_ms = *std::min_element(t.latency_ms.begin(), t.latency_ms.end());
  t.max_ms = *std::max_element(t.latency_ms.begin(), t.latency_ms.end());
  return t;
}

struct StepRow {
  std::string id, algo, layouts;
  double ms, gflops;
};

std::vector<StepRow> step_rows(const Graph& g, const ExecutionPlan& plan, const Timings& t) {
  std::vector<StepRow> rows;
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const double ms = median(t.step_ms[i]);
    rows.push_back({plan.steps[i].label(g), plan.steps[i].algo_name(g), plan.layouts(plan.steps[i]), ms,
                    ms > 0 ? step_flops(g, plan.steps[i]) / ms * 1e-6 : 0.0});
  }
  return rows;
}

// bf16's error: the bf16 plan's logits beside a float plan's (the same weights, loaded again: the
// bf16 plan released them) on seeded random clips.
struct Agreement {
  int clips = 0, top1_same = 0, top5_same = 0;
  double max_relative = 0;  // max |bf16 - fp32| / max |fp32| over the clips

  std::string json() const {
    return "{\"clips\": " + std::to_string(clips) + ", \"max_relative_logit_difference\": " + json_number(max_relative) +
           ", \"top1_same\": " + std::to_string(top1_same) + ", \"top5_same\": " + std::to_string(top5_same) + "}";
  }
  std::string text() const {
    char line[256];
    std::snprintf(line, sizeof line,
                  "bf16 against fp32 on %d seeded random clips: max |logit difference| / max |logit| %.2e, "
                  "same top-1 %d/%d, same top-5 set %d/%d\n",
                  clips, max_relative, top1_same, clips, top5_same, clips);
    return line;
  }
};

// Peak RSS and what the plan holds of it, MB: its prepared weights, its arena (activations and
// each step's scratch) and the largest step's scratch. Read before bf16's float comparison plan
// exists.
struct Memory {
  double rss_mb, scratch_mb, weights_mb, arena_mb;
};

std::string bench_json(const LoadedModel& m, const std::string& engine, const std::string& precision,
                       const Memory& memory, double prepare_ms, const Timings& t, const std::vector<StepRow>& rows,
                       const std::optional<Agreement>& agreement) {
  std::ostringstream out;
  out << "{\"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
      << ", \"threads\": " << omp_get_max_threads() << ", \"engine\": \"" << engine
      << "\", \"precision\": \"" << precision << "\", \"gemm\": " << json_quote(selected_gemm_kernel().name)
      << ", \"latency_ms\": {\"median\": "
      << json_number(t.median_ms) << ", \"min\": " << json_number(t.min_ms) << ", \"max\": " << json_number(t.max_ms)
      << "}, \"peak_rss_mb\": " << json_number(memory.rss_mb)
      << ", \"scratch_mb\": " << json_number(memory.scratch_mb)
      << ", \"weights_mb\": " << json_number(memory.weights_mb) << ", \"arena_mb\": " << json_number(memory.arena_mb)
      << ", \"prepare_ms\": " << json_number(prepare_ms);
  if (agreement) out << ", \"bf16_vs_fp32\": " << agreement->json();
  out
      << ", \"layers\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    out << (i ? ", " : "") << "{\"id\": " << json_quote(rows[i].id) << ", \"algo\": " << json_quote(rows[i].algo)
        << ", \"layouts\": " << json_quote(rows[i].layouts) << ", \"ms\": " << json_number(rows[i].ms)
        << ", \"gflops\": " << json_number(rows[i].gflops) << "}";
  }
  out << "]}\n";
  return out.str();
}

std::string bench_table(const LoadedModel& m, const std::string& engine, const std::string& precision,
                        const Memory& memory, int64_t warmup, double prepare_ms, const Timings& t,
                        const std::vector<StepRow>& rows, const std::optional<Agreement>& agreement) {
  std::ostringstream out;
  char line[1024];  // the header below is one call
  std::snprintf(line, sizeof line,
                "%s, %lld segments, %d threads, %s engine, %s, GEMM %s\n"
                "latency over %zu runs (after %lld warm-up): median %.1f ms, min %.1f ms, max %.1f ms\n"
                "peak memory (RSS): %.0f MB, of which prepared weights %.0f MB, the plan's arena %.0f MB\n"
                "(activations, and each step's scratch: at most %.0f MB, all threads)\n"
                "plan prepared in %.0f ms (BatchNorm folded, weights packed and transformed)\n"
                "layouts: planes, cl where a convolution hands its output to the next channels-last, shared\n"
                "where convolutions reading one input share its channels-last copy\n\n"
                "%-64s %-14s %-13s %9s %9s %7s\n",
                m.config.arch.c_str(), static_cast<long long>(m.config.segments), omp_get_max_threads(),
                engine.c_str(), precision.c_str(), selected_gemm_kernel().name.c_str(), t.latency_ms.size(),
                static_cast<long long>(warmup), t.median_ms, t.min_ms, t.max_ms, memory.rss_mb, memory.weights_mb,
                memory.arena_mb, memory.scratch_mb,
                prepare_ms, "layer",
                "algo", "layouts", "ms", "GFLOP/s", "share");
  out << line;
  if (agreement) out << agreement->text() << "\n";
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-64s %-14s %-13s %9.2f %9.1f %6.1f%%\n", r.id.substr(0, 64).c_str(),
                  r.algo.c_str(), r.layouts.c_str(), r.ms, r.gflops, 100.0 * r.ms / t.median_ms);
    out << line;
  }
  return out.str();
}

// The bf16 plan's logits on the seeded clips the comparison uses.
std::vector<Tensor> clip_logits(const ExecutionPlan& plan, const WeightStore& weights, const Shape& input_shape,
                                int64_t clips) {
  std::vector<Tensor> logits;
  for (int64_t c = 0; c < clips; ++c) {
    logits.push_back(run_plan(plan, weights, random_input(input_shape, 1000 + static_cast<uint64_t>(c))).clone());
  }
  return logits;
}

// The float plan's logits on the same clips beside the bf16 ones. Its model is loaded again (the
// bf16 plan released the weights it packed) once the bf16 plan is gone, so that one plan at a
// time is held and --max-memory's check stays true.
Agreement bf16_agreement(const Args& args, const PlanOptions& options, const std::vector<Tensor>& bf16_logits) {
  LoadedModel m = load_model(args, args.get_int("segments", 16, 1, kMaxSegments));
  PlanOptions fp32 = options;
  fp32.precision = fast::Precision::fp32;
  const ExecutionPlan plan = make_plan_releasing(m.graph, m.weights, fp32);
  const std::vector<Tensor> fp32_logits = clip_logits(plan, m.weights, m.graph.input_shape(),
                                                      static_cast<int64_t>(bf16_logits.size()));
  Agreement a;
  a.clips = static_cast<int>(bf16_logits.size());
  for (std::size_t c = 0; c < bf16_logits.size(); ++c) {
    const Tensor& want = fp32_logits[c];
    const Tensor& got = bf16_logits[c];
    const int64_t n = want.numel();
    double largest = 0, diff = 0;
    for (int64_t i = 0; i < n; ++i) {
      largest = std::max(largest, std::abs(static_cast<double>(want.data()[i])));
      diff = std::max(diff, std::abs(static_cast<double>(got.data()[i]) - want.data()[i]));
    }
    a.max_relative = std::max(a.max_relative, largest > 0 ? diff / largest : diff);
    auto top5_want = top_classes(want.data(), n, 5), top5_got = top_classes(got.data(), n, 5);
    a.top1_same += top5_want.front() == top5_got.front();
    std::sort(top5_want.begin(), top5_want.end());
    std::sort(top5_got.begin(), top5_got.end());
    a.top5_same += top5_want == top5_got;
  }
  return a;
}

// --accuracy-clips K: only with a bf16 plan (0 skips the comparison); read before any work.
int64_t accuracy_clips(const Args& args, const PlanOptions& options) {
  const bool bf16 = options.precision == fast::Precision::bf16;
  if (args.has("accuracy-clips") && !bf16) {
    args.fail("--accuracy-clips compares bf16 with fp32 and needs --precision bf16 (or auto choosing it)");
  }
  return bf16 ? args.get_int("accuracy-clips", 8, 0, 1000) : 0;
}

std::string precision_name(const PlanOptions& o) { return o.precision == fast::Precision::bf16 ? "bf16" : "fp32"; }

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  Args args("bench", with(model_options(false),
                          {{"weights", "FILE", "a PyTorch checkpoint (default: seeded random weights)"},
                           {"threads", "N", "worker threads (default: all cores)"},
                           {"iters", "K", "timed forward passes (default 5)"},
                           {"warmup", "W", "untimed passes first (default 1)"},
                           {"engine", "E", "fast (default) or reference"},
                           no_fuse_option(),
                           precision_option(),
                           {"accuracy-clips", "K", "with bf16: seeded random clips its logits are compared on with fp32's (default 8; 0: none)"},
                           {"json", "", "print the result as JSON"},
                  max_memory_option()}));
  if (!parse_or_help(args, argv,
                     "Times ECO's forward pass: median/min/max latency after warm-up, peak memory,\n"
                     "and where the time goes, layer by layer."))
    return 0;
  const int64_t iters = args.get_int("iters", 5, 1, 100000), warmup = args.get_int("warmup", 1, 0, 1000);
  const PlanOptions options = engine_options(args);
  const int64_t clips = accuracy_clips(args, options);
  LoadedModel m = load_model(args, args.get_int("segments", 16, 1, kMaxSegments));
  std::optional<PreparedPlan> prepared = prepare_plan(m, options);
  const double prepare_ms = prepared->ms;
  const Tensor input = random_input(m.graph.input_shape(), 2);
  const Timings t = time_plan(prepared->plan, m.weights, input, warmup, iters);
  const std::string engine = options.reference ? "reference" : "fast";
  const auto rows = step_rows(m.graph, prepared->plan, t);
  // The plan's steps take their scratch inside its arena; anything outside it is counted besides.
  const int64_t scratch = prepared->plan.activations->workspace_bytes() + scratch_peak_bytes();
  const double mib = 1 << 20;
  const Memory memory{peak_rss_mb(), static_cast<double>(scratch) / mib,
                      static_cast<double>(prepared_weight_bytes(prepared->plan)) / mib,
                      static_cast<double>(prepared->plan.activations->bytes()) / mib};
  std::optional<Agreement> agreement;
  if (clips > 0) {
    const std::vector<Tensor> bf16_logits = clip_logits(prepared->plan, m.weights, m.graph.input_shape(), clips);
    prepared.reset();
    agreement = bf16_agreement(args, options, bf16_logits);
  }
  std::cout << (args.has("json") ? bench_json(m, engine, precision_name(options), memory, prepare_ms, t, rows, agreement)
                                 : bench_table(m, engine, precision_name(options), memory, warmup, prepare_ms, t, rows, agreement));
  return 0;
}

}  // namespace ecocpu::cli
