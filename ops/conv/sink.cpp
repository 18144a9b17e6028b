#include "ops/conv/sink.hpp"

#include <algorithm>
#include <cstring>

#include "ops/vector_clones.hpp"
#include "ops/vector_shuffles.hpp"

namespace ecocpu::fast {

namespace {

// One channel's run of positions (a vector V) through its epilogue into `out`.
template <class V>
[[gnu::always_inline]] inline void store_run_of(V x, const ChannelEpilogue& c, const float* residual, float* out) {
  const Epilogue<V> ep = broadcast<V>(c);
  if (residual) {
    V r;
    std::memcpy(&r, residual, sizeof(V));
    x = ep(x, r);
  } else {
    x = ep(x);
  }
  std::memcpy(out, &x, sizeof(V));
}

// Sixteen positions (rows of `src`, ld apart) x sixteen channels through a 16 x 16 transpose and
// their epilogues into the output planes: channel k's run of sixteen at out + k * plane.
[[gnu::always_inline]] inline void store_16x16(const float* src, int64_t ld, const ChannelEpilogue* ce,
                                               const float* residual, int64_t plane, float* out) {
  V16 v[16];
  for (int i = 0; i < 16; ++i) std::memcpy(&v[i], src + i * ld, sizeof(V16));
  transpose_16x16(v);
  for (int k = 0; k < 16; ++k) store_run_of(v[k], ce[k], residual ? residual + k * plane : nullptr, out + k * plane);
}

// Four positions x sixteen channels: channel k's run of four at out + k * plane.
[[gnu::always_inline]] inline void store_4x16(const float* src, int64_t ld, const ChannelEpilogue* ce,
                                              const float* residual, int64_t plane, float* out) {
  V16 v[4], r[4];
  for (int q = 0; q < 4; ++q) std::memcpy(&v[q], src + q * ld, sizeof(V16));
  runs_of_four(v, r);
  for (int k = 0; k < 16; ++k) {
    V4 x;
    std::memcpy(&x, run_of_four(r, k), sizeof(V4));
    store_run_of(x, ce[k], residual ? residual + k * plane : nullptr, out + k * plane);
  }
}

// The last one to three positions of a run x sixteen channels: each position's channels as one
// vector through `ep16` (channel k's epilogue in lane k), then written to their planes. Winograd's
// F(2, 3) tiles (bf16) give runs of two, which the scalar path took one channel at a time.
[[gnu::always_inline]] inline void store_few_x16(const float* src, int64_t ld, int64_t count, const Epilogue<V16>& ep16,
                                                 const float* residual, int64_t plane, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    V16 x;
    std::memcpy(&x, src + i * ld, sizeof(V16));
    if (residual) {
      V16 r;
      for (int k = 0; k < 16; ++k) r[k] = residual[k * plane + i];
      x = ep16(x, r);
    } else {
      x = ep16(x);
    }
    for (int k = 0; k < 16; ++k) out[k * plane + i] = x[k];
  }
}

// Sixteen channels' epilogues from `ce`, channel k's in lane k.
Epilogue<V16> lanes_of(const ChannelEpilogue* ce) {
  Epilogue<V16> ep;
  for (int k = 0; k < 16; ++k) {
    ep.bias[k] = ce[k].bias;
    ep.mul[k] = ce[k].mul;
    ep.shift[k] = ce[k].shift;
    ep.lower[k] = ce[k].lower;
  }
  return ep;
}

struct PlanesTarget {
  float* out;
  const float* residual;  // dense planes, like an output without a stride
  int64_t out_stride, channels, volume;
  const ChannelEpilogue* ce;
};

// One run's sixteen (or the last, fewer) channels from k0: blocks of sixteen positions, then of
// four, then single positions, through registers (ep16: the sixteen channels' epilogues, lane by
// lane); fewer channels element by element.
[[gnu::always_inline]] inline void store_planes_run(const PlanesTarget& t, const float* src, int64_t ld,
                                                    const OutputRun& run, int64_t k0, int64_t k_n,
                                                    const Epilogue<V16>& ep16) {
  float* out = t.out + run.image * t.out_stride + k0 * t.volume + run.offset;
  const float* residual = t.residual ? t.residual + (run.image * t.channels + k0) * t.volume + run.offset : nullptr;
  const ChannelEpilogue* ce = t.ce + k0;
  int64_t q = 0;
  if (k_n == 16) {
    for (; q + 16 <= run.count; q += 16) {
      store_16x16(src + q * ld, ld, ce, residual ? residual + q : nullptr, t.volume, out + q);
    }
    for (; q + 4 <= run.count; q += 4) {
      store_4x16(src + q * ld, ld, ce, residual ? residual + q : nullptr, t.volume, out + q);
    }
    store_few_x16(src + q * ld, ld, run.count - q, ep16, residual ? residual + q : nullptr, t.volume, out + q);
    return;
  }
  if (q == run.count) return;
  for (int64_t k = 0; k < k_n; ++k) {
    const float* r = residual ? residual + k * t.volume : nullptr;
    for (int64_t i = q; i < run.count; ++i) {
      out[k * t.volume + i] = r ? ce[k](src[i * ld + k], r[i]) : ce[k](src[i * ld + k]);
    }
  }
}

ECOCPU_VECTOR_CLONES
void store_planes(const PlanesTarget& t, const float* tile, int64_t ld, const OutputRun* runs, int64_t run_count,
                  int64_t k0, int64_t k_n) {
  for (int64_t j0 = 0; j0 < k_n; j0 += 16) {
    const int64_t j_n = std::min<int64_t>(16, k_n - j0);
    const Epilogue<V16> ep16 = j_n == 16 ? lanes_of(t.ce + k0 + j0) : Epilogue<V16>{};
    for (int64_t r = 0; r < run_count; ++r) {
      store_planes_run(t, tile + runs[r].src + j0, ld, runs[r], k0 + j0, j_n, ep16);
    }
  }
}

// Each run a row segment at a time: along w, positions are one layout position (`channels`
// values) apart in the destination.
void store_channels_last(const reference::ConvProblem& p, const ChannelsLastOut& target, float* out,
                         const float* tile, int64_t ld, const OutputRun* runs, int64_t run_count, int64_t k0,
                         int64_t k_n) {
  const auto& oe = p.out_extent;
  const int64_t volume = oe[0] * oe[1] * oe[2], step = target.layout->channels;
  for (int64_t r = 0; r < run_count; ++r) {
    OutputPosition o = OutputPosition::of(oe, runs[r].image * volume + runs[r].offset);
    for (int64_t q = 0; q < runs[r].count;) {
      const int64_t segment = std::min(runs[r].count - q, oe[2] - o.w);
      const float* src = tile + runs[r].src + q * ld;
      const int64_t at = target.at(o.n, o.d, o.h, o.w) + k0;
      auto* out_bf16 = reinterpret_cast<uint16_t*>(out) + at;
      if (target.residual) {
        const float* residual = target.residual + target.residual_layout->at(o.n, o.d, o.h, o.w) + k0;
        const int64_t r_step = target.residual_layout->channels;
        if (target.bf16) {
          store_channel_rows_residual(src, ld, segment, k_n, target.epilogues, k0, residual, r_step, out_bf16, step);
        } else {
          store_channel_rows_residual(src, ld, segment, k_n, target.epilogues, k0, residual, r_step, out + at, step);
        }
      } else if (target.bf16) {
        store_channel_rows_bf16(src, ld, segment, k_n, target.epilogues, k0, out_bf16, step);
      } else {
        store_channel_rows(src, ld, segment, k_n, target.epilogues, k0, out + at, step);
      }
      q += segment;
      o.w += segment - 1;
      o.next(oe);
    }
  }
}

}  // namespace

ConvSink::ConvSink(const reference::ConvProblem& p, const ConvEpilogue& e, float* out)
    : p_(p), out_(out), residual_(e.residual), out_stride_(output_image_stride(p, e)) {
  if (e.channels_last_out) {
    channels_last_ = begin_channels_last_out(p, e, out, true);
    return;
  }
  planes_epilogues_.resize(static_cast<std::size_t>(p.out_channels));
  for (int64_t k = 0; k < p.out_channels; ++k) planes_epilogues_[k] = channel_epilogue(e, k);
}

void ConvSink::store(const float* tile, int64_t ld, const OutputRun* runs, int64_t run_count, int64_t k0,
                     int64_t k_n) const {
  if (channels_last_.layout) {
    store_channels_last(p_, channels_last_, out_, tile, ld, runs, run_count, k0, k_n);
    return;
  }
  const int64_t volume = p_.out_extent[0] * p_.out_extent[1] * p_.out_extent[2];
  const PlanesTarget t{out_, residual_, out_stride_, p_.out_channels, volume, planes_epilogues_.data()};
  store_planes(t, tile, ld, runs, run_count, k0, k_n);
}

void ConvSink::store_positions(const float* tile, int64_t ld, int64_t pos0, int64_t count, int64_t k0,
                               int64_t k_n) const {
  constexpr int64_t kMostRuns = 64;
  const int64_t volume = p_.out_extent[0] * p_.out_extent[1] * p_.out_extent[2];
  OutputRun runs[kMostRuns];
  int64_t n = 0;
  for (int64_t q = 0; q < count;) {
    const int64_t pos = pos0 + q, offset = pos % volume, run = std::min(volume - offset, count - q);
    runs[n++] = {q * ld, pos / volume, offset, run};
    q += run;
    if (n == kMostRuns || q == count) {
      store(tile, ld, runs, n, k0, k_n);
      n = 0;
    }
  }
}

}  // namespace ecocpu::fast
