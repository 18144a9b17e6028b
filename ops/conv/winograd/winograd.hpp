#pragma once
// Winograd convolution for stride-1 3x3 (2D) and 3x3x3 (3D) kernels: F(4x4, 3x3) in space and
// F(2, 3) in time, i.e. 6x6 (2D) or 4x6x6 (3D) input tiles giving 4x4 or 2x4x4 outputs. The tiles
// of the whole batch are taken in blocks of one or two GEMM panel widths, each block by one thread
// from start to end: its input tiles are transformed (B^T d B along each axis) straight into GEMM
// panels, one product per tile position multiplies them by the transformed weights (G g G^T,
// packed at plan time), and the output transform (A^T m A) ends in the same epilogue as the other
// convolutions. Multiplications per output: 36/16 = 2.25 instead of 9 (2D), 144/32 = 4.5 instead
// of 27 (3D).
#include <array>
#include <vector>

#include "ops/conv/conv_gemm.hpp"
#include "ops/conv/reference/conv_reference.hpp"

namespace ecocpu::fast {

bool winograd_applies(const reference::ConvProblem& p);

// Output tiles over the whole batch: with few of them the weight transform, larger than the
// weights themselves, is not repaid.
int64_t winograd_tile_count(const reference::ConvProblem& p);

struct WinogradWeights {
  std::array<int64_t, 3> out_tile{1, 1, 1};  // m per axis (d, h, w)
  std::array<int64_t, 3> in_tile{1, 1, 1};   // alpha = m + r - 1 per axis
  std::vector<PackedMatrix> u;               // per tile position: (Cout x Cin)
};

// weight: (Cout, Cin, [3,] 3, 3) row-major.
WinogradWeights winograd_transform_weights(const reference::ConvProblem& p, const float* weight);

void conv_winograd(const reference::ConvProblem& p, const WinogradWeights& w, const float* in,
                   const ConvEpilogue& epilogue, float* out);

}  // namespace ecocpu::fast
