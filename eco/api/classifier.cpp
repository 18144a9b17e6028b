// The embedding API (include/ecocpu/ecocpu.hpp) on top of the library: the same loading, checks and
// engine as `ecocpu run`, every failure turned into ecocpu::Error.
#include <algorithm>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <utility>

#include "ecocpu/ecocpu.hpp"
#include "eco/api/loading.hpp"
#include "eco/definitions.hpp"
#include "eco/io/labels.hpp"
#include "eco/random_weights.hpp"
#include "eco/video/clip.hpp"
#include "graph/plan.hpp"

namespace ecocpu {

struct Classifier::Impl {
  ModelConfig config;
  Graph graph;
  WeightStore weights;
  ExecutionPlan plan;  // points at `graph`: an Impl never moves, the Classifier holds it by pointer
  std::string weights_source;
};

namespace {

// Runs `work` and turns whatever it throws into an Error, so that callers catch one type. With
// `name_subject`, a message that does not start with the subject (an input path) gets it in front,
// as `ecocpu run` reports a failed input; model errors already name their file.
template <typename Work>
auto translated(const std::string& subject, bool name_subject, Work work) -> decltype(work()) {
  try {
    return work();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(subject + ": out of memory");
  } catch (const std::exception& e) {
    throw Error(name_subject ? error_naming(subject, e.what()) : std::string(e.what()));
  }
}

void check_range(const char* option, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    throw Error(std::string("ModelOptions.") + option + " is " + std::to_string(value) + "; it must be " +
                std::to_string(lo) + " to " + std::to_string(hi));
  }
}

// The options as the library's configuration, every value checked first (a bad one must not reach
// the builder as, say, a negative size).
ModelConfig model_config(const ModelOptions& options) {
  check_range("segments", options.segments, 1, kMaxSegments);
  check_range("classes", options.classes, 0, kMaxClasses);
  check_range("image_size", options.image_size, 0, kMaxImageSize);
  check_range("max_memory_mb", options.max_memory_mb, 0, INT64_MAX / kMB);
  if (!(options.dropout >= 0.0 && options.dropout < 1.0)) {
    throw Error("ModelOptions.dropout is " + std::to_string(options.dropout) + "; it must be at least 0 and below 1");
  }
  if (!options.arch.empty() && !is_builtin_arch(options.arch)) {
    throw Error("ModelOptions.arch: unknown arch '" + options.arch + "' (known: " + builtin_arch_list() + ")");
  }
  ModelConfig config;
  config.arch = options.arch.empty() ? "ECO" : options.arch;
  config.segments = options.segments;
  config.classes = options.classes == 0 ? 400 : options.classes;
  config.dropout = options.dropout;
  config.model_def = options.model_def;
  config.image_size = options.image_size;
  return config;
}

std::optional<MemoryLimit> memory_limit(const ModelOptions& options) {
  if (options.max_memory_mb > 0) return MemoryLimit{options.max_memory_mb * kMB, "ModelOptions.max_memory_mb"};
  return available_memory_limit();
}

// The helpers below take the Classifier's Impl as `auto&`: the type is private to Classifier, so a
// free function cannot name it, but a deduced parameter needs no name.

// The plan is made once here; it frees the weight copies it has packed as it goes.
void prepare(auto& impl, const ModelOptions& options) {
  PlanOptions plan_options;
  plan_options.reference = options.reference_engine;
  impl.plan = make_plan_releasing(impl.graph, impl.weights, plan_options);
}

// One forward pass on a clip laid out as the network input; `subject` names the clip in errors.
std::vector<float> forward(auto& impl, const float* clip, std::size_t count, const std::string& subject) {
  const Shape& shape = impl.graph.input_shape();
  const auto expected = static_cast<std::size_t>(shape.numel());
  if (clip == nullptr || count != expected) {
    throw Error(subject + ": " + std::to_string(clip ? count : 0) + " floats, but the model takes " + shape.str() +
                ": " + std::to_string(expected));
  }
  if (const int64_t i = first_non_finite(clip, static_cast<int64_t>(count)); i >= 0) {
    throw Error(subject + ": float " + std::to_string(i) + " is not finite");
  }
  return translated(subject, true, [&] {
    Tensor input = Tensor::uninitialized(shape);
    std::copy(clip, clip + count, input.data());  // the caller's buffer is neither kept nor written
    const Tensor out = run_plan(impl.plan, impl.weights, input);
    check_logits(out, impl.weights_source);
    return std::vector<float>(out.data(), out.data() + out.numel());
  });
}

video::ClipOptions clip_options(const InputOptions& options, int64_t segments, int64_t image_size) {
  if (options.frame_pattern.empty()) throw Error("InputOptions.frame_pattern is empty (e.g. img_%05d.jpg)");
  if (options.decoder_threads < 0) throw Error("InputOptions.decoder_threads is negative");
  video::ClipOptions clip;
  try {
    clip.sampling.mode = video::parse_sampling_mode(options.sampling);
  } catch (const std::invalid_argument& e) {
    throw Error(std::string("InputOptions.sampling: ") + e.what());
  }
  clip.sampling.segments = segments;
  clip.sampling.seed = options.sampling_seed;
  clip.frame_pattern = options.frame_pattern;
  clip.preprocess = video::preprocess_spec_for(image_size);
  clip.decoder_threads = options.decoder_threads;
  return clip;
}

}  // namespace

Classifier::Classifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Classifier::Classifier(Classifier&&) noexcept = default;
Classifier& Classifier::operator=(Classifier&&) noexcept = default;
Classifier::~Classifier() = default;

const Classifier::Impl& Classifier::impl() const {
  if (!impl_) throw Error("ecocpu::Classifier: used after it was moved from");
  return *impl_;
}

Classifier::Impl& Classifier::impl() {
  return const_cast<Impl&>(std::as_const(*this).impl());
}

Classifier Classifier::load(const std::string& checkpoint_path, const ModelOptions& options) {
  const ModelConfig asked = model_config(options);
  return translated(checkpoint_path, false, [&] {
    auto impl = std::make_unique<Impl>();
    const EcoCheckpoint checkpoint = read_checkpoint(checkpoint_path);
    CheckpointModel m = checkpoint_model(checkpoint, asked, !options.arch.empty());
    if (options.classes != 0 && options.classes != m.config.classes) {
      throw Error(checkpoint_path + ": the checkpoint has a " + std::to_string(m.config.classes) +
                  "-class classifier, not the " + std::to_string(options.classes) + " classes of ModelOptions.classes");
    }
    impl->config = std::move(m.config);
    impl->graph = build_classifier_model(m.definition, impl->config, memory_limit(options));
    impl->weights = load_checkpoint_weights(checkpoint, impl->graph, impl->config);
    impl->weights_source = checkpoint_path + " (" + checkpoint.file.format() + ")";
    prepare(*impl, options);
    return Classifier(std::move(impl));
  });
}

Classifier Classifier::random(const ModelOptions& options, uint64_t seed) {
  const ModelConfig config = model_config(options);
  return translated(model_source(config), false, [&] {
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    impl->graph = build_classifier_model(model_definition(config), config, memory_limit(options));
    impl->weights = random_weights(impl->graph, seed);
    impl->weights_source = "random (seed " + std::to_string(seed) + ")";
    prepare(*impl, options);
    return Classifier(std::move(impl));
  });
}

std::vector<float> Classifier::load_input(const std::string& path, const InputOptions& options) const {
  const Impl& m = impl();
  const video::ClipOptions clip = clip_options(options, m.config.segments, image_size());
  return translated(path, true, [&] {
    const video::Clip loaded = video::load_clip(path, clip);
    return std::vector<float>(loaded.frames.data(), loaded.frames.data() + loaded.frames.numel());
  });
}

std::vector<float> Classifier::logits(const float* clip, std::size_t count) {
  return forward(impl(), clip, count, "the clip");
}

std::vector<float> Classifier::logits(const std::string& path, const InputOptions& options) {
  const std::vector<float> clip = load_input(path, options);
  return forward(impl(), clip.data(), clip.size(), path);
}

std::vector<Prediction> Classifier::classify(const std::string& path, int64_t k, const InputOptions& options) {
  if (k < 1) throw Error("classify: k is " + std::to_string(k) + "; it must be at least 1");
  return top_k(logits(path, options), k);
}

std::vector<Prediction> Classifier::top_k(const std::vector<float>& logits, int64_t k) {
  if (k < 1) throw Error("top_k: k is " + std::to_string(k) + "; it must be at least 1");
  if (logits.empty()) throw Error("top_k: no logits to rank");
  const auto count = static_cast<int64_t>(logits.size());
  const std::vector<double> probability = softmax(logits.data(), count);
  std::vector<Prediction> ranked;
  for (const int i : top_classes(logits.data(), count, k)) ranked.push_back({i, logits[i], probability[i]});
  return ranked;
}

std::vector<std::string> Classifier::read_labels(const std::string& path) const {
  const int64_t count = classes();
  return translated(path, true, [&] { return ecocpu::read_labels(path, count); });
}

std::string Classifier::arch() const { return impl().config.arch; }
int64_t Classifier::segments() const { return impl().config.segments; }
int64_t Classifier::image_size() const { return impl().graph.input_shape()[2]; }
int64_t Classifier::classes() const { return impl().graph.output_shape()[1]; }
std::size_t Classifier::input_size() const { return static_cast<std::size_t>(impl().graph.input_shape().numel()); }
std::string Classifier::weights_source() const { return impl().weights_source; }

}  // namespace ecocpu
