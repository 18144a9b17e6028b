#pragma once
// Convolution as a sum over the kernel's taps of products (output positions x Cin) x (Cin x Cout),
// for 2D and 3D, any stride and padding. The input is first copied channels-last with its padding
// made explicit, so each output position's input for one kernel row (kw taps x Cin) is one
// contiguous run: a GEMM register tile of MR positions reads its A rows straight from that copy
// (copied into an MR x kc tile first, which costs little next to the product), no column
// gathering at all. Output positions are the GEMM's rows, so small output planes (ECO's 7x7x4 and
// 14x14x8 3D layers) waste at most a few rows instead of a partly empty column panel, and threads
// share nothing but the read-only input: no barrier until the layer ends. The weights are packed
// once as the GEMM's B panels (taps x Cin rows, NR output channels each).
#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/reference/conv_reference.hpp"

namespace ecocpu::fast {

// weight: (Cout, Cin, [kd,] kh, kw) row-major -> one matrix of (tap, input channel) rows, tap-major,
// and Cout columns.
PackedPanels tap_pack_weights(const reference::ConvProblem& p, const float* weight);

// in_channels_last: `in` is already the padded channels-last copy (padded_input(p)) the kernel
// works from, written by the convolution before (see ConvEpilogue::channels_last_out).
void conv_taps(const reference::ConvProblem& p, const PackedPanels& w, const float* in, const ConvEpilogue& epilogue,
               float* out, bool in_channels_last = false);

}  // namespace ecocpu::fast
