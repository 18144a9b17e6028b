#pragma once
// A convolution prepared for the fast engine: its algorithm chosen and its weights transformed
// and packed once, so each forward pass only runs the kernel.
#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/taps/conv_taps.hpp"
#include "ops/conv/winograd/phases.hpp"
#include "ops/conv/winograd/winograd.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

// The arithmetic of a convolution's products: float, or bf16 operands with float sums
// (ops/gemm/bf16.hpp) where the algorithm and CPU allow (conv_bf16_applies).
enum class Precision { fp32, bf16 };

struct PreparedConv {
  reference::ConvProblem problem;
  ConvAlgo algo = ConvAlgo::Im2colGemm;
  Precision precision = Precision::fp32;
  PackedMatrix gemm_weight;  // GEMM algorithms
  PackedPanels winograd;     // Winograd (on the input or its phases), in float
  PackedPanels taps;         // tap GEMM, in float
  Bf16Panels bf16;           // Winograd's or the tap GEMM's, in bf16 (then the float ones are empty)
};

// Whether `algo` on `p` can take bf16 products on this CPU: Winograd and the tap GEMM (pointwise
// ones included: a channels-last input) with an even number of input channels.
bool conv_bf16_applies(const reference::ConvProblem& p, ConvAlgo algo);

// weight: (Cout, Cin, [kd,] kh, kw) row-major. row_scale (Cout floats, or null): each output
// channel's weights are multiplied by it as they are packed (a folded BatchNorm's scale), exactly
// as if the weight had been scaled first, without a scaled copy of it. Precision::bf16 is taken
// where conv_bf16_applies, float elsewhere (PreparedConv::precision says which).
PreparedConv prepare_conv(const reference::ConvProblem& p, ConvAlgo algo, const float* weight,
                          const float* row_scale = nullptr, Precision precision = Precision::fp32);

// in_channels_last: `in` is the padded channels-last copy of the input (input_layout), written by
// the convolution before; only for algorithms that take one (takes_channels_last).
void run_conv(const PreparedConv& conv, const float* in, const ConvEpilogue& epilogue, float* out,
              bool in_channels_last = false);

// A tap GEMM convolution with bf16 products reading its channels-last input copy (input_layout)
// stored as bf16 (conv_taps' bf16-input form: the pointwise kernel between channels-last values).
// Only where reads_bf16_input.
bool reads_bf16_input(const PreparedConv& conv);
void run_conv_bf16_input(const PreparedConv& conv, const uint16_t* in, const ConvEpilogue& epilogue, float* out);

// Whether the algorithm works from a padded channels-last copy of its input (Winograd, tap GEMM),
// which the convolution before may then write directly, and that copy's layout.
bool takes_channels_last(const PreparedConv& conv);
PaddedInput input_layout(const PreparedConv& conv);

// Whether the convolution can write its output channels-last (ConvEpilogue::channels_last_out):
// Winograd, the tap GEMM and the 1x1 GEMM (conv_pointwise_channels_last).
bool writes_channels_last(const PreparedConv& conv);
// Whether it can also add a residual stored channels-last (ConvEpilogue::residual_channels_last)
// to a channels-last output (float or bf16): the algorithms writing through their sink, Winograd and the tap
// GEMM, except the tap GEMM's pointwise kernel.
bool adds_channels_last_residual(const PreparedConv& conv);

// Images [first, first + count) of the batch: `in` and the epilogue's residual are whole batches,
// `out` receives only those images (planes, or channels-last under the epilogue's
// channels_last_out, whose layout then holds `count` images, not frames of a clip).
void run_conv_images(const PreparedConv& conv, int64_t first, int64_t count, const float* in,
                     const ConvEpilogue& epilogue, float* out, bool in_channels_last = false);

// The scratch run_conv and run_conv_images (any range of images) take from current_workspace()
// for `conv` on `threads` threads (omp_get_max_threads() in the pass), whatever the epilogue
// (planes, a channel slice or channels-last): GEMM packing, Winograd blocks, tap GEMM items, and,
// in the shared zone, the input's channels-last copy unless in_channels_last -- which also covers
// channels_last_input called for the convolution before it, then run_conv on its copy. in_bf16:
// the input comes stored as bf16 (run_conv_bf16_input), so a bf16 tap GEMM makes no bf16 copy.
ScratchSize conv_scratch(const PreparedConv& conv, int threads, bool in_channels_last, bool in_bf16 = false);
int64_t conv_scratch_bytes(const PreparedConv& conv, int threads, bool in_channels_last);

// Whether the convolution followed by `pool` (planes = batch x Cout) runs band by band, an image
// per thread, on `threads` threads: a 2D max pooling after the tap GEMM (conv_taps_max_pooled) or
// a float Winograd (conv_winograd_max_pooled, conv_phase_winograd_max_pooled), with a batch that
// fills the threads. Otherwise it runs on chunks of images (run_conv_images), then the pooling:
// max_pool_channels_last on chunks written channels-last (Winograd, 2D max) or the pooling's own
// fast kernel (Pool::run_fast).
bool pools_band_by_band(const PreparedConv& conv, const reference::PoolProblem& pool, int threads);

// The scratch of the way pools_band_by_band names for `threads` threads (the chunks' convolution
// and pooling, or the band-wise kernel's).
ScratchSize conv_pooled_scratch(const PreparedConv& conv, const reference::PoolProblem& pool, int threads,
                                bool in_channels_last);

}  // namespace ecocpu::fast
