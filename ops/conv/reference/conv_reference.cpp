#include "ops/conv/reference/conv_reference.hpp"

#include <algorithm>

namespace ecocpu::reference {

namespace {

// Adds weight * input over one kernel tap to a whole output plane (oh x ow). Looping over the
// output row innermost keeps the arithmetic plain but lets the compiler vectorise it.
void accumulate_tap(const ConvProblem& p, const float* in_channel, float w, int64_t kd, int64_t kh,
                    int64_t kw, int64_t od, float* out_plane) {
  const auto& win = p.window;
  const auto [id_, ih_, iw_] = p.in_extent;
  const int64_t oh_n = p.out_extent[1], ow_n = p.out_extent[2];
  int64_t id = od * win.stride[0] - win.pad[0] + kd;
  if (id < 0 || id >= id_) return;
  // The outputs whose input column ow * stride - pad + kw falls inside the row.
  const int64_t sw = win.stride[2], offset = win.pad[2] - kw;
  const int64_t ow_begin = offset > 0 ? (offset + sw - 1) / sw : 0;
  const int64_t last = iw_ - 1 + offset;  // highest ow * stride allowed
  const int64_t ow_end = last < 0 ? 0 : std::min(ow_n, last / sw + 1);
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    int64_t ih = oh * win.stride[1] - win.pad[1] + kh;
    if (ih < 0 || ih >= ih_) continue;
    const float* in_row = in_channel + (id * ih_ + ih) * iw_;
    float* out_row = out_plane + oh * ow_n;
    for (int64_t ow = ow_begin; ow < ow_end; ++ow) {
      out_row[ow] += w * in_row[ow * win.stride[2] - win.pad[2] + kw];
    }
  }
}

}  // namespace

void conv(const ConvProblem& p, const float* in, const float* weight, const float* bias, float* out) {
  const auto& k = p.window.kernel;
  const int64_t in_volume = p.in_extent[0] * p.in_extent[1] * p.in_extent[2];
  const int64_t plane = p.out_extent[1] * p.out_extent[2];
  const int64_t out_volume = p.out_extent[0] * plane;
  const int64_t kernel_volume = k[0] * k[1] * k[2];

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < p.batch; ++n) {
    for (int64_t oc = 0; oc < p.out_channels; ++oc) {
      float* out_channel = out + (n * p.out_channels + oc) * out_volume;
      const float b = bias ? bias[oc] : 0.0f;
      for (int64_t i = 0; i < out_volume; ++i) out_channel[i] = b;
      for (int64_t ic = 0; ic < p.in_channels; ++ic) {
        const float* in_channel = in + (n * p.in_channels + ic) * in_volume;
        const float* w = weight + (oc * p.in_channels + ic) * kernel_volume;
        for (int64_t od = 0; od < p.out_extent[0]; ++od) {
          for (int64_t kd = 0; kd < k[0]; ++kd) {
            for (int64_t kh = 0; kh < k[1]; ++kh) {
              for (int64_t kw = 0; kw < k[2]; ++kw) {
                accumulate_tap(p, in_channel, w[(kd * k[1] + kh) * k[2] + kw], kd, kh, kw, od,
                               out_channel + od * plane);
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace ecocpu::reference
