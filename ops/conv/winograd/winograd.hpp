#pragma once
// Winograd convolution for stride-1 3x3 (2D) and 3x3x3 (3D) kernels: F(4x4, 3x3) in space and
// F(2, 3) in time, i.e. 6x6 (2D) or 4x6x6 (3D) input tiles giving 4x4 or 2x4x4 outputs; F(5x5, 3x3)
// (7x7 tiles) in space where it multiplies less (14x14 outputs: 3 tiles of 5 an axis instead of 4
// of 4, 2.0 multiplications per output instead of 2.9, overhang included). It runs channels-last: the input is copied once with channels innermost
// (padding and the tiles' overhang explicit), so a tile's patch is a few contiguous runs and its transform (B^T d B along each
// axis) is vector arithmetic across channels. The tiles of the whole batch go in blocks of a few
// GEMM register tiles, each block by one thread from start to end: per tile position one product
// (tiles x Cin) x (Cin x Cout) with the transformed weights (G g G^T, packed at plan time as the
// GEMM's B panels), then the output transform (A^T m A), again across channels, and the epilogue
// on the way into the output planes. Multiplications per output: 36/16 = 2.25 instead of 9 (2D),
// 144/32 = 4.5 instead of 27 (3D). conv_winograd also takes stride-1, unpadded 2D 4x4 kernels with
// F(4x4, 4x4) (7x7 tiles): the problems of phases.hpp, which winograd_applies does not name.
#include <cstddef>
#include <functional>
#include <memory>

#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/reference/conv_reference.hpp"
#include "ops/conv/sink.hpp"
#include "ops/gemm/bf16.hpp"
#include "ops/pool/reference/pool_reference.hpp"

namespace ecocpu::fast {

bool winograd_applies(const reference::ConvProblem& p);

// Output tiles of 4x4 (2x4x4 in 3D) over the whole batch, whichever tiles the kernel takes: with
// few of them the weight transform, larger than the weights themselves, is not repaid.
int64_t winograd_tile_count(const reference::ConvProblem& p);

// weight: (Cout, Cin, [3,] 3, 3) row-major -> per tile position (G g G^T's element), a matrix of
// Cin rows and Cout columns. row_scale: as prepare_conv's.
// bf16_tiles: for the tiles the bf16 kernel takes (the oracle of winograd_transform_weights_bf16).
PackedPanels winograd_transform_weights(const reference::ConvProblem& p, const float* weight,
                                        const float* row_scale = nullptr, bool bf16_tiles = false);

// The same in bf16 (Bf16Panels) for conv_winograd's bf16 tiles, rounded from the float transform
// without float panels.
Bf16Panels winograd_transform_weights_bf16(const reference::ConvProblem& p, const float* weight,
                                           const float* row_scale = nullptr);

// The channels-last copy of the input the kernel works from (padding and the tiles' overhang),
// in float or in bf16 (whose tiles are smaller).
PaddedInput winograd_input_layout(const reference::ConvProblem& p, bool bf16 = false);

// The scratch conv_winograd takes for `p`, or for a range of its images, on `threads` threads:
// per thread, a block of tiles' transformed inputs, products and outputs; shared, the input's
// channels-last copy unless in_channels_last.
ScratchSize winograd_scratch(const reference::ConvProblem& p, int threads, bool in_channels_last, bool bf16 = false);

// in_channels_last: `in` is already that copy (written by the convolution before, see
// ConvEpilogue::channels_last_out), so none is made.
void conv_winograd(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                   const ConvEpilogue& epilogue, float* out, bool in_channels_last = false);

// The same with bf16 products (ops/gemm/bf16.hpp): the transformed weights rounded once
// (winograd_transform_weights_bf16), the transformed inputs per block; float sums, output
// transform and epilogue. bf16 takes F(2, 3) along every axis, F(2x2, 3x3) in 2D and
// F(2x2x2, 3x3x3) in 3D: F(4x4, 3x3)'s transforms (coefficients up to 5 in, 8 out) amplify the
// operands' rounding about tenfold (a layer's outputs off by 2-3 %, RMS), F(2, 3)'s (0, 1 and 1/2)
// hardly at all. It multiplies 16/4 = 4 (2D) or 64/8 = 8 (3D) times per output instead of 2.25
// or 4.5, and keeps 16 or 64 transformed values per kernel instead of 36 or 144. Only where
// winograd_bf16_applies: a CPU with the bf16 kernel and an even number of input channels (the
// kernel's depth steps are pairs).
bool winograd_bf16_applies(const reference::ConvProblem& p);
// The bf16 tiles' input transform of one tile (x86/winograd_f23_input_bf16_avx512bf16.cpp; a CPU
// with AVX512-BF16 only): channel c of patch value (frame a, row i, column j) at
// patch[a * plane + i * row + j * c_n + c], frames 1 (2D) or 4 (3D); B^T d B of F(2, 3) along
// every axis of extent 4, each value rounded to bf16 (nearest, ties to even) and position
// (b * 4 + i) * 4 + j's c_n values stored at v + position * stride.
void winograd_f23_input_bf16(const float* patch, int64_t plane, int64_t row, int64_t c_n, int frames, uint16_t* v,
                             int64_t stride);
void conv_winograd(const reference::ConvProblem& p, const Bf16Panels& w, const float* in,
                   const ConvEpilogue& epilogue, float* out, bool in_channels_last = false);

// conv_winograd's tiles on the calling thread alone, for callers that share out the work
// themselves (the phases' pooled convolution: an image per thread, a band of tile rows at a
// time). Float weights; tiles in raster order over the batch, each image's tile rows of tiles_w()
// tiles, each tile row tile_height() output rows.
// conv_winograd followed by a 2D max pooling (conv2 + pool2; conv1 + pool1 on the phases), each
// image by one thread: its input (image_input(n, copy): image n in winograd_input_layout(p), made
// in `copy`, that many floats of the thread's scratch, where it has to be made), then a band of
// two tile rows at a time multiplied (WinogradTiles) into the image's channels-last products with
// the epilogue, the new rows pooled along w and the pooled rows they complete pooled along h into
// `out` (planes; with out_channels_last unpadded channels-last, bf16 under the epilogue's
// channels_last_bf16), so that a band is pooled from L2 and no chunk of products goes through
// memory. Float weights; the epilogue takes no residual or stride; `pool`: planes = batch x
// Cout, in_extent = p.out_extent. Images are the work items: a batch of fewer images than threads
// leaves threads idle.
using WinogradImageInput = std::function<const float*(int64_t n, float* copy)>;
ScratchSize winograd_max_pooled_scratch(const reference::ConvProblem& p, const PackedPanels& w,
                                        const reference::PoolProblem& pool, int threads);
void winograd_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const WinogradImageInput& image_input,
                         const ConvEpilogue& epilogue, const reference::PoolProblem& pool, float* out,
                         bool out_channels_last);
// The same from the batch's input: planes, or with in_channels_last the channels-last copy
// conv_winograd reads (handed over), which is then read in place.
void conv_winograd_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                              const ConvEpilogue& epilogue, const reference::PoolProblem& pool, float* out,
                              bool in_channels_last = false, bool out_channels_last = false);

class WinogradTiles {
 public:
  // `w` (winograd_transform_weights of p) is read in place: it must outlive this.
  WinogradTiles(const reference::ConvProblem& p, const PackedPanels& w);
  int64_t tiles_w() const;
  int64_t tile_height() const;
  int64_t thread_bytes() const;  // the scratch run() takes
  const PaddedInput& input_layout() const;  // winograd_input_layout(p)
  // Tiles [first, first + count), a block at a time, from `padded` (that layout) through `sink`;
  // `scratch`: thread_bytes() of 64-byte aligned memory.
  void run(const float* padded, int64_t first, int64_t count, std::byte* scratch, const ConvSink& sink) const;

 private:
  struct Blocks;
  std::shared_ptr<const Blocks> blocks_;
};

}  // namespace ecocpu::fast
