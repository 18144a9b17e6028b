#include "tensor/shape.hpp"

#include "tensor/checked.hpp"

namespace ecocpu {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

void Shape::check_axis(int axis) const {
  if (axis < 0 || axis >= rank_) {
    throw ShapeError("axis " + std::to_string(axis) + " out of range for shape " + str());
  }
}

int64_t Shape::operator[](int axis) const {
  check_axis(axis);
  return dims_[axis];
}

int64_t& Shape::operator[](int axis) {
  check_axis(axis);
  return dims_[axis];
}

int64_t Shape::numel() const { return numel_from(0); }

int64_t Shape::numel_from(int axis) const {
  if (axis < 0 || axis > rank_) check_axis(axis);
  auto n = product_checked(std::span<const int64_t>(dims_.data() + axis, dims_.data() + rank_));
  if (!n) throw ShapeError("the shape " + str() + " has more elements than a 64-bit count holds");
  return *n;
}

void Shape::push_back(int64_t dim) {
  if (rank_ == kMaxRank) throw ShapeError("a shape has at most 5 dimensions");
  if (dim < 0) throw ShapeError("negative dimension " + std::to_string(dim));
  dims_[rank_++] = dim;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != other.dims_[i]) return false;
  }
  return true;
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + ")";
}

std::array<int64_t, Shape::kMaxRank> contiguous_strides(const Shape& shape) {
  std::array<int64_t, Shape::kMaxRank> strides{};
  int64_t stride = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

void require_rank(const Shape& shape, int rank, const std::string& what) {
  if (shape.rank() != rank) {
    throw ShapeError(what + " needs a " + std::to_string(rank) + "-D tensor, got " + shape.str());
  }
}

}  // namespace ecocpu
