#include <doctest/doctest.h>

#include <cstdint>

#include "tensor/scratch.hpp"
#include "tensor/tensor.hpp"

using namespace ecocpu;

TEST_CASE("shape: element counts, printing and strides") {
  Shape s{2, 3, 4, 5, 6};
  CHECK(s.rank() == 5);
  CHECK(s.numel() == 720);
  CHECK(s.numel_from(2) == 120);
  CHECK(s.str() == "(2, 3, 4, 5, 6)");
  auto strides = contiguous_strides(s);
  CHECK(strides[0] == 360);
  CHECK(strides[3] == 6);
  CHECK(strides[4] == 1);
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{1, 2} != Shape{2, 1});
  CHECK(Shape{1, 2} == Shape{1, 2});
}

TEST_CASE("shape: misuse is a ShapeError") {
  CHECK_THROWS_AS(Shape({1, 2, 3, 4, 5, 6}), ShapeError);
  CHECK_THROWS_AS(Shape({1, -2}), ShapeError);
  Shape s{1, 2};
  CHECK_THROWS_AS(s[2], ShapeError);
  CHECK_THROWS_AS(s[-1], ShapeError);
  CHECK_THROWS_WITH_AS(require_rank(s, 4, "Conv"), "Conv needs a 4-D tensor, got (1, 2)",
                       ShapeError);
}

TEST_CASE("tensor: owned storage is zeroed and 64-byte aligned") {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t(Shape{n});
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % Tensor::kAlignment == 0);
    for (int64_t i = 0; i < n; ++i) CHECK(t.data()[i] == 0.0f);
    CHECK(t.owns_storage());
  }
}

TEST_CASE("tensor: views, reshapes and slices share memory; clones do not") {
  float buffer[24] = {};
  Tensor v = Tensor::view(buffer, Shape{2, 3, 4});
  CHECK_FALSE(v.owns_storage());
  v.data()[5] = 7.0f;
  CHECK(buffer[5] == 7.0f);

  Tensor r = v.reshaped(Shape{6, 4});
  CHECK(r.data() == buffer);
  CHECK_THROWS_AS(v.reshaped(Shape{5, 5}), ShapeError);

  Tensor s = v.slice0(1);
  CHECK(s.shape() == Shape{3, 4});
  CHECK(s.data() == buffer + 12);
  CHECK_THROWS_AS(v.slice0(2), ShapeError);

  Tensor c = v.clone();
  c.data()[5] = 1.0f;
  CHECK(buffer[5] == 7.0f);
  CHECK(c.owns_storage());

  CHECK_THROWS_AS(Tensor::view(nullptr, Shape{1}), ShapeError);
}

TEST_CASE("tensor: owned storage outlives the tensor it came from") {
  Tensor slice;
  {
    Tensor t(Shape{4, 2});
    t.fill(3.0f);
    slice = t.slice0(3);
  }
  CHECK(slice.data()[0] == 3.0f);
  CHECK(slice.data()[1] == 3.0f);
}

TEST_CASE("scratch: every buffer's bytes are counted while held, and the peak is kept") {
  const int64_t before = scratch_bytes();
  {
    ScratchBuffer a, b;
    float* p = a.reserve(1000);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
    CHECK(scratch_bytes() == before + 4000);
    CHECK(a.reserve(500) == p);  // never shrinks, nothing new counted
    CHECK(scratch_bytes() == before + 4000);
    a.reserve(2000);  // grows: the old block is released
    b.reserve(10);
    CHECK(scratch_bytes() == before + 8040);
    CHECK(scratch_peak_bytes() >= before + 8040);
  }
  CHECK(scratch_bytes() == before);
}
