#pragma once
// Values that break size arithmetic, shared by the structure-aware mutators: zero and one, sign
// flips, the edges of 8/16/32/64-bit integers, and numbers that overflow once multiplied by an
// element size or another dimension. Random bit flips almost never produce these.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace ecocpu::fuzz {

inline constexpr int64_t kInterestingInts[] = {
    0,
    1,
    -1,
    2,
    255,
    256,
    65535,
    65536,
    int64_t{1} << 20,
    (int64_t{1} << 20) + 1,
    INT32_MAX,
    int64_t{1} << 31,
    (int64_t{1} << 32) - 1,
    int64_t{1} << 32,
    int64_t{1} << 40,          // a storage far larger than any input
    (int64_t{1} << 61) + 1,    // times a 4- or 8-byte element: wraps
    int64_t{1} << 62,
    INT64_MAX / 4 + 1,
    INT64_MAX - 1,
    INT64_MAX,
    INT64_MIN,
    INT64_MIN + 1,
};

// Text forms for the text formats: also numbers that no int64 or double holds.
inline constexpr const char* kInterestingNumberTexts[] = {
    "0", "-1", "1", "2", "1048576", "1048577", "2147483648", "4294967296",
    "4611686018427387904", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
    "99999999999999999999", "1e999", "1.0e999", "-1.0e999", "0.0", "1.0e-999", "N/0", "N/1",
};

// Derived from libFuzzer's per-call seed, so that a mutation is reproducible.
class Rng {
 public:
  explicit Rng(unsigned seed) : engine_(seed) {}
  std::size_t below(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(engine_); }
  bool one_in(std::size_t n) { return below(n) == 0; }
  template <typename T, std::size_t N>
  const T& pick(const T (&values)[N]) { return values[below(N)]; }

 private:
  std::mt19937 engine_;
};

// An interesting constant, or a value near `current` (one off a storage length, doubled, negated,
// quartered: the neighbours of a real size are where off-by-one and overflow checks sit). The
// arithmetic wraps on purpose, in unsigned types so that UBSan does not stop the fuzzer itself.
inline int64_t interesting_int(Rng& rng, int64_t current) {
  if (rng.one_in(2)) return rng.pick(kInterestingInts);
  const auto u = static_cast<uint64_t>(current);
  switch (rng.below(5)) {
    case 0: return static_cast<int64_t>(u + 1);
    case 1: return static_cast<int64_t>(u - 1);
    case 2: return static_cast<int64_t>(u * 2);
    case 3: return static_cast<int64_t>(0 - u);
    default: return current / 4;
  }
}

}  // namespace ecocpu::fuzz
