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
#include "ops/gemm/bf16.hpp"
#include "ops/pool/reference/pool_reference.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

// weight: (Cout, Cin, [kd,] kh, kw) row-major -> one matrix of (tap, input channel) rows, tap-major,
// and Cout columns. row_scale: as prepare_conv's.
PackedPanels tap_pack_weights(const reference::ConvProblem& p, const float* weight, const float* row_scale = nullptr);
// The same in bf16 (Bf16Panels), rounded as they are gathered; an even number of input channels.
Bf16Panels tap_pack_weights_bf16(const reference::ConvProblem& p, const float* weight, const float* row_scale = nullptr);

// The scratch conv_taps takes for `p`, or for a range of its images, on `threads` threads: per
// thread an item's products and its register tiles' bookkeeping; shared, the input's channels-last
// copy unless in_channels_last, and in bf16 from a float input (not in_bf16) its bf16 copy.
ScratchSize conv_taps_scratch(const reference::ConvProblem& p, int threads, bool in_channels_last, bool bf16 = false,
                              bool in_bf16 = false);

// in_channels_last: `in` is already the padded channels-last copy (padded_input(p)) the kernel
// works from, written by the convolution before (see ConvEpilogue::channels_last_out).
void conv_taps(const reference::ConvProblem& p, const PackedPanels& w, const float* in, const ConvEpilogue& epilogue,
               float* out, bool in_channels_last = false);

// conv_taps on a pointwise convolution from channels-last to channels-last (the input unpadded,
// padded_input(p); the output where the epilogue's channels_last_out says, a Concat's channel
// slice included): each position's input channels are read in place as a register tile's A row and
// each output channel's epilogue is applied in the registers, so the products never pass through
// memory. conv_taps takes this path itself. In bf16 each block of positions' rows is rounded once
// into the thread's scratch and read from there by every panel.
void conv_pointwise_rows(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                         const ConvEpilogue& epilogue, float* out);
void conv_pointwise_rows(const reference::ConvProblem& p, const Bf16Panels& w, const float* in,
                         const ConvEpilogue& epilogue, float* out);
// The same from an input stored as bf16 (channels-last, unpadded: a plan's bf16 value): each
// block's rows are copied as they are, not rounded.
void conv_pointwise_rows(const reference::ConvProblem& p, const Bf16Panels& w, const uint16_t* in,
                         const ConvEpilogue& epilogue, float* out);
// Its scratch, per thread: a block's output row pointers, and in bf16 (from a float input) its
// rounded input rows. conv_taps_scratch includes it.
ScratchSize conv_pointwise_rows_scratch(const reference::ConvProblem& p, int threads, bool bf16);

// The same with bf16 products (ops/gemm/bf16.hpp): the weights rounded once
// (tap_pack_weights_bf16), the input rounded once into a bf16 copy that A is read from in place
// where the geometry allows (as the float kernel's: runs of even length, output rows of
// row_step positions or more), else each A tile as it is copied (pointwise between channels-last
// values: conv_pointwise_rows' bf16 blocks); float sums and epilogue. Only where tap_bf16_applies: a CPU with the bf16 kernel. Depth steps are pairs: with
// an odd channel count (conv1's 3) each row of taps' kw x Cin weight rows is followed by a zero
// row, and its A run by a zero.
bool tap_bf16_applies(const reference::ConvProblem& p);
void conv_taps(const reference::ConvProblem& p, const Bf16Panels& w, const float* in, const ConvEpilogue& epilogue,
               float* out, bool in_channels_last = false);
// The same from the input's channels-last copy (padded_input's layout) stored as bf16 (a plan's
// bf16 value): its runs are copied into A tiles as they are, not rounded, so the products are those
// of the float copy's.
void conv_taps(const reference::ConvProblem& p, const Bf16Panels& w, const uint16_t* in, const ConvEpilogue& epilogue,
               float* out);

// A 2D convolution followed by a 2D max pooling (ECO's conv1 and pool1), the pooling taken from
// the products: each image is computed a band of output rows at a time into a channels-last buffer
// that stays in L2, its epilogue applied there (after the pooling along w where it commutes with
// the maximum), and the band's pooled rows written to `out`: the pooled planes, or with
// out_channels_last the pooled positions unpadded channels-last (what a pointwise convolution reads
// in place), stored as bf16 under the epilogue's channels_last_bf16 (`out` then uint16_t storage). The convolution's full-size output (51 MB for conv1 at 16 frames) is never stored,
// nor transposed into planes. Images are the threads' work items, so a batch of fewer
// images than threads leaves threads idle. `pool`: planes = batch x Cout, in_extent = p.out_extent.
// The epilogue takes no residual, stride or channels-last output.
// Its scratch, all per thread: an image's channels-last copy unless in_channels_last, a band's
// products and pooled rows.
// In bf16 (Bf16Panels, where tap_bf16_applies) each image's copy is also rounded to bf16 once,
// and A is read in place from it where every row of taps starts at an even offset (conv1's
// 3-channel rows of 230 positions, stride 2); elsewhere A tiles are copied as in conv_taps.
ScratchSize conv_taps_max_pooled_scratch(const reference::ConvProblem& p, const reference::PoolProblem& pool,
                                         int threads, bool in_channels_last, bool bf16 = false);
void conv_taps_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                          const ConvEpilogue& epilogue, const reference::PoolProblem& pool, float* out,
                          bool in_channels_last = false, bool out_channels_last = false);
void conv_taps_max_pooled(const reference::ConvProblem& p, const Bf16Panels& w, const float* in,
                          const ConvEpilogue& epilogue, const reference::PoolProblem& pool, float* out,
                          bool in_channels_last = false, bool out_channels_last = false);

}  // namespace ecocpu::fast
