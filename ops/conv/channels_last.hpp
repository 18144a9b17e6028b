#pragma once
// A batch copied channels-last, (batch, d, h, w, C), with its zero padding made explicit, for the
// convolutions that read each position's channels as one contiguous run (tap GEMM, Winograd).
#include <array>
#include <cstdint>

#include "ops/conv/reference/conv_reference.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu::fast {

struct PaddedInput {
  std::array<int64_t, 3> extent{};  // padded d, h, w: the problem's padding leads, zeros trail
  std::array<int64_t, 3> lead{};    // the leading zeros on each axis (the problem's padding)
  std::array<int64_t, 3> inner{};   // the input's own d, h, w
  int64_t channels = 0;
  int64_t floats() const { return extent[0] * extent[1] * extent[2] * channels; }  // per image
  bool unpadded() const { return extent == inner; }
  // Where input position (d, h, w) of image n starts (its channel 0).
  int64_t at(int64_t n, int64_t d, int64_t h, int64_t w) const {
    return n * floats() + (((d + lead[0]) * extent[1] + h + lead[1]) * extent[2] + w + lead[2]) * channels;
  }
};

// At least the input plus the problem's padding on both sides; `reach` (per axis) asks for more
// trailing zeros, e.g. for Winograd tiles that overhang the output.
PaddedInput padded_input(const reference::ConvProblem& p, const std::array<int64_t, 3>& reach = {});
// Positions of `extent` with no borders, `channels` a position: a value as it is, channels
// innermost (what a pointwise convolution reads and writes).
PaddedInput unpadded_channels_last(const std::array<int64_t, 3>& extent, int64_t channels);

// A per-channel x * scale + shift, then max(x, 0) with relu, applied to the input on its way into
// the copy (a BatchNorm and ReLU that only the convolution reads); the padding stays zero.
struct ChannelAffine {
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool relu = false;
};

// in: (batch, C, d, h, w) -> out: (batch, padded d, h, w, C); parallel over rows. T: float, or
// uint16_t for a copy stored as bf16 (float_to_bf16 of each value).
template <class T>
void to_channels_last(const reference::ConvProblem& p, const PaddedInput& pi, const float* in, T* out,
                      const ChannelAffine* affine = nullptr);

// The copy a convolution works from: `in` itself when it is already one (handed over by the
// convolution before), else a copy of the planes `in` made in the shared zone of
// current_workspace(), `affine` applied on the way if given. The copy stays valid while the
// convolution that reads it runs (its own scratch is in the slabs), until the shared zone is next
// taken.
const float* channels_last_input(const reference::ConvProblem& p, const PaddedInput& pi, const float* in,
                                 bool in_channels_last, const ChannelAffine* affine = nullptr);
// The same copy made from `in` channels-last in another layout, `from` (its inside the problem's
// input, its channels the input's), `affine` applied on the way if given: an input BatchNorm on a
// value that stays channels-last (ECO's 3D head). Same shared bytes as channels_last_input's.
const float* channels_last_input_from(const reference::ConvProblem& p, const PaddedInput& pi, const PaddedInput& from,
                                      const float* in, const ChannelAffine* affine = nullptr);
// Either copy stored as bf16 (`from` null: `in` is planes), for a convolution reading a bf16 copy
// (run_conv_bf16_input); it takes no more shared bytes than the float copy.
const uint16_t* channels_last_input_bf16(const reference::ConvProblem& p, const PaddedInput& pi,
                                         const PaddedInput* from, const float* in, const ChannelAffine* affine);
// The shared bytes channels_last_input takes: the batch's copy, or none when it is handed over.
int64_t channels_last_input_bytes(const reference::ConvProblem& p, const PaddedInput& pi, bool in_channels_last);

// Zeros in every position of `batch` images' copies outside the input's own, for a producer that
// writes the inside itself (a convolution handing its output over channels-last); parallel.
// T: float, or uint16_t for a copy stored as bf16.
template <class T>
void zero_borders(const PaddedInput& pi, int64_t batch, T* out);

}  // namespace ecocpu::fast
