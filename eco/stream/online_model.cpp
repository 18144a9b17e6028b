#include "eco/stream/online_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "eco/api/loading.hpp"

namespace ecocpu::stream {

namespace {

int64_t default_batch(const Graph& model) { return (model.input_shape()[0] + 1) / 2; }

int64_t per_image(const Tensor& t) { return t.numel() / t.shape()[0]; }

}  // namespace

OnlineModel::OnlineModel(const Graph& model, WeightStore weights, const PlanOptions& options, int64_t batch)
    : memory_size_(model.input_shape()[0]), split_(split_at_frames(model, batch > 0 ? batch : default_batch(model))) {
  frame_weights_ = part_weights(split_.frames, weights);
  clip_weights_ = part_weights(split_.clip, weights);
  weights = WeightStore();  // the parts hold the only references: packing can release them
  frames_ = make_plan_releasing(split_.frames, frame_weights_, options);
  clip_ = make_plan_releasing(split_.clip, clip_weights_, options);
}

// The frames' features, `batch()` frames a pass; a last partial batch repeats its last frame.
void OnlineModel::compute_features(const std::vector<int64_t>& frames, const std::function<const float*(int64_t)>& frame) {
  const int64_t b = batch();
  if (frame_batch_.empty()) frame_batch_ = Tensor::uninitialized(split_.frames.input_shape());
  Tensor& input = frame_batch_;
  const int64_t pixels = per_image(input);
  for (std::size_t first = 0; first < frames.size(); first += static_cast<std::size_t>(b)) {
    const std::size_t count = std::min(frames.size() - first, static_cast<std::size_t>(b));
    for (int64_t i = 0; i < b; ++i) {
      const float* src = frame(frames[first + std::min<std::size_t>(static_cast<std::size_t>(i), count - 1)]);
      std::memcpy(input.data() + i * pixels, src, static_cast<std::size_t>(pixels) * sizeof(float));
    }
    const std::vector<Tensor> out = run_plan_outputs(frames_, frame_weights_, std::span<const Tensor>(&input, 1));
    for (std::size_t i = 0; i < count; ++i) {
      std::vector<Tensor>& features = cache_[frames[first + i]];
      for (const Tensor& f : out) {
        Shape one = f.shape();
        one[0] = 1;
        Tensor copy = Tensor::uninitialized(one);
        std::memcpy(copy.data(), f.data() + static_cast<int64_t>(i) * per_image(f), static_cast<std::size_t>(copy.numel()) * sizeof(float));
        features.push_back(std::move(copy));
      }
    }
  }
}

const std::vector<Tensor>& OnlineModel::stacked_features(const std::vector<int64_t>& memory) {
  if (stacked_.empty()) {
    for (int v : split_.clip.inputs) stacked_.push_back(Tensor::uninitialized(split_.clip.values[v].shape));
  }
  for (std::size_t f = 0; f < stacked_.size(); ++f) {
    Tensor& all = stacked_[f];
    const int64_t size = per_image(all);
    for (std::size_t t = 0; t < memory.size(); ++t) {
      std::memcpy(all.data() + static_cast<int64_t>(t) * size, cache_.at(memory[t])[f].data(), static_cast<std::size_t>(size) * sizeof(float));
    }
  }
  return stacked_;
}

OnlineModel::Update OnlineModel::update(const std::vector<int64_t>& memory,
                                        const std::function<const float*(int64_t)>& frame) {
  if (static_cast<int64_t>(memory.size()) != memory_size_) {
    throw std::invalid_argument("the working memory holds " + std::to_string(memory.size()) + " frames, the model takes " +
                                std::to_string(memory_size_));
  }
  std::erase_if(cache_, [&](const auto& entry) { return !std::binary_search(memory.begin(), memory.end(), entry.first); });
  std::vector<int64_t> missing;
  for (int64_t i : memory) {
    if (!cache_.count(i)) missing.push_back(i);
  }
  compute_features(missing, frame);
  Update u;
  u.computed_2d = static_cast<int64_t>(missing.size());
  u.logits = run_plan_outputs(clip_, clip_weights_, stacked_features(memory)).at(0);
  return u;
}

void RunningPrediction::add(const float* logits, int64_t count) {
  const std::vector<double> p = sum_logits_ ? std::vector<double>(logits, logits + count) : softmax(logits, count);
  if (value_.empty()) {
    value_ = p;
    return;
  }
  for (std::size_t i = 0; i < value_.size(); ++i) value_[i] = sum_logits_ ? value_[i] + p[i] : (value_[i] + p[i]) / 2;
}

std::vector<double> RunningPrediction::probabilities() const {
  if (!sum_logits_) return value_;
  return softmax(value_.data(), static_cast<int64_t>(value_.size()));
}

}  // namespace ecocpu::stream
