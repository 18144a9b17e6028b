#include "ops/conv/conv_fast.hpp"

#include <stdexcept>
#include <utility>

#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/pool/separable/pool_separable.hpp"
#include "tensor/scratch.hpp"

namespace ecocpu::fast {

bool conv_bf16_applies(const reference::ConvProblem& p, ConvAlgo algo) {
  if (algo == ConvAlgo::Winograd) return winograd_bf16_applies(p);
  if (algo == ConvAlgo::TapGemm) return tap_bf16_applies(p);
  return false;
}

PreparedConv prepare_conv(const reference::ConvProblem& p, ConvAlgo algo, const float* weight, const float* row_scale,
                          Precision precision) {
  PreparedConv c;
  c.problem = p;
  c.algo = algo;
  if (precision == Precision::bf16 && conv_bf16_applies(p, algo)) {
    c.precision = Precision::bf16;
    c.bf16 = algo == ConvAlgo::Winograd ? winograd_transform_weights_bf16(p, weight, row_scale)
                                        : tap_pack_weights_bf16(p, weight, row_scale);
  } else if (algo == ConvAlgo::Winograd) {
    c.winograd = winograd_transform_weights(p, weight, row_scale);
  } else if (algo == ConvAlgo::PhaseWinograd) {
    c.winograd = phase_winograd_weights(p, weight, row_scale);
  } else if (algo == ConvAlgo::TapGemm) {
    c.taps = tap_pack_weights(p, weight, row_scale);
  } else {
    c.gemm_weight = pack_conv_weights(p, weight, row_scale);
  }
  for (const auto& [data, bytes] : {std::pair<const void*, int64_t>{c.gemm_weight.data.get(), c.gemm_weight.bytes()},
                                    {c.winograd.data.get(), c.winograd.bytes()},
                                    {c.taps.data.get(), c.taps.bytes()},
                                    {c.bf16.data.get(), c.bf16.bytes()}}) {
    if (data) advise_huge_pages(data, bytes);
  }
  return c;
}

namespace {

// `p` is the prepared problem, possibly with another batch size.
void run_algo(const PreparedConv& c, const reference::ConvProblem& p, const float* in, const ConvEpilogue& e,
              float* out, bool in_channels_last) {
  if (in_channels_last && !takes_channels_last(c)) throw std::logic_error("this algorithm reads planes only");
  if (e.residual_channels_last && !e.channels_last_out) {
    throw std::logic_error("a channels-last residual is added to a channels-last output only");
  }
  if (e.channels_last_out && c.algo == ConvAlgo::Direct1x1Gemm) {
    conv_pointwise_channels_last(p, c.gemm_weight, in, e, out);
  } else if (c.algo == ConvAlgo::Winograd && c.precision == Precision::bf16) {
    conv_winograd(p, c.bf16, in, e, out, in_channels_last);
  } else if (c.algo == ConvAlgo::Winograd) {
    conv_winograd(p, c.winograd, in, e, out, in_channels_last);
  } else if (c.algo == ConvAlgo::PhaseWinograd) {
    conv_phase_winograd(p, c.winograd, in, e, out);
  } else if (c.algo == ConvAlgo::TapGemm && c.precision == Precision::bf16) {
    conv_taps(p, c.bf16, in, e, out, in_channels_last);
  } else if (c.algo == ConvAlgo::TapGemm) {
    conv_taps(p, c.taps, in, e, out, in_channels_last);
  } else {
    conv_gemm(p, c.algo, in, c.gemm_weight, e, out);
  }
}

}  // namespace

bool reads_bf16_input(const PreparedConv& c) { return c.algo == ConvAlgo::TapGemm && c.precision == Precision::bf16; }

void run_conv_bf16_input(const PreparedConv& c, const uint16_t* in, const ConvEpilogue& e, float* out) {
  if (!reads_bf16_input(c)) throw std::logic_error("a bf16 input is read by a bf16 tap GEMM convolution only");
  conv_taps(c.problem, c.bf16, in, e, out);
}

bool takes_channels_last(const PreparedConv& c) { return c.algo == ConvAlgo::Winograd || c.algo == ConvAlgo::TapGemm; }

bool writes_channels_last(const PreparedConv& c) { return c.algo != ConvAlgo::Im2colGemm; }

bool adds_channels_last_residual(const PreparedConv& c) {
  return c.algo == ConvAlgo::Winograd || c.algo == ConvAlgo::PhaseWinograd ||
         (c.algo == ConvAlgo::TapGemm && !is_pointwise(c.problem));
}

PaddedInput input_layout(const PreparedConv& c) {
  if (c.algo == ConvAlgo::Winograd) return winograd_input_layout(c.problem, c.precision == Precision::bf16);
  if (c.algo == ConvAlgo::TapGemm) return padded_input(c.problem);
  throw std::logic_error("this algorithm reads planes only");
}

void run_conv(const PreparedConv& c, const float* in, const ConvEpilogue& epilogue, float* out,
              bool in_channels_last) {
  run_algo(c, c.problem, in, epilogue, out, in_channels_last);
}

void run_conv_images(const PreparedConv& c, int64_t first, int64_t count, const float* in,
                     const ConvEpilogue& epilogue, float* out, bool in_channels_last) {
  const auto& p = c.problem;
  const int64_t in_image = in_channels_last ? input_layout(c).floats()
                                            : p.in_channels * p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t out_image = p.out_channels * p.out_extent[0] * p.out_extent[1] * p.out_extent[2];
  reference::ConvProblem part = p;
  part.batch = count;
  ConvEpilogue e = epilogue;
  if (e.residual) e.residual += first * (e.residual_channels_last ? e.residual_channels_last->floats() : out_image);
  if (e.channels_last_out && e.channels_last_frames) throw std::logic_error("a range of images is not a clip's frames");
  run_algo(c, part, in + first * in_image, e, out, in_channels_last);
}

ScratchSize conv_scratch(const PreparedConv& c, int threads, bool in_channels_last, bool in_bf16) {
  switch (c.algo) {
    case ConvAlgo::Winograd:
      return winograd_scratch(c.problem, threads, in_channels_last, c.precision == Precision::bf16);
    case ConvAlgo::TapGemm:
      return conv_taps_scratch(c.problem, threads, in_channels_last, c.precision == Precision::bf16, in_bf16);
    case ConvAlgo::PhaseWinograd: return phase_winograd_scratch(c.problem, threads);
    case ConvAlgo::Direct1x1Gemm: return conv_gemm_scratch(c.problem, c.algo, threads, true);
    case ConvAlgo::Im2colGemm: return conv_gemm_scratch(c.problem, c.algo, threads, false);
  }
  throw std::logic_error("conv_scratch: unknown algorithm");
}

int64_t conv_scratch_bytes(const PreparedConv& c, int threads, bool in_channels_last) {
  return conv_scratch(c, threads, in_channels_last).bytes();
}

namespace {

// Whether a batch shares out evenly enough among the threads as whole images, the band-wise
// kernels' work items.
bool images_fill_threads(int64_t batch, int threads) { return batch % threads == 0 || batch >= 2 * threads; }

}  // namespace

bool pools_band_by_band(const PreparedConv& c, const reference::PoolProblem& pool, int threads) {
  const auto& p = c.problem;
  const bool max_2d = pool.mode == reference::PoolMode::Max && pool.window.spatial_rank == 2 &&
                      p.window.kernel[0] == 1 && p.out_extent[0] == 1;
  const bool banded = c.algo == ConvAlgo::TapGemm || c.algo == ConvAlgo::PhaseWinograd ||
                      (c.algo == ConvAlgo::Winograd && c.precision == Precision::fp32);
  return max_2d && banded && images_fill_threads(p.batch, threads);
}

ScratchSize conv_pooled_scratch(const PreparedConv& c, const reference::PoolProblem& pool, int threads,
                                bool in_channels_last) {
  const auto& p = c.problem;
  if (pools_band_by_band(c, pool, threads)) {
    switch (c.algo) {
      case ConvAlgo::TapGemm:
        return conv_taps_max_pooled_scratch(p, pool, threads, in_channels_last, c.precision == Precision::bf16);
      case ConvAlgo::PhaseWinograd: return conv_phase_winograd_max_pooled_scratch(p, c.winograd, pool, threads);
      default: return winograd_max_pooled_scratch(p, c.winograd, pool, threads);
    }
  }
  // Chunks of images: the convolution on a range of them, then the pooling.
  ScratchSize size = max_size(conv_scratch(c, threads, in_channels_last), pool_separable_scratch(pool, threads));
  const bool max_2d = pool.mode == reference::PoolMode::Max && pool.window.spatial_rank == 2;
  if (max_2d && (c.algo == ConvAlgo::Winograd || c.algo == ConvAlgo::PhaseWinograd)) {
    size = max_size(size, max_pool_channels_last_scratch(pool, p.out_channels, threads));
  }
  return size;
}

}  // namespace ecocpu::fast
