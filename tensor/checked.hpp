#pragma once
// Checked 64-bit arithmetic for every size, offset, stride and count that comes from a file, a
// flag or a definition: a crafted value must turn into an error, never wrap around into a small
// number that passes a bounds check. The plain forms return nullopt on overflow, so that a reader
// can fail with its own file and field; the throwing forms name `what` in an OverflowError.
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

namespace ecocpu {

class OverflowError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline std::optional<int64_t> mul_checked(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<int64_t> add_checked(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The product of `values`, or nullopt when it (or any partial product) overflows.
inline std::optional<int64_t> product_checked(std::span<const int64_t> values) {
  int64_t p = 1;
  for (int64_t v : values) {
    auto next = mul_checked(p, v);
    if (!next) return std::nullopt;
    p = *next;
  }
  return p;
}

[[noreturn]] inline void throw_overflow(const std::string& what) {
  throw OverflowError(what + " overflows a 64-bit integer");
}

inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  auto r = mul_checked(a, b);
  if (!r) throw_overflow(what);
  return *r;
}

inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  auto r = add_checked(a, b);
  if (!r) throw_overflow(what);
  return *r;
}

}  // namespace ecocpu
