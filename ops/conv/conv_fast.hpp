#pragma once
// A convolution prepared for the fast engine: its algorithm chosen and its weights transformed
// and packed once, so each forward pass only runs the kernel.
#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/taps/conv_taps.hpp"
#include "ops/conv/winograd/winograd.hpp"

namespace ecocpu::fast {

struct PreparedConv {
  reference::ConvProblem problem;
  ConvAlgo algo = ConvAlgo::Im2colGemm;
  PackedMatrix gemm_weight;  // GEMM algorithms
  PackedPanels winograd;     // Winograd
  PackedPanels taps;         // tap GEMM
};

// weight: (Cout, Cin, [kd,] kh, kw) row-major.
PreparedConv prepare_conv(const reference::ConvProblem& p, ConvAlgo algo, const float* weight);

// in_channels_last: `in` is the padded channels-last copy of the input (input_layout), written by
// the convolution before; only for algorithms that take one (takes_channels_last).
void run_conv(const PreparedConv& conv, const float* in, const ConvEpilogue& epilogue, float* out,
              bool in_channels_last = false);

// Whether the algorithm works from a padded channels-last copy of its input (Winograd, tap GEMM),
// which the convolution before may then write directly, and that copy's layout.
bool takes_channels_last(const PreparedConv& conv);
PaddedInput input_layout(const PreparedConv& conv);

// Whether the convolution can write its output channels-last (ConvEpilogue::channels_last_out):
// Winograd, the tap GEMM and the 1x1 GEMM (conv_pointwise_channels_last).
bool writes_channels_last(const PreparedConv& conv);

// Images [first, first + count) of the batch: `in` and the epilogue's residual are whole batches,
// `out` receives only those images (planes, or channels-last under the epilogue's
// channels_last_out, whose layout then holds `count` images, not frames of a clip).
void run_conv_images(const PreparedConv& conv, int64_t first, int64_t count, const float* in,
                     const ConvEpilogue& epilogue, float* out, bool in_channels_last = false);

}  // namespace ecocpu::fast
