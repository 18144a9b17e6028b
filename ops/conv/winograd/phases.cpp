#include "ops/conv/winograd/phases.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "ops/conv/channels_last.hpp"
#include "ops/conv/winograd/winograd.hpp"

namespace ecocpu::fast {

namespace {

constexpr int64_t kPhases = 4;  // (a, b): rows and columns even or odd

int64_t phase_taps(int64_t k) { return (k + 1) / 2; }

}  // namespace

bool phase_winograd_applies(const reference::ConvProblem& p) {
  const auto& w = p.window;
  const auto taps_ok = [](int64_t k) { return k >= 5 && k <= 8; };  // 3 or 4 taps a phase: F(4, 3), F(4, 4)
  return w.kernel[0] == 1 && w.stride == std::array<int64_t, 3>{1, 2, 2} && w.pad[0] == 0 && p.in_extent[0] == 1 &&
         p.out_extent[0] == 1 && taps_ok(w.kernel[1]) && taps_ok(w.kernel[2]);
}

reference::ConvProblem phase_problem(const reference::ConvProblem& p) {
  reference::ConvProblem q = p;
  q.in_channels = kPhases * p.in_channels;
  q.window.kernel = {1, phase_taps(p.window.kernel[1]), phase_taps(p.window.kernel[2])};
  q.window.stride = {1, 1, 1};
  q.window.pad = {0, 0, 0};
  q.in_extent = {1, p.out_extent[1] + q.window.kernel[1] - 1, p.out_extent[2] + q.window.kernel[2] - 1};
  return q;
}

PackedPanels phase_winograd_weights(const reference::ConvProblem& p, const float* weight, const float* row_scale) {
  const reference::ConvProblem q = phase_problem(p);
  const int64_t c_n = p.in_channels, kh = p.window.kernel[1], kw = p.window.kernel[2];
  const int64_t th = q.window.kernel[1], tw = q.window.kernel[2];
  std::vector<float> phased(static_cast<std::size_t>(q.out_channels * q.in_channels * th * tw), 0.0f);
  for (int64_t o = 0; o < p.out_channels; ++o)
    for (int64_t c = 0; c < c_n; ++c)
      for (int64_t u = 0; u < kh; ++u)
        for (int64_t v = 0; v < kw; ++v) {
          const int64_t channel = ((u % 2) * 2 + v % 2) * c_n + c;
          phased[static_cast<std::size_t>(((o * q.in_channels + channel) * th + u / 2) * tw + v / 2)] =
              weight[((o * c_n + c) * kh + u) * kw + v];
        }
  return winograd_transform_weights(q, phased.data(), row_scale);
}

namespace {

// Row y of image n's phases (phase_input).
void phase_row(const reference::ConvProblem& p, const PaddedInput& layout, const float* planes, int64_t n, int64_t y,
               float* out) {
  const int64_t c_n = p.in_channels, h_n = p.in_extent[1], w_n = p.in_extent[2];
  const int64_t cols = layout.extent[2], step = layout.channels;
  const int64_t pad_h = p.window.pad[1], pad_w = p.window.pad[2];
  // Columns x of phase column b that read input: 0 <= 2x + b - pad_w < w_n.
  const auto first_x = [&](int64_t b) { return std::max<int64_t>(0, (pad_w - b + 1) / 2); };
  const auto end_x = [&](int64_t b) {
    const int64_t last = w_n - 1 + pad_w - b;  // 2x may reach it
    return last < 0 ? 0 : std::min(cols, last / 2 + 1);
  };
  float* row = out + n * layout.floats() + y * cols * step;
  for (int64_t a = 0; a < 2; ++a) {
    const int64_t r = 2 * y + a - pad_h;
    const bool inside = r >= 0 && r < h_n;
    for (int64_t c = 0; c < c_n; ++c) {
      const float* src = inside ? planes + ((n * c_n + c) * h_n + r) * w_n : nullptr;
      for (int64_t b = 0; b < 2; ++b) {
        float* dst = row + (a * 2 + b) * c_n + c;
        const int64_t first = inside ? first_x(b) : cols, end = inside ? end_x(b) : cols;
        for (int64_t x = 0; x < first; ++x) dst[x * step] = 0.0f;
        for (int64_t x = first; x < end; ++x) dst[x * step] = src[2 * x + b - pad_w];
        for (int64_t x = std::max(first, end); x < cols; ++x) dst[x * step] = 0.0f;
      }
    }
  }
}

}  // namespace

void phase_input(const reference::ConvProblem& p, const PaddedInput& layout, const float* planes, float* out) {
  const int64_t rows = layout.extent[1];
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < p.batch * rows; ++item) phase_row(p, layout, planes, item / rows, item % rows, out);
}

namespace {

// The shared zone: the phases' copy.
int64_t phase_copy_floats(const reference::ConvProblem& p) {
  const reference::ConvProblem q = phase_problem(p);
  return q.batch * winograd_input_layout(q).floats();
}

}  // namespace

ScratchSize phase_winograd_scratch(const reference::ConvProblem& p, int threads) {
  ScratchSize size = winograd_scratch(phase_problem(p), threads, true);
  size.shared = workspace_round(phase_copy_floats(p) * static_cast<int64_t>(sizeof(float)));
  return size;
}

void conv_phase_winograd(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                         const ConvEpilogue& epilogue, float* out) {
  const reference::ConvProblem q = phase_problem(p);
  const PaddedInput layout = winograd_input_layout(q);
  float* phases = current_workspace().shared<float>("winograd phases", phase_copy_floats(p));
  phase_input(p, layout, in, phases);
  conv_winograd(q, w, phases, epilogue, out, true);
}

ScratchSize conv_phase_winograd_max_pooled_scratch(const reference::ConvProblem& p, const PackedPanels& w,
                                                   const reference::PoolProblem& pool, int threads) {
  return winograd_max_pooled_scratch(phase_problem(p), w, pool, threads);
}

void conv_phase_winograd_max_pooled(const reference::ConvProblem& p, const PackedPanels& w, const float* in,
                                    const ConvEpilogue& e, const reference::PoolProblem& pool, float* out,
                                    bool out_channels_last) {
  const reference::ConvProblem image = one_image(p);
  const PaddedInput layout = winograd_input_layout(phase_problem(image));
  const int64_t in_image = p.in_channels * p.in_extent[1] * p.in_extent[2];
  const auto phases_of = [&](int64_t n, float* copy) -> const float* {
    for (int64_t y = 0; y < layout.extent[1]; ++y) phase_row(image, layout, in + n * in_image, 0, y, copy);
    return copy;
  };
  winograd_max_pooled(phase_problem(p), w, phases_of, e, pool, out, out_channels_last);
}

}  // namespace ecocpu::fast
