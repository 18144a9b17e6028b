#pragma once
// Convolution as matrix multiplication, for 2D and 3D alike: per image, the output planes
// (Cout x out_volume) = weights (Cout x Cin*kernel_volume) x columns (Cin*kernel_volume x
// out_volume). A 1x1(x1), stride-1, unpadded convolution uses the input itself as the columns,
// all images' in one product (sgemm_packed_batched); others gather them (im2col / vol2col) into
// GEMM panels, a block of output positions and of rows at a time, so the buffers stay small even
// for ECO's 3D layers: large planes as independent (image, column block) items, one thread each,
// small ones several images at a time into one wider product that the threads share. The
// epilogue applies bias, residual, affine and ReLU.
#include <algorithm>
#include <array>
#include <string>

#include <vector>

#include "ops/epilogue.hpp"
#include "ops/conv/channels_last.hpp"
#include "ops/conv/reference/conv_reference.hpp"
#include "ops/gemm/gemm.hpp"

namespace ecocpu::fast {

enum class ConvAlgo { Direct1x1Gemm, Im2colGemm, Winograd, TapGemm, PhaseWinograd };
// A 1x1, stride-1, unpadded convolution: its output positions read input positions one apart,
// across rows and images too.
bool is_pointwise(const reference::ConvProblem& p);
// The same problem for one image of the batch: what kernels that take an image per thread run.
reference::ConvProblem one_image(const reference::ConvProblem& p);
const char* conv_algo_name(ConvAlgo algo);
// The algorithm the cost model prefers: 1x1 GEMM for pointwise convolutions, Winograd (unless not
// allowed) for stride-1 3x3(x3) ones with enough channels and output tiles to amortise the
// transforms, and on the input's phases for stride-2 5x5 to 8x8 ones (conv1) unless the tap GEMM
// takes bf16 products there (bf16_taps: its doubled rate and its band-wise pooling then match the
// phases' float Winograd), the tap GEMM for others whose kernel rows (kw taps x Cin, its A runs)
// fill a vector, conv1's 7 x 3 included, im2col otherwise.
ConvAlgo choose_conv_algo(const reference::ConvProblem& p, bool allow_winograd = true, bool bf16_taps = false);

// What a convolution adds after the product, and where it puts it. `residual` (if any) has the
// output's shape, dense. With out_image_stride the output is a channel slice of a larger tensor
// (a branch written straight into its Concat): each image's Cout planes start that many floats
// after the previous image's; 0 means Cout x volume. A residual and a stride never come together.
// With channels_last_out the output is written channels-last into that layout instead, zeros in
// its borders: the padded input copy of the convolution that alone reads it, which then skips
// making one (Winograd and tap GEMM only, without a stride; a residual only channels-last too,
// residual_channels_last).
struct ConvEpilogue {
  const float* bias = nullptr;
  const float* residual = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool relu = false;
  int64_t out_image_stride = 0;
  const PaddedInput* channels_last_out = nullptr;
  // With channels_last_out, > 0: the reader is 3D and reads this 2D output through ECO's 2D-to-3D
  // view, (N*T, C, H, W) -> (N, C, T, H, W); image i is then frame i % T of the layout's image i / T.
  int64_t channels_last_frames = 0;
  // With channels_last_out: the output's channels start at this channel of the layout, which then
  // holds more than the output's (a channel slice of a Concat's channels-last value).
  int64_t channels_last_channel = 0;
  // With channels_last_out (not a clip's frames): the output is stored as bf16 values
  // (float_to_bf16 of each float the epilogue gives), borders zero, `out` pointing at uint16_t
  // storage: a plan's bf16 value (graph/plan.hpp, DType::bf16). Only the channels-last sink, the
  // pointwise rows kernel and the pooled tap GEMM and Winograd write one.
  bool channels_last_bf16 = false;
  // With channels_last_out (not a clip's frames, the output's channels from the layout's first):
  // the residual is channels-last in this layout, its inside the output's shape and its
  // channels the output's, read position by position as the sink writes them (ECO's 3D head,
  // whose sums and their inputs stay channels-last). Null: a residual is dense planes.
  const PaddedInput* residual_channels_last = nullptr;
};

// Floats from one image's output to the next's under this epilogue.
int64_t output_image_stride(const reference::ConvProblem& p, const ConvEpilogue& e);

// The epilogue (ops/epilogue.hpp) of one output channel, for kernels that apply it outside the
// GEMM (Winograd's output transform, products of several images at once).
using ChannelEpilogue = Epilogue<float>;
ChannelEpilogue channel_epilogue(const ConvEpilogue& e, int64_t channel);
// The same on every lane of a vector.
template <typename V>
Epilogue<V> broadcast(const ChannelEpilogue& c) {
  return {V{} + c.bias, V{} + c.mul, V{} + c.shift, V{} + c.lower};
}

// The epilogue on a convolution's raw products (planes: batch x Cout planes of plane floats),
// written where the epilogue says (its out_image_stride); parallel over planes. For products that
// go through something else first (an average pooling moved after a 1x1 convolution).
void apply_conv_epilogue(const reference::ConvProblem& p, const ConvEpilogue& e, const float* products,
                         float* out);

// Every channel's epilogue as arrays, for outputs written channels-last (the epilogue then runs
// across channels, one vector lane each). No residual. The arrays are padded with zeros to a
// whole number of 16-channel vectors, so that a vector of them can be loaded at any 16th channel.
struct ChannelEpilogues {
  std::vector<float> bias, mul, shift, lower;
};
ChannelEpilogues channel_epilogues(const ConvEpilogue& e, int64_t channels);
// dst[k] = channel (k0 + k)'s epilogue of src[k], for k < n; dst may be src.
void store_channels(const float* src, int64_t n, const ChannelEpilogues& ce, int64_t k0, float* dst);
// The same stored as bf16 (float_to_bf16 of each).
void store_channels_bf16(const float* src, int64_t n, const ChannelEpilogues& ce, int64_t k0, uint16_t* dst);
// The same for `rows` positions, src's ld and dst's dst_step floats (or bf16 values) apart: e.g.
// a run of positions along w of a channels-last output. In place if src == dst and ld == dst_step.
void store_channel_rows(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce, int64_t k0,
                        float* dst, int64_t dst_step);
// The same with a residual added before each channel's scale: channel k of row r's at
// residual + r * residual_step + k. Stored as floats or as bf16.
void store_channel_rows_residual(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce,
                                 int64_t k0, const float* residual, int64_t residual_step, float* dst, int64_t dst_step);
void store_channel_rows_residual(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce,
                                 int64_t k0, const float* residual, int64_t residual_step, uint16_t* dst,
                                 int64_t dst_step);
void store_channel_rows_bf16(const float* src, int64_t ld, int64_t rows, int64_t n, const ChannelEpilogues& ce,
                             int64_t k0, uint16_t* dst, int64_t dst_step);

// An output position (image n, d, h, w) of a batch whose positions are numbered image-major:
// found from its number once, then stepped to the next, which is cheaper than dividing per position.
struct OutputPosition {
  int64_t n, d, h, w;
  static OutputPosition of(const std::array<int64_t, 3>& extent, int64_t pos) {
    const int64_t plane = extent[1] * extent[2], volume = extent[0] * plane, o = pos % volume;
    return {pos / volume, o / plane, o / extent[2] % extent[1], o % extent[2]};
  }
  void next(const std::array<int64_t, 3>& extent) {
    if (++w < extent[2]) return;
    w = 0;
    if (++h < extent[1]) return;
    h = 0;
    if (++d < extent[0]) return;
    d = 0;
    ++n;
  }
};

// Where a convolution writes output position (image n, d, h, w) in its channels-last output, and
// the epilogue each channel gets on the way.
struct ChannelsLastOut {
  const PaddedInput* layout = nullptr;
  int64_t frames = 0;
  ChannelEpilogues epilogues;
  int64_t channel = 0;  // the layout's channel that is the output's first
  bool bf16 = false;     // stored as bf16 (ConvEpilogue::channels_last_bf16): `at` counts uint16_t
  const float* residual = nullptr;  // ConvEpilogue::residual_channels_last's
  const PaddedInput* residual_layout = nullptr;
  int64_t at(int64_t n, int64_t d, int64_t h, int64_t w) const {
    return (frames ? layout->at(n / frames, n % frames + d, h, w) : layout->at(n, d, h, w)) + channel;
  }
};
// Checks a channels-last output against the problem (no stride, the layout's inside equal to the
// output's, its channels holding the output's from channels_last_channel on, frames dividing the
// batch; a residual only where `takes_residual`, channels-last as residual_channels_last says;
// std::logic_error otherwise), zeroes the borders of `out` and returns where positions go and
// with which epilogues.
ChannelsLastOut begin_channels_last_out(const reference::ConvProblem& p, const ConvEpilogue& e, float* out,
                                        bool takes_residual = false);

// The weights (Cout, Cin * kd * kh * kw), row-major, packed once for the GEMM kernel; row_scale:
// as prepare_conv's.
PackedMatrix pack_conv_weights(const reference::ConvProblem& p, const float* weight, const float* row_scale = nullptr);

// A pointwise (1x1, stride 1, unpadded) convolution writing its output channels-last (required:
// ConvEpilogue::channels_last_out), for a 1x1 layer whose output only a Winograd or tap GEMM
// convolution reads, so that its input copy is never made from planes. The same product over the
// batch as the planar case, each panel's products (channels x 32 positions) turned into runs of
// channels by 16 x 16 in-register transposes on their way out.
void conv_pointwise_channels_last(const reference::ConvProblem& p, const PackedMatrix& weight, const float* in,
                                  const ConvEpilogue& epilogue, float* out);

// The scratch conv_gemm takes for `p` with `algo` (Direct1x1Gemm or Im2colGemm) on `threads`
// threads, and conv_pointwise_channels_last's too when `channels_last_out`. A smaller batch (a
// range of images) takes no more.
ScratchSize conv_gemm_scratch(const reference::ConvProblem& p, ConvAlgo algo, int threads, bool channels_last_out);

// in: (batch, Cin, d, h, w); out (batch, Cout, od, oh, ow) overwritten.
void conv_gemm(const reference::ConvProblem& p, ConvAlgo algo, const float* in,
               const PackedMatrix& weight, const ConvEpilogue& epilogue, float* out);

}  // namespace ecocpu::fast
