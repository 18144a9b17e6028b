#pragma once
// Max and average pooling as PyTorch computes them with ceil_mode=True and count_include_pad=True:
// a max ignores padding; an average divides by the window clipped to the padded input (so a window
// hanging past the right padding counts fewer cells) and sums only the real cells.
#include <array>
#include <cstdint>

#include "ops/window.hpp"

namespace ecocpu::reference {

enum class PoolMode { Max, Average };

struct PoolProblem {
  int64_t planes = 0;  // batch * channels
  std::array<int64_t, 3> in_extent{1, 1, 1};
  std::array<int64_t, 3> out_extent{1, 1, 1};
  Window window;
  PoolMode mode = PoolMode::Max;
};

void pool(const PoolProblem& p, const float* in, float* out);

// One axis of output index out_index's window: [begin, end) clipped to the input, and the extent
// an average divides by (clipped to the padded input only).
struct Span {
  int64_t begin, end, padded_extent;
};
Span window_span(int64_t out_index, int64_t in, int64_t kernel, int64_t stride, int64_t pad);

}  // namespace ecocpu::reference
