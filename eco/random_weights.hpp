#pragma once
// Seeded random weights and inputs, for running ECO without a checkpoint (demos, tests, benchmarks).
// The generator is our own (splitmix64 + Box-Muller) so a seed gives the same numbers everywhere.
#include <cstdint>

#include "graph/ir.hpp"
#include "graph/weights.hpp"

namespace ecocpu {

class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  float uniform(float lo, float hi);  // [lo, hi)
  float normal();                     // mean 0, standard deviation 1

 private:
  uint64_t state_;
};

// He-scaled conv weights, a TSN-style N(0, 0.001) classifier and mildly perturbed BatchNorm
// statistics, so activations keep a sensible range through the whole network.
WeightStore random_weights(const Graph& graph, uint64_t seed);

// Frames like ECO's preprocessed input: BGR 0-255 minus the channel means, uniform in [-128, 128).
Tensor random_input(const Shape& shape, uint64_t seed);

}  // namespace ecocpu
