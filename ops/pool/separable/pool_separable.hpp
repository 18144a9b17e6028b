#pragma once
// Pooling as three 1D passes (w, then h, then d). Exact for max pooling, and for PyTorch's
// average pooling too: the window is a box, and its count_include_pad divisor is the product of
// the per-axis extents clipped at the padded border. Each pass is a short contiguous loop, which
// is much faster than visiting every window cell by cell.
#include "ops/pool/reference/pool_reference.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

void pool_separable(const reference::PoolProblem& p, const float* in, float* out);
// Its scratch on `threads` threads: per thread, a group of planes pooled along h (and w).
ScratchSize pool_separable_scratch(const reference::PoolProblem& p, int threads);

}  // namespace ecocpu::fast
