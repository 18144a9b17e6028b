#pragma once
// Which frames of an input of n frames become the N segments' frames (0-based), by upstream's
// rules (TSN's dataset.py, which ECO reuses):
//   test     tick = n / N, frame k = int(tick / 2 + tick * k); for n <= N frames repeat evenly
//   val      the test rule when n > N, else frame 0 N times
//   random   the training rule: one random frame in each of N equal segments, from a seeded
//            generator, for test-time augmentation
//   explicit exactly the frames given (--frames)
#include <cstdint>
#include <string>
#include <vector>

#include "eco/video/image.hpp"

namespace ecocpu::video {

enum class SamplingMode { test, val, random, explicit_frames };

struct SamplingSpec {
  SamplingMode mode = SamplingMode::test;
  int64_t segments = 16;
  uint64_t seed = 0;                      // random mode
  std::vector<int64_t> frames;            // explicit mode; its size is the segment count
};

std::vector<int64_t> test_indices(int64_t frame_count, int64_t segments);
std::vector<int64_t> val_indices(int64_t frame_count, int64_t segments);
std::vector<int64_t> random_indices(int64_t frame_count, int64_t segments, uint64_t seed);

// The sampler for a spec; `source` names the input in its errors (an explicit frame past the
// input's last frame).
FrameSampler make_sampler(const SamplingSpec& spec, const std::string& source);

// "test", "val", "random" -> the mode; anything else throws std::invalid_argument.
SamplingMode parse_sampling_mode(const std::string& name);

}  // namespace ecocpu::video
