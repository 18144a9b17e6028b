#pragma once
// Where a convolution's output goes. The tile-producing algorithms (the tap GEMM, Winograd) make
// tiles of output positions x channels and hand them, as runs of consecutive positions of one
// image, to a ConvSink, which applies the epilogue on the way to its destination: planes (a
// Concat's channel slice when the epilogue gives an image stride), a padded channels-last copy
// (adding a residual in planes to planes, channels-last to channels-last), or the frames of a 3D
// clip's channels-last copy.
#include <vector>

#include "ops/conv/conv_gemm.hpp"

namespace ecocpu::fast {

// `count` consecutive output positions of image `image`, from position `offset` in it (d, h, w
// flattened), whose channels start at tile + src (position q's at tile + src + q * ld).
struct OutputRun {
  int64_t src = 0;
  int64_t image = 0;
  int64_t offset = 0;
  int64_t count = 0;
};

class ConvSink {
 public:
  // A channels-last destination has its borders zeroed here (begin_channels_last_out).
  ConvSink(const reference::ConvProblem& p, const ConvEpilogue& e, float* out);

  // Channels [k0, k0 + k_n) of every run (column 0 of the tile is channel k0). Planes take sixteen
  // channels at a time over all the runs, so the rows a run reads stay in cache for the sixteen
  // planes they feed; a channels-last copy takes each position's channels as one run.
  void store(const float* tile, int64_t ld, const OutputRun* runs, int64_t run_count, int64_t k0, int64_t k_n) const;

  // Positions [pos0, pos0 + count) of the batch, rows of `tile`, cut into runs at image ends.
  void store_positions(const float* tile, int64_t ld, int64_t pos0, int64_t count, int64_t k0, int64_t k_n) const;

 private:
  reference::ConvProblem p_;
  float* out_;
  const float* residual_;
  int64_t out_stride_;
  std::vector<ChannelEpilogue> planes_epilogues_;
  ChannelsLastOut channels_last_;
};

}  // namespace ecocpu::fast
