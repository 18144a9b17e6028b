// ecocpu run: classify one clip.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/io/files.hpp"
#include "eco/io/labels.hpp"
#include "eco/io/npy.hpp"
#include "eco/random_weights.hpp"
#include "eco/report.hpp"
#include "graph/plan.hpp"

namespace ecocpu::cli {

namespace {

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
  if (s[0] < 1 || s[0] > kMaxSegments) {
    throw FileError(path + ": the clip holds " + std::to_string(s[0]) + " frames; a clip has 1 to " +
                    std::to_string(kMaxSegments));
  }
  return {t.reshaped(s), path};
}

// Finite weights and a finite clip can still overflow float32 on the way (weights near 1e38):
// such logits rank nothing, so they are an error, not a result.
void check_logits(const Tensor& logits, const std::string& weights_source) {
  if (const int64_t i = first_non_finite(logits.data(), logits.numel()); i >= 0) {
    throw FileError(weights_source + ": the forward pass gives a non-finite logit for class " + std::to_string(i) +
                    " (the weights overflow float32)");
  }
}

void print_top(const Args& args, int64_t topk, const LoadedModel& m, const Tensor& logits, double prepare_ms,
               double seconds, const std::vector<std::string>& labels) {
  const int64_t classes = logits.dim(1);
  auto best = top_k(logits.data(), classes, topk);
  auto prob = softmax(logits.data(), classes);
  if (args.has("json")) {
    std::ostringstream out;
    out << "{\"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
        << ", \"classes\": " << classes << ", \"prepare_ms\": " << json_number(prepare_ms)
        << ", \"seconds\": " << json_number(seconds) << ", \"top\": [";
    for (std::size_t i = 0; i < best.size(); ++i) {
      out << (i ? ", " : "") << "{\"index\": " << best[i];
      if (!labels.empty()) out << ", \"label\": " << json_quote(labels[best[i]]);
      out << ", \"probability\": " << json_number(prob[best[i]]) << ", \"logit\": " << json_number(logits.data()[best[i]])
          << "}";
    }
    out << "]}\n";
    std::cout << out.str();
    return;
  }
  std::printf("%s, %lld segments, %lld classes, weights: %s\n", m.config.arch.c_str(),
              static_cast<long long>(m.config.segments), static_cast<long long>(classes),
              m.weights_source.c_str());
  if (m.load_ms > 0) std::printf("checkpoint loaded in %.1f ms\n", m.load_ms);
  std::printf("plan prepared in %.1f ms\n", prepare_ms);
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
                  {"json", "", "print the result as JSON"},
                  max_memory_option()}),
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
  // Every flag is checked before any work: a usage error must not follow a forward pass.
  const int64_t topk = args.get_int("topk", 5, 1, kMaxClasses);
  const PlanOptions engine = engine_options(args);
  if (args.has("save-logits")) {
    std::vector<std::string> inputs = args.positional();
    for (const char* option : {"weights", "model-def", "labels"}) {
      if (args.has(option)) inputs.push_back(args.get(option, ""));
    }
    check_output_path(args.get("save-logits", ""), inputs);
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

  const PreparedPlan prepared = prepare_plan(m, engine);
  auto start = std::chrono::steady_clock::now();
  Tensor logits = run_plan(prepared.plan, m.weights, input);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  check_logits(logits, m.weights_source);
  if (args.has("save-logits")) write_npy(args.get("save-logits", ""), logits);
  print_top(args, topk, m, logits, prepared.ms, seconds, labels);
  return 0;
}

}  // namespace ecocpu::cli
