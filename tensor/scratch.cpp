#include "tensor/scratch.hpp"

#include <algorithm>
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

}  // namespace

std::shared_ptr<float> shared_floats(int64_t floats) { return std::shared_ptr<float>(aligned_floats(floats), std::free); }

ScratchBuffer::~ScratchBuffer() { std::free(data_); }

float* ScratchBuffer::reserve(int64_t floats) {
  if (size_ < floats) {
    std::free(data_);
    data_ = nullptr;  // a failed allocation below leaves an empty buffer, not a freed one
    size_ = 0;
    data_ = aligned_floats(floats);
    size_ = floats;
  }
  return data_;
}

}  // namespace ecocpu
