#pragma once
// Shapes of up to five dimensions, NCHW / NCDHW order, with the errors every layer above relies on.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace ecocpu {

// Thrown for any misuse of shapes: wrong rank, mismatched sizes, out-of-range axes.
class ShapeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Shape {
 public:
  static constexpr int kMaxRank = 5;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  template <typename It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }

  int rank() const { return rank_; }
  int64_t operator[](int axis) const;
  int64_t& operator[](int axis);
  int64_t numel() const;
  // Product of the dimensions from `axis` on (the row-major stride of axis-1).
  int64_t numel_from(int axis) const;
  void push_back(int64_t dim);

  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }

  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }
  // "(1, 64, 112, 112)", the way PyTorch prints a size.
  std::string str() const;

 private:
  void check_axis(int axis) const;
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Row-major strides of a contiguous tensor with this shape.
std::array<int64_t, Shape::kMaxRank> contiguous_strides(const Shape& shape);

// Throws ShapeError naming `what` unless the shape has `rank` dimensions.
void require_rank(const Shape& shape, int rank, const std::string& what);

}  // namespace ecocpu
