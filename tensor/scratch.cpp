#include "tensor/scratch.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

namespace ecocpu {

namespace {

// At least one float, rounded up to whole 64-byte lines (aligned_alloc's contract), freed with
// std::free.
float* aligned_floats(int64_t floats) {
  const auto bytes = static_cast<std::size_t>((std::max<int64_t>(floats, 1) * 4 + 63) / 64 * 64);
  auto* data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!data) throw std::bad_alloc();
  return data;
}

std::atomic<int64_t> held_bytes{0}, peak_bytes{0};

void count_held(int64_t delta) {
  const int64_t now = held_bytes.fetch_add(delta) + delta;
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

int64_t scratch_bytes() { return held_bytes.load(); }
int64_t scratch_peak_bytes() { return peak_bytes.load(); }

std::shared_ptr<float> shared_floats(int64_t floats) { return std::shared_ptr<float>(aligned_floats(floats), std::free); }

ScratchBuffer::~ScratchBuffer() { release(); }

void ScratchBuffer::release() {
  std::free(data_);
  data_ = nullptr;
  count_held(-size_ * 4);
  size_ = 0;
}

float* ScratchBuffer::reserve(int64_t floats) {
  if (size_ < floats) {
    release();  // a failed allocation below leaves an empty buffer, not a freed one
    data_ = aligned_floats(floats);
    size_ = floats;
    count_held(size_ * 4);
  }
  return data_;
}

}  // namespace ecocpu
