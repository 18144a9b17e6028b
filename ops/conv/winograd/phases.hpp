#pragma once
// A stride-2 2D convolution with a 5x5 to 8x8 kernel (ECO's conv1: 7x7 over 3 channels) as a
// stride-1 one over the four phases of its input, through Winograd. Phase (a, b) of the padded
// input holds its samples (2y + a, 2x + b); output (y, x) reads kernel tap (2i + a, 2j + b) as tap
// (i, j) of phase (a, b). Stacked as 4 x Cin channels, the phases make a stride-1, unpadded
// convolution with a kernel of ceil(k / 2) per axis (taps past k zero), which F(4x4, 4x4) or
// F(4x4, 3x3) multiply in 49 or 36 products per 16 outputs: for conv1, 49 / 16 x 12 = 36.75
// multiplications per output and output channel where the direct product takes 7 x 7 x 3 = 147.
// The input comes as planes; the phases are copied from them once, channels-last, into the
// workspace (the only copy, as the tap GEMM makes its own channels-last one).
#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/reference/conv_reference.hpp"
#include "ops/pool/reference/pool_reference.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

bool phase_winograd_applies(const reference::ConvProblem& p);

// The stride-1 problem over the phases: 4 x Cin channels, the same batch, output channels and
// output extent.
reference::ConvProblem phase_problem(const reference::ConvProblem& p);

// weight: (Cout, Cin, 1, kh, kw) row-major -> the phase problem's kernels, Winograd-transformed
// (winograd_transform_weights). row_scale: as prepare_conv's.
PackedPanels phase_winograd_weights(const reference::ConvProblem& p, const float* weight,
                                    const float* row_scale = nullptr);

// The phases of `planes` (p's input, batch x Cin planes) as the phase problem's channels-last
// input in `layout` (winograd_input_layout of the phase problem): channel (2a + b) x Cin + c of
// position (y, x) is plane c's sample (2y + a - pad_h, 2x + b - pad_w), zero outside the input.
void phase_input(const reference::ConvProblem& p, const PaddedInput& layout, const float* planes, float* out);

// Per thread, a Winograd block's; shared, the phases' copy.
ScratchSize phase_winograd_scratch(const reference::ConvProblem& p, int threads);

// `in`: planes. The epilogue as conv_winograd's (planes, channels-last, slices, a residual).
void conv_phase_winograd(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                         const ConvEpilogue& epilogue, float* out);

// The convolution followed by a 2D max pooling (conv1 + pool1) band by band, an image per thread
// (winograd_max_pooled: each image's phases copied into the thread's scratch). `pool`: planes =
// batch x Cout, in_extent = p.out_extent.
ScratchSize conv_phase_winograd_max_pooled_scratch(const reference::ConvProblem& p, const PackedPanels& w,
                                                   const reference::PoolProblem& pool, int threads);
void conv_phase_winograd_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                                    const ConvEpilogue& epilogue, const reference::PoolProblem& pool, float* out,
                                    bool out_channels_last = false);

}  // namespace ecocpu::fast
