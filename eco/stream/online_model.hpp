#pragma once
// ECO for online recognition: the model split at its 2D-to-3D boundary (graph/split.hpp), with a
// cache of the 2D features of the frames in the working memory. At each update only the frames new
// to the memory go through the 2D part (a batch of about N/2 frames at a time); the 3D part and the
// classifier run on the whole memory's stacked features.
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "graph/plan.hpp"
#include "graph/split.hpp"
#include "graph/weights.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu::stream {

class OnlineModel {
 public:
  // `model` takes clips of N frames; its weights are handed over, and each part's plan releases
  // what it packs. The 2D part runs `batch` frames at a time (default: half the memory, rounded up:
  // what each update after the first computes).
  OnlineModel(const Graph& model, WeightStore weights, const PlanOptions& options, int64_t batch = 0);

  struct Update {
    Tensor logits;             // (1, classes)
    int64_t computed_2d = 0;   // frames the 2D part ran on (not counting a partial batch's padding)
  };
  // The logits for the memory (N frame indices, ascending, distinct). `frame(i)` gives frame i's
  // preprocessed pixels, (3, S, S) floats; it is asked only for frames whose features are not cached.
  // Features of frames that left the memory are dropped.
  Update update(const std::vector<int64_t>& memory, const std::function<const float*(int64_t)>& frame);

  int64_t memory_size() const { return memory_size_; }
  int64_t batch() const { return split_.frames.input_shape()[0]; }
  int64_t cached_frames() const { return static_cast<int64_t>(cache_.size()); }
  const ExecutionPlan& frames_plan() const { return frames_; }
  const ExecutionPlan& clip_plan() const { return clip_; }

 private:
  void compute_features(const std::vector<int64_t>& frames, const std::function<const float*(int64_t)>& frame);
  // The clip part's inputs for `memory`, written into buffers kept from one update to the next.
  const std::vector<Tensor>& stacked_features(const std::vector<int64_t>& memory);

  int64_t memory_size_;
  SplitModel split_;
  WeightStore frame_weights_, clip_weights_;
  ExecutionPlan frames_, clip_;
  std::map<int64_t, std::vector<Tensor>> cache_;  // frame index -> one (1, ...) tensor per feature
  // Reused by every update, so that a window's pixels and stacked features are not page-faulted
  // in again each time: the frames part's input batch and the clip part's inputs.
  Tensor frame_batch_;
  std::vector<Tensor> stacked_;
};

// The prediction that runs across updates, from each update's logits:
//  - paper: the running average of probabilities, average_k = (average_{k-1} + p_k) / 2, average_0 = p_0;
//  - decay: the raw logits summed over updates, as the authors' demo accumulates them.
class RunningPrediction {
 public:
  explicit RunningPrediction(bool sum_logits) : sum_logits_(sum_logits) {}
  void add(const float* logits, int64_t count);
  const std::vector<double>& value() const { return value_; }
  // Per class, what top-k ranks and reports as "probability": the average itself, or the softmax
  // of the summed logits.
  std::vector<double> probabilities() const;
  bool sums_logits() const { return sum_logits_; }

 private:
  bool sum_logits_;
  std::vector<double> value_;
};

}  // namespace ecocpu::stream
