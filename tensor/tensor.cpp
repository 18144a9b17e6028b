#include "tensor/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace ecocpu {

namespace {

std::shared_ptr<float> allocate_aligned(int64_t count, bool zero) {
  // A count past what any allocation can hold must not wrap around into a small buffer.
  if (count > static_cast<int64_t>((SIZE_MAX - Tensor::kAlignment) / sizeof(float))) throw std::bad_alloc();
  std::size_t bytes = static_cast<std::size_t>(std::max<int64_t>(count, 1)) * sizeof(float);
  bytes = (bytes + Tensor::kAlignment - 1) / Tensor::kAlignment * Tensor::kAlignment;
  void* p = std::aligned_alloc(Tensor::kAlignment, bytes);
  if (!p) throw std::bad_alloc();
  if (zero) std::memset(p, 0, bytes);
  return std::shared_ptr<float>(static_cast<float*>(p), [](float* q) { std::free(q); });
}

}  // namespace

Tensor::Tensor(const Shape& shape) : storage_(allocate_aligned(shape.numel(), true)), shape_(shape) {
  data_ = storage_.get();
}

Tensor Tensor::uninitialized(const Shape& shape) {
  Tensor t;
  t.storage_ = allocate_aligned(shape.numel(), false);
  t.data_ = t.storage_.get();
  t.shape_ = shape;
  return t;
}

Tensor Tensor::view(float* data, const Shape& shape) {
  if (data == nullptr) throw ShapeError("view of a null pointer");
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::borrowed(std::shared_ptr<const void> owner, const float* data, const Shape& shape) {
  if (data == nullptr || owner == nullptr) throw ShapeError("borrowed view of a null pointer");
  Tensor t;
  // Aliasing constructor: shares ownership of `owner`, points at `data`.
  t.storage_ = std::shared_ptr<float>(std::const_pointer_cast<void>(owner), const_cast<float*>(data));
  t.data_ = t.storage_.get();
  t.shape_ = shape;
  return t;
}

Tensor Tensor::reshaped(const Shape& shape) const {
  if (shape.numel() != numel()) {
    throw ShapeError("cannot reshape " + shape_.str() + " to " + shape.str());
  }
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice0(int64_t index) const {
  if (rank() == 0 || index < 0 || index >= shape_[0]) {
    throw ShapeError("slice " + std::to_string(index) + " out of range for " + shape_.str());
  }
  Tensor t = *this;
  t.shape_ = Shape(shape_.begin() + 1, shape_.end());
  t.data_ = data_ + index * t.shape_.numel();
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  if (numel() > 0) std::memcpy(t.data(), data_, static_cast<std::size_t>(numel()) * sizeof(float));
  return t;
}

void Tensor::fill(float value) { std::fill(data_, data_ + numel(), value); }

int64_t first_non_finite(const float* data, int64_t count) {
  constexpr int64_t kBlock = 4096;
  constexpr uint32_t kExponent = 0x7F800000u;  // all ones: an infinity or a NaN
  for (int64_t start = 0; start < count; start += kBlock) {
    const int64_t end = std::min(count, start + kBlock);
    uint32_t bad = 0;
    for (int64_t i = start; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, data + i, sizeof bits);
      bad |= static_cast<uint32_t>((bits & kExponent) == kExponent);
    }
    if (bad == 0) continue;
    for (int64_t i = start; i < end; ++i) {
      if (!std::isfinite(data[i])) return i;
    }
  }
  return -1;
}

}  // namespace ecocpu
