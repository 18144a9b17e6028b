#include "eco/video/sampling.hpp"

#include <algorithm>
#include <random>
#include <stdexcept>

#include "eco/io/mapped_file.hpp"

namespace ecocpu::video {

// Python's `tick = n / float(N)` and `int(tick / 2.0 + tick * k)`, in the same double operations,
// so the indices are upstream's to the last rounding.
std::vector<int64_t> test_indices(int64_t frame_count, int64_t segments) {
  const double tick = static_cast<double>(frame_count) / static_cast<double>(segments);
  std::vector<int64_t> indices(static_cast<std::size_t>(segments));
  for (int64_t k = 0; k < segments; ++k) {
    indices[k] = static_cast<int64_t>(tick / 2.0 + tick * static_cast<double>(k));
  }
  return indices;
}

std::vector<int64_t> val_indices(int64_t frame_count, int64_t segments) {
  if (frame_count > segments) return test_indices(frame_count, segments);
  return std::vector<int64_t>(static_cast<std::size_t>(segments), 0);
}

// Upstream's training rule: a uniform frame inside each of N segments of n // N frames (the
// frames past N * (n // N) are never picked), and frame 0 N times when n < N. (Upstream's third
// branch, sorted uniform frames when n > N, is unreachable with one frame per segment.)
std::vector<int64_t> random_indices(int64_t frame_count, int64_t segments, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> indices(static_cast<std::size_t>(segments), 0);
  const int64_t span = frame_count / segments;
  if (span > 0) {
    std::uniform_int_distribution<int64_t> offset(0, span - 1);
    for (int64_t k = 0; k < segments; ++k) indices[k] = k * span + offset(rng);
  }
  return indices;
}

namespace {

std::vector<int64_t> checked_explicit(const std::vector<int64_t>& frames, int64_t frame_count,
                                      const std::string& source) {
  for (int64_t f : frames) {
    if (f >= frame_count) {
      throw FileError(source + ": --frames asks for frame " + std::to_string(f) + " but the input has " +
                      std::to_string(frame_count) + " frames (0 to " + std::to_string(frame_count - 1) + ")");
    }
  }
  return frames;
}

}  // namespace

FrameSampler make_sampler(const SamplingSpec& spec, const std::string& source) {
  return [spec, source](int64_t frame_count) -> std::vector<int64_t> {
    if (frame_count < 1) throw FileError(source + ": the input holds no frame");
    switch (spec.mode) {
      case SamplingMode::test: return test_indices(frame_count, spec.segments);
      case SamplingMode::val: return val_indices(frame_count, spec.segments);
      case SamplingMode::random: return random_indices(frame_count, spec.segments, spec.seed);
      case SamplingMode::explicit_frames: return checked_explicit(spec.frames, frame_count, source);
    }
    throw std::logic_error("unknown sampling mode");
  };
}

SamplingMode parse_sampling_mode(const std::string& name) {
  if (name == "test") return SamplingMode::test;
  if (name == "val") return SamplingMode::val;
  if (name == "random") return SamplingMode::random;
  throw std::invalid_argument("unknown sampling mode '" + name + "' (test, val or random)");
}

}  // namespace ecocpu::video
