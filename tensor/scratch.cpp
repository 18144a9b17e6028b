#include "tensor/scratch.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace ecocpu {

std::shared_ptr<float> shared_floats(int64_t floats) {
  const auto bytes = static_cast<std::size_t>((std::max<int64_t>(floats, 1) * 4 + 63) / 64 * 64);
  auto* data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!data) throw std::bad_alloc();
  return std::shared_ptr<float>(data, std::free);
}

ScratchBuffer::~ScratchBuffer() { std::free(data_); }

float* ScratchBuffer::reserve(int64_t floats) {
  if (size_ < floats) {
    std::free(data_);
    size_ = 0;
    const auto bytes = static_cast<std::size_t>((floats * 4 + 63) / 64 * 64);
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    size_ = floats;
  }
  return data_;
}

}  // namespace ecocpu
