#include "ops/conv/channels_last.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "ops/epilogue.hpp"
#include "ops/vector_bf16.hpp"
#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"

namespace ecocpu::fast {

PaddedInput padded_input(const reference::ConvProblem& p, const std::array<int64_t, 3>& reach) {
  PaddedInput pi;
  for (int a = 0; a < 3; ++a) pi.extent[a] = std::max(p.in_extent[a] + 2 * p.window.pad[a], reach[a]);
  pi.lead = p.window.pad;
  pi.inner = p.in_extent;
  pi.channels = p.in_channels;
  return pi;
}

namespace {

// Padded row r of a batch's copies (image n, padded depth dd and height hh, row-major) zeroed where
// it is padding: the whole row outside the input, else its leading and trailing positions.
// Returns where its interior starts, or nullptr for a row of padding only.
template <class T>
[[gnu::always_inline]] inline T* zero_row_borders(const PaddedInput& pi, int64_t r, T* dst) {
  const int64_t row = pi.extent[2] * pi.channels;
  const int64_t d = r / pi.extent[1] % pi.extent[0] - pi.lead[0], h = r % pi.extent[1] - pi.lead[1];
  if (d < 0 || d >= pi.inner[0] || h < 0 || h >= pi.inner[1]) {
    std::fill(dst, dst + row, T{0});
    return nullptr;
  }
  const int64_t left = pi.lead[2] * pi.channels, right = (pi.lead[2] + pi.inner[2]) * pi.channels;
  std::fill(dst, dst + left, T{0});
  std::fill(dst + right, dst + row, T{0});
  return dst + left;
}

// Sixteen channels from c0 of one input row (channel c's w_n values at src + c * plane) into the
// copy's interior (position w's channels at dst + w * c_n), each through its affine if given:
// sixteen positions at a time through a register transpose, the rest a position at a time (its
// sixteen values gathered, then one vector store), so that no value is stored alone. T: float, or
// uint16_t for a copy stored as bf16.
template <class T>
[[gnu::always_inline]] inline void sixteen_channels(const float* src, int64_t plane, int64_t w_n, int64_t c_n,
                                                    const Epilogue<V16>* ep, T* dst) {
  int64_t w0 = 0;
  for (; w0 + 16 <= w_n; w0 += 16) {
    V16 v[16];
    for (int k = 0; k < 16; ++k) std::memcpy(&v[k], src + k * plane + w0, sizeof(V16));
    transpose_16x16(v);
    for (int i = 0; i < 16; ++i) {
      store16(dst + (w0 + i) * c_n, ep ? (*ep)(v[i]) : v[i]);
    }
  }
  for (int64_t w = w0; w < w_n; ++w) {
    V16 x;
    for (int k = 0; k < 16; ++k) x[k] = src[k * plane + w];
    store16(dst + w * c_n, ep ? (*ep)(x) : x);
  }
}

// One padded row (image n, padded depth dd and height hh) of the channels-last copy.
template <class T>
[[gnu::always_inline]] inline void channels_last_row(const reference::ConvProblem& p, const PaddedInput& pi,
                                                     const float* in, int64_t n, int64_t dd, int64_t hh,
                                                     const ChannelAffine* affine, T* dst) {
  const int64_t c_n = pi.channels, row = pi.extent[2] * c_n;
  const int64_t d = dd - p.window.pad[0], h = hh - p.window.pad[1], w_n = p.in_extent[2];
  if (d < 0 || d >= p.in_extent[0] || h < 0 || h >= p.in_extent[1]) {
    std::fill(dst, dst + row, T{0});
    return;
  }
  const int64_t left = p.window.pad[2] * c_n;
  std::fill(dst, dst + left, T{0});
  std::fill(dst + left + w_n * c_n, dst + row, T{0});
  const int64_t plane = p.in_extent[0] * p.in_extent[1] * w_n;
  const float* src = in + n * c_n * plane + (d * p.in_extent[1] + h) * w_n;
  T* interior = dst + left;
  int64_t c0 = 0;
  for (; c0 + 16 <= c_n; c0 += 16) {
    Epilogue<V16> ep;
    if (affine) {
      for (int k = 0; k < 16; ++k) {
        ep.bias[k] = 0.0f;
        ep.mul[k] = affine->scale[c0 + k];
        ep.shift[k] = affine->shift[c0 + k];
        ep.lower[k] = epilogue_lower(affine->relu);
      }
    }
    sixteen_channels(src + c0 * plane, plane, w_n, c_n, affine ? &ep : nullptr, interior + c0);
  }
  if (affine) {
    for (int64_t c = c0; c < c_n; ++c) {
      const float* s = src + c * plane;
      const Epilogue<float> ep{0.0f, affine->scale[c], affine->shift[c], epilogue_lower(affine->relu)};
      for (int64_t w = 0; w < w_n; ++w) store1(interior + w * c_n + c, ep(s[w]));
    }
    return;
  }
  for (int64_t c = c0; c < c_n; ++c) {
    const float* s = src + c * plane;
    for (int64_t w = 0; w < w_n; ++w) store1(interior + w * c_n + c, s[w]);
  }
}

// channels_last_row for each element type, each built for every instruction set.
ECOCPU_VECTOR_CLONES
void cloned_row(const reference::ConvProblem& p, const PaddedInput& pi, const float* in, int64_t n, int64_t dd,
                int64_t hh, const ChannelAffine* affine, float* dst) {
  channels_last_row(p, pi, in, n, dd, hh, affine, dst);
}
ECOCPU_VECTOR_CLONES
void cloned_row(const reference::ConvProblem& p, const PaddedInput& pi, const float* in, int64_t n, int64_t dd,
                int64_t hh, const ChannelAffine* affine, uint16_t* dst) {
  channels_last_row(p, pi, in, n, dd, hh, affine, dst);
}

// Padded row r of the copies `pi` from `in` in the channels-last layout `from`: each position's
// channels through the affine (if given), sixteen at a time. T: float, or uint16_t for a copy
// stored as bf16.
template <class T>
[[gnu::always_inline]] inline void row_from_channels_last(const PaddedInput& pi, const PaddedInput& from,
                                                          const float* in, int64_t r, const ChannelAffine* affine,
                                                          T* dst) {
  T* interior = zero_row_borders(pi, r, dst);
  if (!interior) return;
  const int64_t c_n = pi.channels, w_n = pi.inner[2];
  const int64_t n = r / (pi.extent[0] * pi.extent[1]), d = r / pi.extent[1] % pi.extent[0] - pi.lead[0];
  const float* src = in + from.at(n, d, r % pi.extent[1] - pi.lead[1], 0);
  if (!affine && std::is_same_v<T, float>) {
    for (int64_t w = 0; w < w_n; ++w) std::memcpy(interior + w * c_n, src + w * from.channels, c_n * sizeof(float));
    return;
  }
  const float lower = epilogue_lower(affine && affine->relu);
  const auto scale = [&](int64_t c) { return affine ? affine->scale[c] : 1.0f; };
  const auto shift = [&](int64_t c) { return affine ? affine->shift[c] : 0.0f; };
  int64_t c0 = 0;
  for (; c0 + 16 <= c_n; c0 += 16) {
    Epilogue<V16> ep{V16{} + 0.0f, V16{} + 1.0f, V16{} + 0.0f, V16{} + lower};
    if (affine) ep = {V16{} + 0.0f, load16(affine->scale + c0), load16(affine->shift + c0), V16{} + lower};
    for (int64_t w = 0; w < w_n; ++w) store16(interior + w * c_n + c0, ep(load16(src + w * from.channels + c0)));
  }
  for (int64_t c = c0; c < c_n; ++c) {
    const Epilogue<float> ep{0.0f, scale(c), shift(c), lower};
    for (int64_t w = 0; w < w_n; ++w) store1(interior + w * c_n + c, ep(src[w * from.channels + c]));
  }
}

// row_from_channels_last for each element type, each built for every instruction set.
ECOCPU_VECTOR_CLONES
void cloned_row_from(const PaddedInput& pi, const PaddedInput& from, const float* in, int64_t r,
                     const ChannelAffine* affine, float* dst) {
  row_from_channels_last(pi, from, in, r, affine, dst);
}
ECOCPU_VECTOR_CLONES
void cloned_row_from(const PaddedInput& pi, const PaddedInput& from, const float* in, int64_t r,
                     const ChannelAffine* affine, uint16_t* dst) {
  row_from_channels_last(pi, from, in, r, affine, dst);
}

// The copy of `in` (planes, or channels-last in `from`) into the shared zone, as channels_last_input
// and channels_last_input_from make it.
template <class T>
const T* copy_into_shared(const reference::ConvProblem& p, const PaddedInput& pi, const PaddedInput* from,
                          const float* in, const ChannelAffine* affine) {
  T* copy = current_workspace().shared<T>("channels-last copy", p.batch * pi.floats());
  if (!from) {
    to_channels_last(p, pi, in, copy, affine);
    return copy;
  }
  if (from->inner != p.in_extent || from->channels != p.in_channels || pi.channels != p.in_channels) {
    throw std::logic_error("channels_last_input_from: a layout that does not hold the problem's input");
  }
  const int64_t rows = p.batch * pi.extent[0] * pi.extent[1];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) cloned_row_from(pi, *from, in, r, affine, copy + r * pi.extent[2] * pi.channels);
  return copy;
}

}  // namespace

template <class T>
void to_channels_last(const reference::ConvProblem& p, const PaddedInput& pi, const float* in, T* out,
                      const ChannelAffine* affine) {
  const int64_t rows = p.batch * pi.extent[0] * pi.extent[1];
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t hh = r % pi.extent[1], dd = r / pi.extent[1] % pi.extent[0], n = r / (pi.extent[0] * pi.extent[1]);
    cloned_row(p, pi, in, n, dd, hh, affine, out + r * pi.extent[2] * pi.channels);
  }
}

template void to_channels_last(const reference::ConvProblem&, const PaddedInput&, const float*, float*,
                               const ChannelAffine*);
template void to_channels_last(const reference::ConvProblem&, const PaddedInput&, const float*, uint16_t*,
                               const ChannelAffine*);

const float* channels_last_input(const reference::ConvProblem& p, const PaddedInput& pi, const float* in,
                                 bool in_channels_last, const ChannelAffine* affine) {
  return in_channels_last ? in : copy_into_shared<float>(p, pi, nullptr, in, affine);
}

const float* channels_last_input_from(const reference::ConvProblem& p, const PaddedInput& pi, const PaddedInput& from,
                                      const float* in, const ChannelAffine* affine) {
  return copy_into_shared<float>(p, pi, &from, in, affine);
}

const uint16_t* channels_last_input_bf16(const reference::ConvProblem& p, const PaddedInput& pi,
                                         const PaddedInput* from, const float* in, const ChannelAffine* affine) {
  return copy_into_shared<uint16_t>(p, pi, from, in, affine);
}

int64_t channels_last_input_bytes(const reference::ConvProblem& p, const PaddedInput& pi, bool in_channels_last) {
  return in_channels_last ? 0 : workspace_round(p.batch * pi.floats() * static_cast<int64_t>(sizeof(float)));
}

PaddedInput unpadded_channels_last(const std::array<int64_t, 3>& extent, int64_t channels) {
  PaddedInput l;
  l.extent = l.inner = extent;
  l.channels = channels;
  return l;
}

template <class T>
void zero_borders(const PaddedInput& pi, int64_t batch, T* out) {
  if (pi.unpadded()) return;
  const int64_t rows = batch * pi.extent[0] * pi.extent[1], row = pi.extent[2] * pi.channels;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) zero_row_borders(pi, r, out + r * row);
}

template void zero_borders(const PaddedInput&, int64_t, float*);
template void zero_borders(const PaddedInput&, int64_t, uint16_t*);

}  // namespace ecocpu::fast
