#pragma once
// A float32 tensor: a shape plus either owned 64-byte-aligned storage or a view of memory owned
// elsewhere (a memory-mapped checkpoint, a slice of a larger buffer). Always contiguous, row-major:
// every kernel in ops/ relies on that, so a view is a contiguous window, never a strided one.
#include <cstddef>
#include <memory>

#include "tensor/shape.hpp"

namespace ecocpu {

class Tensor {
 public:
  static constexpr std::size_t kAlignment = 64;

  Tensor() = default;
  // Owned, zero-filled storage.
  explicit Tensor(const Shape& shape);
  // Owned storage left uninitialised, for outputs a kernel overwrites completely.
  static Tensor uninitialized(const Shape& shape);
  // A non-owning view of `data`, which must hold shape.numel() floats and outlive the view.
  static Tensor view(float* data, const Shape& shape);
  // A view of read-only memory that keeps `owner` (e.g. a memory-mapped file) alive as long as
  // the tensor or a copy of it exists. Its data must not be written.
  static Tensor borrowed(std::shared_ptr<const void> owner, const float* data, const Shape& shape);

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int axis) const { return shape_[axis]; }
  int64_t numel() const { return shape_.numel(); }
  bool empty() const { return data_ == nullptr; }
  // Whether the tensor keeps its memory alive itself (owned or borrowed), unlike a plain view.
  bool owns_storage() const { return storage_ != nullptr; }

  float* data() { return data_; }
  // The shared owner of the memory (null for plain views).
  const std::shared_ptr<float>& storage() const { return storage_; }
  const float* data() const { return data_; }

  // The same memory seen with another shape of the same element count.
  Tensor reshaped(const Shape& shape) const;
  // Sub-tensor `index` along axis 0, sharing storage.
  Tensor slice0(int64_t index) const;

  Tensor clone() const;
  void fill(float value);

 private:
  std::shared_ptr<float> storage_;  // null for plain views
  float* data_ = nullptr;
  Shape shape_;
};

// The index of the first NaN or infinity among `count` floats, or -1 when all are finite. Inputs and
// weights from files are checked with it, so it reads the exponent bits block by block without a
// branch per element (a block is searched only when it holds a bad value).
int64_t first_non_finite(const float* data, int64_t count);

}  // namespace ecocpu
