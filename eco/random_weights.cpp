#include "eco/random_weights.hpp"

#include <cmath>

namespace ecocpu {

uint64_t SeededRandom::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float SeededRandom::uniform(float lo, float hi) {
  double u = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  return lo + static_cast<float>(u * (hi - lo));
}

float SeededRandom::normal() {
  double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

namespace {

void fill_param(const ParamSpec& spec, Tensor& t, SeededRandom& rng) {
  float* d = t.data();
  const int64_t n = t.numel();
  if (spec.name == "weight" && spec.shape.rank() == 2) {
    // A classifier, initialised as TSN initialises new_fc: N(0, 0.001).
    for (int64_t i = 0; i < n; ++i) d[i] = rng.normal() * 0.001f;
  } else if (spec.name == "weight" && spec.shape.rank() > 2) {
    const float std_dev = std::sqrt(2.0f / static_cast<float>(spec.shape.numel_from(1)));
    for (int64_t i = 0; i < n; ++i) d[i] = rng.normal() * std_dev;
  } else if (spec.name == "weight") {  // BatchNorm scale
    for (int64_t i = 0; i < n; ++i) d[i] = rng.uniform(0.5f, 1.5f);
  } else if (spec.name == "running_var") {
    for (int64_t i = 0; i < n; ++i) d[i] = rng.uniform(0.5f, 2.0f);
  } else {  // biases and running means
    for (int64_t i = 0; i < n; ++i) d[i] = rng.uniform(-0.1f, 0.1f);
  }
}

}  // namespace

WeightStore random_weights(const Graph& graph, uint64_t seed) {
  SeededRandom rng(seed);
  WeightStore store;
  for (const auto& node : graph.nodes) {
    for (const auto& spec : node.params) {
      Tensor t(spec.shape);
      fill_param(spec, t, rng);
      store.set(param_key(node, spec), std::move(t));
    }
  }
  return store;
}

Tensor random_input(const Shape& shape, uint64_t seed) {
  SeededRandom rng(seed);
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.uniform(-128.0f, 128.0f);
  return t;
}

}  // namespace ecocpu
