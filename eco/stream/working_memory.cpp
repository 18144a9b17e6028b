#include "eco/stream/working_memory.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace ecocpu::stream {

MemoryKind parse_memory_kind(const std::string& name) {
  if (name == "paper") return MemoryKind::paper;
  if (name == "decay") return MemoryKind::decay;
  throw std::invalid_argument("unknown memory scheme '" + name + "' (paper or decay)");
}

const char* memory_kind_name(MemoryKind kind) { return kind == MemoryKind::paper ? "paper" : "decay"; }

namespace {

std::vector<int64_t> window(int64_t first, int64_t size) {
  std::vector<int64_t> frames(static_cast<std::size_t>(size));
  std::iota(frames.begin(), frames.end(), first);
  return frames;
}

// A uniform draw in [0, n): rejection keeps it unbiased, and unlike std::uniform_int_distribution
// its result is the same on every standard library.
uint64_t draw_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

}  // namespace

// A partial Fisher-Yates shuffle picks `count` distinct entries; the memory keeps time order.
std::vector<int64_t> PaperMemory::random_part(const std::vector<int64_t>& from, int64_t count) {
  std::vector<int64_t> pool = from;
  for (int64_t i = 0; i < count; ++i) {
    const auto j = static_cast<std::size_t>(i) + draw_below(rng_, pool.size() - static_cast<std::size_t>(i));
    std::swap(pool[static_cast<std::size_t>(i)], pool[j]);
  }
  pool.resize(static_cast<std::size_t>(count));
  return pool;
}

std::vector<int64_t> PaperMemory::update(int64_t first) {
  const std::vector<int64_t> fresh = window(first, size_);
  if (memory_.empty()) {
    memory_ = fresh;
    return memory_;
  }
  std::vector<int64_t> next = random_part(memory_, size_ / 2);
  const std::vector<int64_t> added = random_part(fresh, size_ - size_ / 2);
  next.insert(next.end(), added.begin(), added.end());
  std::sort(next.begin(), next.end());
  memory_ = std::move(next);
  return memory_;
}

std::vector<int64_t> decay_counts(int64_t windows, int64_t size) {
  if (windows == 1) return {size};
  std::vector<int64_t> counts;  // newest first: N/2, N/4, ...; the oldest repeats the one after it
  for (int64_t w = 0, k = size / 2; w + 1 < windows; ++w, k /= 2) counts.push_back(k);
  counts.push_back(counts.back());
  std::reverse(counts.begin(), counts.end());
  return counts;
}

std::vector<int64_t> thin_evenly(const std::vector<int64_t>& kept, int64_t count) {
  const auto len = static_cast<int64_t>(kept.size());
  std::vector<int64_t> thinned;
  for (int64_t i = 0; i < count; ++i) {
    // numpy's linspace: start + i * step, the last point exactly the stop.
    const double at = count == 1 ? 0.0
                      : i == count - 1 ? static_cast<double>(len - 1)
                                       : static_cast<double>(i) * (static_cast<double>(len - 1) / static_cast<double>(count - 1));
    thinned.push_back(kept[static_cast<std::size_t>(std::nearbyint(at))]);  // the default rounding mode: half to even
  }
  return thinned;
}

std::vector<int64_t> DecayMemory::update(int64_t first) {
  windows_.push_back(window(first, size_));
  if (static_cast<int>(windows_.size()) > kWindows) windows_.erase(windows_.begin());
  const std::vector<int64_t> counts = decay_counts(static_cast<int64_t>(windows_.size()), size_);
  std::vector<int64_t> memory;
  for (std::size_t w = 0; w < windows_.size(); ++w) {
    windows_[w] = thin_evenly(windows_[w], counts[w]);
    memory.insert(memory.end(), windows_[w].begin(), windows_[w].end());
  }
  return memory;
}

std::unique_ptr<WorkingMemory> make_working_memory(MemoryKind kind, int64_t size, uint64_t seed) {
  if (size < 1) throw std::invalid_argument("a working memory holds at least one frame");
  if (kind == MemoryKind::paper) return std::make_unique<PaperMemory>(size, seed);
  if (size % 16 != 0) {
    throw std::invalid_argument("--memory decay thins a window of N frames to N/2, N/4, N/8 and N/16: N = " +
                                std::to_string(size) + " is not a multiple of 16");
  }
  return std::make_unique<DecayMemory>(size);
}

}  // namespace ecocpu::stream
