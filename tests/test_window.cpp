#include <doctest/doctest.h>

#include "ops/attrs.hpp"
#include "ops/window.hpp"

using namespace ecocpu;

TEST_CASE("window: convolution output sizes use floor") {
  CHECK(window_output_size(224, 7, 2, 3, Rounding::Floor) == 112);
  CHECK(window_output_size(28, 3, 1, 1, Rounding::Floor) == 28);
  CHECK(window_output_size(28, 3, 2, 1, Rounding::Floor) == 14);
  CHECK(window_output_size(7, 3, 2, 1, Rounding::Floor) == 4);
  CHECK(window_output_size(5, 5, 1, 0, Rounding::Floor) == 1);
  CHECK_THROWS_AS(window_output_size(4, 5, 1, 0, Rounding::Floor), ShapeError);
}

TEST_CASE("window: pooling output sizes follow PyTorch's ceil mode") {
  // BN-Inception: 112 -> 56 -> 28 with 3x3 stride-2 max pools.
  CHECK(window_output_size(112, 3, 2, 0, Rounding::Ceil) == 56);
  CHECK(window_output_size(56, 3, 2, 0, Rounding::Ceil) == 28);
  CHECK(window_output_size(28, 3, 2, 0, Rounding::Ceil) == 14);
  // Ceil adds a window that starts inside the input...
  CHECK(window_output_size(6, 3, 2, 0, Rounding::Ceil) == 3);
  CHECK(window_output_size(6, 3, 2, 0, Rounding::Floor) == 2);
  // ...but drops one that would start in the right padding: (5+2-3)/2 rounds up to 2, +1 = 3;
  // the third window starts at 4 - 1 = 3 < 5, so it stays. With stride 3, the last would start
  // at 6 - 1 = 5 >= 5 (in the right padding), so it goes.
  CHECK(window_output_size(5, 3, 2, 1, Rounding::Ceil) == 3);
  CHECK(window_output_size(5, 3, 3, 1, Rounding::Ceil) == 2);
  // A window larger than the input still yields one output in ceil mode (PyTorch agrees).
  CHECK(window_output_size(1, 3, 2, 0, Rounding::Ceil) == 1);
  CHECK_THROWS_AS(window_output_size(5, 0, 1, 0, Rounding::Ceil), ShapeError);
}

TEST_CASE("window: read from attributes in both spellings") {
  Attrs scalar{{"kernel_size", int64_t{3}}, {"pad", int64_t{1}}, {"stride", int64_t{2}}};
  AttrReader r1(scalar, 16);
  Window w = read_window(r1, 3);
  CHECK(w.kernel == std::array<int64_t, 3>{3, 3, 3});
  CHECK(w.describe() == "k3x3x3 s2 p1");

  Attrs per_axis{{"kernel_d", std::string("N/4")}, {"kernel_h", int64_t{7}},
                 {"kernel_w", int64_t{7}}, {"stride", int64_t{1}}};
  AttrReader r2(per_axis, 16);
  w = read_window(r2, 3);
  CHECK(w.kernel == std::array<int64_t, 3>{4, 7, 7});
  CHECK(w.pad == std::array<int64_t, 3>{0, 0, 0});
  r2.finish();

  Attrs two_d{{"kernel_h", int64_t{1}}, {"kernel_w", int64_t{3}}, {"pad_h", int64_t{0}},
              {"pad_w", int64_t{1}}};
  AttrReader r3(two_d, 1);
  w = read_window(r3, 2);
  CHECK(w.kernel == std::array<int64_t, 3>{1, 1, 3});
  CHECK(w.pad == std::array<int64_t, 3>{0, 0, 1});
  CHECK(w.describe() == "k1x3 s1 p0x1");
}

TEST_CASE("window: incomplete, conflicting or invalid attributes are errors") {
  auto read = [](Attrs a, int rank) {
    AttrReader r(a, 16);
    return read_window(r, rank);
  };
  CHECK_THROWS_WITH_AS(read({{"pad", int64_t{1}}}, 2), "missing attribute 'kernel_size'", AttrError);
  CHECK_THROWS_WITH_AS(read({{"kernel_size", int64_t{3}}, {"pad_h", int64_t{1}}}, 2),
                       "give all of pad_h, pad_w or 'pad'", AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", int64_t{3}}, {"kernel_h", int64_t{3}}}, 2), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", int64_t{0}}}, 2), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", int64_t{3}}, {"stride", int64_t{0}}}, 2), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", int64_t{3}}, {"pad", int64_t{-1}}}, 2), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", std::string("N/0")}}, 3), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", std::string("M/4")}}, 3), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", true}}, 3), AttrError);
  CHECK_THROWS_AS(read({{"kernel_size", 2.5}}, 3), AttrError);
}

TEST_CASE("attrs: segment expressions and unread attributes") {
  Attrs a{{"k1", std::string("N")}, {"k2", std::string("N/3")}, {"k3", std::string(" N / 2 ")},
          {"k4", std::string("12")}, {"k5", 4.0}, {"extra", int64_t{1}}};
  AttrReader r(a, 24);
  CHECK(r.get_int("k1") == 24);
  CHECK(r.get_int("k2") == 8);
  CHECK(r.get_int("k3") == 12);
  CHECK(r.get_int("k4") == 12);
  CHECK(r.get_int("k5") == 4);
  CHECK_THROWS_WITH_AS(r.finish(), "unknown attribute 'extra' (1)", AttrError);
  r.ignore("extra");
  CHECK_NOTHROW(r.finish());
  CHECK_THROWS_WITH_AS(r.get_int("absent"), "missing attribute 'absent'", AttrError);
}
