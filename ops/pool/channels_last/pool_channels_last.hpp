#pragma once
// Max pooling of a channels-last 2D batch, (batch, h, w, C) with each position's channels
// contiguous, into planes (batch, C, oh, ow): for a convolution that writes its output
// channels-last and is followed by a pooling (ECO's conv1 and conv2). The window's maximum is
// taken across 16 channels at a time, straight from contiguous runs, and only the pooled result, a
// quarter of the input for a stride-2 window, is transposed into planes.
#include "ops/pool/reference/pool_reference.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

// p: PoolProblem::planes = batch * channels, a 2D window (depth 1) in Max mode.
void max_pool_channels_last(const reference::PoolProblem& p, int64_t channels, const float* in, float* out);
// Its scratch on `threads` threads: per thread, a row pooled along h, then along w.
ScratchSize max_pool_channels_last_scratch(const reference::PoolProblem& p, int64_t channels, int threads);

// Max or average pooling (any window, 2D or 3D) from channels-last to channels-last: positions
// (batch, d, h, w) in order, unpadded, each position's `channels` values contiguous, in_ld apart in
// `in` and out_ld apart in `out` (out_ld > channels: a channel slice of a wider value, `out`
// pointing at its first channel). p.planes = batch * channels. Every output value is the
// reference's (the same cells summed in the same order); parallel over output rows.
// In and Out: float, or uint16_t for bf16 values (a plan's DType::bf16), read as floats and
// stored rounded (float_to_bf16); a maximum of bf16 values is one of them, so it stores exactly.
template <class In, class Out>
void pool_channels_last(const reference::PoolProblem& p, int64_t channels, const In* in, int64_t in_ld, Out* out,
                        int64_t out_ld);

// Some rows of one image, channels-last: row h (h >= first_row) at data + (h - first_row) *
// row_stride, each position's `channels` values contiguous and positions ld >= channels apart.
struct ChannelsLastRows {
  const float* data;
  int64_t first_row, row_stride, channels, ld;
};

// The input rows [begin, end) that the windows of output rows [oh_begin, oh_end) read.
reference::Span input_rows(const reference::PoolProblem& p, int64_t oh_begin, int64_t oh_end);

// Pooling an image a band of input rows at a time, for a convolution that computes it so (the tap
// GEMM's conv1 + pool1), in two steps, single-threaded:
// 1. each input row, as soon as it is computed, pooled along w into `out` (out_extent[2] positions
//    x `channels`, contiguous): the maximum over each window's columns;
void max_pool_columns(const reference::PoolProblem& p, const float* row, int64_t channels, int64_t ld, float* out);
// 2. output rows [oh_begin, oh_end) pooled along h from those rows (`pooled_columns`, which must hold
//    every row their windows read) into the image's output planes (`image_out`: channels planes of
//    out_extent[1] x out_extent[2]), by way of `row`: max_pool_rows_scratch_floats of the caller's
//    scratch (it runs on a thread of the caller's parallel region).
void max_pool_rows_to_planes(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns,
                             int64_t oh_begin, int64_t oh_end, float* image_out, float* row);
int64_t max_pool_rows_scratch_floats(const reference::PoolProblem& p, int64_t channels);
//    Or into the image's output unpadded channels-last (`image_out`: out_extent[1] x out_extent[2]
//    positions of `channels` contiguous values), for a pointwise convolution reading it in place.
void max_pool_rows_to_channels_last(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns,
                                    int64_t oh_begin, int64_t oh_end, float* image_out);
//    Or stored as bf16 (a plan's bf16 value), by way of `row` as max_pool_rows_to_planes.
void max_pool_rows_to_channels_last(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns,
                                    int64_t oh_begin, int64_t oh_end, uint16_t* image_out, float* row);
//    Or whichever of those three the image's output is: planes, or with channels_last unpadded
//    channels-last positions, stored as bf16 with bf16 (`image_out` then uint16_t storage).
void max_pool_rows_to(const reference::PoolProblem& p, const ChannelsLastRows& pooled_columns, int64_t oh_begin,
                      int64_t oh_end, float* image_out, bool channels_last, bool bf16, float* row);

}  // namespace ecocpu::fast
