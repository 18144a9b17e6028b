#pragma once
// Max pooling of a channels-last 2D batch, (batch, h, w, C) with each position's channels
// contiguous, into planes (batch, C, oh, ow): for a convolution that writes its output
// channels-last and is followed by a pooling (ECO's conv2). The window's maximum is taken
// across 16 channels at a time, straight from contiguous runs, and only the pooled result, a
// quarter of the input for a stride-2 window, is transposed into planes.
#include "ops/pool/reference/pool_reference.hpp"

namespace ecocpu::fast {

// p: PoolProblem::planes = batch * channels, a 2D window (depth 1) in Max mode.
void max_pool_channels_last(const reference::PoolProblem& p, int64_t channels, const float* in, float* out);

}  // namespace ecocpu::fast
