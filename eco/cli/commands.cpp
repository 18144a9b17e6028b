#include "eco/cli/commands.hpp"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <iostream>
#include <numeric>
#include <sstream>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/cli/args.hpp"
#include "eco/io/npy.hpp"
#include "eco/definitions.hpp"
#include "eco/random_weights.hpp"
#include "eco/report.hpp"
#include "graph/executor.hpp"
#include "graph/plan.hpp"

namespace ecocpu::cli {

namespace {

constexpr int64_t kMaxSegments = 1024;
constexpr int64_t kMaxClasses = 1000000;

std::vector<OptionSpec> model_options(bool segment_list) {
  return {
      {"arch", "A", "ECO (ECO Lite, default) or ECOfull"},
      {"segments", segment_list ? "N[,N...]" : "N",
       segment_list ? "frames per clip (default 16); a list sums an ensemble, e.g. 16,20,24,32"
                    : "frames per clip (default 16)"},
      {"classes", "K", "classifier outputs (default 400)"},
      {"dropout", "P", "TSN dropout before new_fc (default 0.5; 0 keeps fc_final as classifier)"},
      {"model-def", "FILE", "read the layers from an upstream-schema YAML file"},
  };
}

std::vector<OptionSpec> with(std::vector<OptionSpec> specs, std::vector<OptionSpec> more) {
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

ModelConfig model_config(const Args& args, int64_t segments) {
  ModelConfig c;
  c.arch = args.get_choice("arch", "ECO", builtin_archs());
  c.segments = segments;
  c.classes = args.get_int("classes", 400, 1, kMaxClasses);
  c.dropout = args.get_double("dropout", 0.5, 0.0, 1.0);
  if (c.dropout >= 1.0) throw UsageError("ecocpu: --dropout must be below 1");
  c.model_def = args.get("model-def", "");
  return c;
}

ModelConfig single_model_config(const Args& args) {
  return model_config(args, args.get_int("segments", 16, 1, kMaxSegments));
}

// Parses, prints --help, or returns false after the help text so the caller exits 0.
bool parse_or_help(Args& args, const std::vector<std::string>& argv, const std::string& about) {
  args.parse(argv);
  if (args.help_requested()) {
    std::cout << about << "\n\n" << args.usage();
    return false;
  }
  return true;
}

std::vector<int> top_k(const float* logits, int64_t count, int64_t k) {
  std::vector<int> order(static_cast<std::size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, count);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(static_cast<std::size_t>(k));
  return order;
}

std::vector<double> softmax(const float* logits, int64_t count) {
  double peak = *std::max_element(logits, logits + count);
  std::vector<double> p(static_cast<std::size_t>(count));
  double sum = 0;
  for (int64_t i = 0; i < count; ++i) sum += p[i] = std::exp(logits[i] - peak);
  for (auto& v : p) v /= sum;
  return p;
}

}  // namespace

int cmd_flops(const std::vector<std::string>& argv) {
  Args args("flops", with(model_options(true), {{"json", "", "print exact integers as JSON"}}));
  if (!parse_or_help(args, argv,
                     "Counts ECO's parameters, MACs and FLOPs per layer, in thop's convention too."))
    return 0;
  auto segment_list = args.get_int_list("segments", 16, 1, kMaxSegments);
  std::vector<CostedModel> members;
  for (int64_t s : segment_list) members.push_back(cost_model(model_config(args, s)));
  const bool json = args.has("json");
  if (members.size() == 1) {
    std::cout << (json ? flops_json(members[0]) : flops_table(members[0]));
  } else {
    std::cout << (json ? ensemble_json(members) : ensemble_table(members));
  }
  return 0;
}

int cmd_summary(const std::vector<std::string>& argv) {
  Args args("summary", model_options(false));
  if (!parse_or_help(args, argv,
                     "Prints every layer's output shape and parameters, and the memory needed."))
    return 0;
  std::cout << summary_table(cost_model(single_model_config(args)));
  return 0;
}

int cmd_definition(const std::vector<std::string>& argv) {
  Args args("definition", {{"arch", "A", "ECO (default) or ECOfull"}});
  if (!parse_or_help(args, argv,
                     "Prints ecocpu's built-in definition in the upstream YAML schema; edit it and\n"
                     "pass it back with --model-def."))
    return 0;
  std::cout << to_yaml(builtin_definition(args.get_choice("arch", "ECO", builtin_archs())));
  return 0;
}

namespace {

// --engine and --threads, shared by run and bench.
PlanOptions engine_options(const Args& args) {
  const std::string engine = args.get_choice("engine", "fast", {"fast", "reference"});
  if (args.has("threads")) omp_set_num_threads(static_cast<int>(args.get_int("threads", 1, 1, 1024)));
  PlanOptions options;
  options.reference = engine == "reference";
  return options;
}

struct RunInput {
  Tensor frames;  // (T, 3, 224, 224)
  std::string source;
};

// (T, 3, 224, 224) or (1, T, 3, 224, 224), already preprocessed as ECO expects.
RunInput read_clip(const std::string& path) {
  Tensor t = read_npy(path);
  Shape s = t.shape();
  if (s.rank() == 5 && s[0] == 1) s = Shape(s.begin() + 1, s.end());
  if (s.rank() != 4 || s[1] != 3 || s[2] != 224 || s[3] != 224) {
    throw FileError(path + ": the clip is " + t.shape().str() +
                    ", expected (T, 3, 224, 224) or (1, T, 3, 224, 224)");
  }
  return {t.reshaped(s), path};
}

std::vector<std::string> read_labels(const std::string& path, int64_t classes) {
  std::ifstream in(path);
  if (!in) throw FileError(path + ": cannot open the labels file");
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  if (static_cast<int64_t>(labels.size()) != classes) {
    throw FileError(path + ": " + std::to_string(labels.size()) + " labels for " +
                    std::to_string(classes) + " classes");
  }
  return labels;
}

struct LoadedModel {
  ModelConfig config;
  Graph graph;
  WeightStore weights;
  std::string weights_source;
  double load_ms = 0;
};

// With --weights: the checkpoint decides the classifier layout and, unless given, the classes and
// arch; every tensor is checked before anything runs.
LoadedModel load_model(const Args& args, int64_t segments) {
  LoadedModel m;
  m.config = model_config(args, segments);
  if (args.has("random-weights")) {
    m.graph = build_model(m.config);
    m.weights = random_weights(m.graph, static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX)));
    m.weights_source = "random (seed " + args.get("seed", "1") + ")";
    return m;
  }
  const std::string path = args.get("weights", "");
  auto start = std::chrono::steady_clock::now();
  EcoCheckpoint checkpoint = read_checkpoint(path);
  const ClassifierInfo classifier = find_classifier(checkpoint);
  const auto archs = builtin_archs();
  if (!args.has("arch") && checkpoint.arch &&
      std::find(archs.begin(), archs.end(), *checkpoint.arch) != archs.end()) {
    m.config.arch = *checkpoint.arch;
  }
  if (args.has("classes") && m.config.classes != classifier.classes) {
    throw UsageError("ecocpu run: --classes " + std::to_string(m.config.classes) + " but " + path +
                     " has a " + std::to_string(classifier.classes) + "-class classifier");
  }
  m.config.classes = classifier.classes;
  if (classifier.layer == "fc_final") m.config.dropout = 0.0;
  m.graph = build_model(m.config);
  try {
    m.weights = load_weights(checkpoint, m.graph);
  } catch (const FileError& e) {
    if (!checkpoint.arch || *checkpoint.arch == m.config.arch) throw;
    throw FileError(std::string(e.what()) + " (the checkpoint was saved as arch '" +
                    *checkpoint.arch + "', the model is " + m.config.arch + ")");
  }
  m.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  m.weights_source = path + " (" + checkpoint.file.format() + ")";
  return m;
}

void print_top(const Args& args, const LoadedModel& m, const Tensor& logits, double seconds,
               const std::vector<std::string>& labels) {
  const int64_t classes = logits.dim(1);
  auto best = top_k(logits.data(), classes, args.get_int("topk", 5, 1, kMaxClasses));
  auto prob = softmax(logits.data(), classes);
  if (args.has("json")) {
    std::ostringstream out;
    out << "{\"arch\": \"" << m.config.arch << "\", \"segments\": " << m.config.segments
        << ", \"classes\": " << classes << ", \"seconds\": " << seconds << ", \"top\": [";
    for (std::size_t i = 0; i < best.size(); ++i) {
      out << (i ? ", " : "") << "{\"index\": " << best[i];
      if (!labels.empty()) out << ", \"label\": " << json_quote(labels[best[i]]);
      out << ", \"probability\": " << prob[best[i]] << ", \"logit\": " << logits.data()[best[i]] << "}";
    }
    out << "]}\n";
    std::cout << out.str();
    return;
  }
  std::printf("%s, %lld segments, %lld classes, weights: %s\n", m.config.arch.c_str(),
              static_cast<long long>(m.config.segments), static_cast<long long>(classes),
              m.weights_source.c_str());
  if (m.load_ms > 0) std::printf("checkpoint loaded in %.1f ms\n", m.load_ms);
  std::printf("forward pass (%s engine): %.3f s\n\n%6s %8s %12s %12s  %s\n",
              args.get("engine", "fast").c_str(), seconds, "rank",
              "class", "probability", "logit", labels.empty() ? "" : "label");
  for (std::size_t i = 0; i < best.size(); ++i) {
    std::printf("%6zu %8d %12.6f %12.4f  %s\n", i + 1, best[i], prob[best[i]], logits.data()[best[i]],
                labels.empty() ? "" : labels[best[i]].c_str());
  }
}

}  // namespace

int cmd_run(const std::vector<std::string>& argv) {
  Args args("run",
            with(model_options(false),
                 {{"weights", "FILE", "a PyTorch checkpoint (.pth / .pth.tar, zip or legacy format)"},
                  {"random-weights", "", "use seeded random weights instead of a checkpoint"},
                  {"seed", "S", "seed for the random weights and random clip (default 1)"},
                  {"save-logits", "OUT.npy", "write the raw logits, float32 (1, K)"},
                  {"labels", "FILE", "class names, one per line"},
                  {"topk", "K", "how many classes to print (default 5)"},
                  {"engine", "E", "fast (GEMM kernels, fused; default) or reference (plain kernels)"},
                  {"threads", "N", "worker threads (default: all cores)"},
                  {"json", "", "print the result as JSON"}}),
            "[INPUT.npy]");
  if (!parse_or_help(args, argv,
                     "Runs ECO on one clip and prints the top classes.\n"
                     "INPUT.npy is float32 (T, 3, 224, 224) or (1, T, 3, 224, 224): T frames, BGR\n"
                     "0-255 minus the mean (104, 117, 128). Without INPUT, with --random-weights,\n"
                     "the clip is seeded random."))
    return 0;
  if (args.has("weights") == args.has("random-weights")) {
    throw UsageError("ecocpu run: give exactly one of --weights FILE and --random-weights");
  }
  if (args.positional().size() > 1) throw UsageError("ecocpu run: give one INPUT.npy");
  if (args.positional().empty() && args.has("weights")) {
    throw UsageError("ecocpu run: give the INPUT.npy clip to classify");
  }
  std::optional<RunInput> clip;
  if (!args.positional().empty()) clip = read_clip(args.positional()[0]);
  int64_t segments = args.get_int("segments", clip ? clip->frames.dim(0) : 16, 1, kMaxSegments);
  if (clip && segments != clip->frames.dim(0)) {
    throw UsageError("ecocpu run: --segments " + std::to_string(segments) + " but " + clip->source +
                     " holds " + std::to_string(clip->frames.dim(0)) + " frames");
  }

  LoadedModel m = load_model(args, segments);
  std::vector<std::string> labels;
  if (args.has("labels")) labels = read_labels(args.get("labels", ""), m.graph.output_shape()[1]);
  const auto seed = static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX));
  Tensor input = clip ? clip->frames : random_input(m.graph.input_shape(), seed + 1);

  ExecutionPlan plan = make_plan_releasing(m.graph, m.weights, engine_options(args));
  auto start = std::chrono::steady_clock::now();
  Tensor logits = run_plan(plan, m.weights, input);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (args.has("save-logits")) write_npy(args.get("save-logits", ""), logits);
  print_top(args, m, logits, seconds, labels);
  return 0;
}

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_mb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Direct-convolution-equivalent work of a step: 2 per MAC of every node it runs.
double step_flops(const Graph& g, const PlanStep& s) {
  double flops = 2.0 * static_cast<double>(g.nodes[s.node].cost.macs);
  for (int n : s.absorbed) flops += 2.0 * static_cast<double>(g.nodes[n].cost.macs);
  return flops;
}

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  Args args("bench", with(model_options(false),
                          {{"weights", "FILE", "a PyTorch checkpoint (default: seeded random weights)"},
                           {"threads", "N", "worker threads (default: all cores)"},
                           {"iters", "K", "timed forward passes (default 5)"},
                           {"warmup", "W", "untimed passes first (default 1)"},
                           {"engine", "E", "fast (default) or reference"},
                           {"json", "", "print the result as JSON"}}));
  if (!parse_or_help(args, argv,
                     "Times ECO's forward pass: median/min/max latency after warm-up, peak memory,\n"
                     "and where the time goes, layer by layer."))
    return 0;
  const int64_t iters = args.get_int("iters", 5, 1, 100000), warmup = args.get_int("warmup", 1, 0, 1000);
  LoadedModel m;
  if (args.has("weights")) {
    m = load_model(args, args.get_int("segments", 16, 1, kMaxSegments));
  } else {
    m.config = single_model_config(args);
    m.graph = build_model(m.config);
    m.weights = random_weights(m.graph, 1);
  }
  const PlanOptions options = engine_options(args);
  ExecutionPlan plan = make_plan_releasing(m.graph, m.weights, options);
  Tensor input = random_input(m.graph.input_shape(), 2);

  std::vector<double> latencies;
  std::vector<std::vector<double>> step_ms(plan.steps.size());
  for (int64_t it = 0; it < warmup + iters; ++it) {
    auto start = std::chrono::steady_clock::now(), previous = start;
    run_plan(plan, m.weights, input, [&](int step, const Tensor&) {
      auto now = std::chrono::steady_clock::now();
      if (it >= warmup) step_ms[step].push_back(std::chrono::duration<double, std::milli>(now - previous).count());
      previous = now;
    });
    if (it >= warmup) {
      latencies.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }
  const double med = median(latencies);
  const double lo = *std::min_element(latencies.begin(), latencies.end());
  const double hi = *std::max_element(latencies.begin(), latencies.end());
  const int threads = omp_get_max_threads();
  const std::string engine = options.reference ? "reference" : "fast";
  std::ostringstream out;
  if (args.has("json")) {
    out << "{\"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
        << ", \"threads\": " << threads << ", \"engine\": \"" << engine << "\", \"gemm\": "
        << json_quote(selected_gemm_kernel().name) << ", \"latency_ms\": {\"median\": " << med
        << ", \"min\": " << lo << ", \"max\": " << hi << "}, \"peak_rss_mb\": " << peak_rss_mb()
        << ", \"layers\": [";
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
      const double ms = median(step_ms[i]);
      out << (i ? ", " : "") << "{\"id\": " << json_quote(plan.steps[i].label(m.graph))
          << ", \"algo\": \"" << plan.steps[i].algo_name(m.graph) << "\", \"ms\": " << ms
          << ", \"gflops\": " << (ms > 0 ? step_flops(m.graph, plan.steps[i]) / ms * 1e-6 : 0.0) << "}";
    }
    out << "]}\n";
    std::cout << out.str();
    return 0;
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "%s, %lld segments, %d threads, %s engine, GEMM %s\n"
                "latency over %lld runs (after %lld warm-up): median %.1f ms, min %.1f ms, max %.1f ms\n"
                "peak memory (RSS): %.0f MB\n\n%-64s %-12s %9s %9s %7s\n",
                m.config.arch.c_str(), static_cast<long long>(m.config.segments), threads, engine.c_str(),
                selected_gemm_kernel().name.c_str(), static_cast<long long>(iters), static_cast<long long>(warmup),
                med, lo, hi, peak_rss_mb(), "layer", "algo", "ms", "GFLOP/s", "share");
  out << line;
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const double ms = median(step_ms[i]);
    std::snprintf(line, sizeof line, "%-64s %-12s %9.2f %9.1f %6.1f%%\n",
                  plan.steps[i].label(m.graph).substr(0, 64).c_str(), plan.steps[i].algo_name(m.graph).c_str(), ms,
                  ms > 0 ? step_flops(m.graph, plan.steps[i]) / ms * 1e-6 : 0.0, 100.0 * ms / med);
    out << line;
  }
  std::cout << out.str();
  return 0;
}

int cmd_inspect(const std::vector<std::string>& argv) {
  Args args("inspect", {{"json", "", "print the listing as JSON"}}, "FILE");
  if (!parse_or_help(args, argv,
                     "Lists a PyTorch checkpoint's tensors (name, dtype, shape, location) and its\n"
                     "metadata (epoch, arch, best_prec1) without building a model."))
    return 0;
  if (args.positional().size() != 1) throw UsageError("ecocpu inspect: give one checkpoint FILE");
  EcoCheckpoint c = read_checkpoint(args.positional()[0]);
  int64_t elements = 0;
  for (const auto& e : c.entries) {
    int64_t n = 1;
    for (int64_t d : e.tensor->shape) n *= d;
    elements += n;
  }
  std::ostringstream out;
  if (args.has("json")) {
    out << "{\"file\": " << json_quote(c.file.path()) << ", \"format\": \"" << c.file.format() << "\"";
    if (c.epoch) out << ", \"epoch\": " << *c.epoch;
    if (c.arch) out << ", \"arch\": " << json_quote(*c.arch);
    if (c.best_prec1) out << ", \"best_prec1\": " << *c.best_prec1;
    out << ", \"elements\": " << elements << ", \"tensors\": [";
    for (std::size_t i = 0; i < c.entries.size(); ++i) {
      const auto& t = *c.entries[i].tensor;
      out << (i ? ", " : "") << "{\"name\": " << json_quote(c.entries[i].name) << ", \"dtype\": \""
          << tensor_dtype(t) << "\", \"shape\": [";
      for (std::size_t d = 0; d < t.shape.size(); ++d) out << (d ? ", " : "") << t.shape[d];
      out << "], \"location\": " << json_quote(t.storage->location) << "}";
    }
    out << "]}\n";
  } else {
    out << "file: " << c.file.path() << " (" << c.file.format() << " format)\n";
    if (c.epoch) out << "epoch: " << *c.epoch << "\n";
    if (c.arch) out << "arch: " << *c.arch << "\n";
    if (c.best_prec1) out << "best_prec1: " << *c.best_prec1 << "\n";
    out << "tensors: " << c.entries.size() << ", elements: " << with_commas(elements) << "\n\n";
    for (const auto& e : c.entries) {
      std::string shape = "(";
      for (std::size_t d = 0; d < e.tensor->shape.size(); ++d) {
        shape += (d ? ", " : "") + std::to_string(e.tensor->shape[d]);
      }
      shape += ")";
      char line[512];
      std::snprintf(line, sizeof line, "%-60s %-9s %-24s %s\n", e.name.c_str(),
                    tensor_dtype(*e.tensor).c_str(), shape.c_str(), e.tensor->storage->location.c_str());
      out << line;
    }
  }
  std::cout << out.str();
  return 0;
}

}  // namespace ecocpu::cli
