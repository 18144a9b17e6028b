#pragma once
// Finds the integer opcodes of pickles and rewrites them, for the checkpoint mutators. Sizes,
// strides, offsets and storage lengths are all such integers; byte-level mutation rarely turns
// one into a value that overflows, and scanning the bytes for 'J' or 'K' would mostly hit string
// contents, so the opcodes are walked as the unpickler reads them.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "interesting.hpp"

namespace ecocpu::fuzz {

using Bytes = std::vector<uint8_t>;

// One integer opcode (BININT, BININT1, BININT2 or LONG1 of at most 8 bytes) and its argument.
struct PickleInt {
  std::size_t at = 0;      // offset of the opcode
  std::size_t length = 0;  // opcode plus argument
  int64_t value = 0;
};

struct PickleScan {
  std::vector<PickleInt> ints;
  std::size_t end = 0;  // just past the last STOP walked
  int pickles = 0;      // how many STOPs were reached
};

namespace detail {

inline uint64_t little_endian(const Bytes& b, std::size_t at, std::size_t n) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b[at + i]) << (8 * i);
  return v;
}

// Bytes after opcode `op` at `at` (its argument), or nullopt for an opcode the unpickler does not
// know or an argument that runs off the end.
inline std::optional<std::size_t> argument_length(const Bytes& b, std::size_t at) {
  const auto counted = [&](std::size_t width) -> std::optional<std::size_t> {
    if (at + 1 + width > b.size()) return std::nullopt;
    const uint64_t n = little_endian(b, at + 1, width);
    if (n > b.size()) return std::nullopt;
    return width + static_cast<std::size_t>(n);
  };
  const auto lines = [&](int count) -> std::optional<std::size_t> {
    std::size_t pos = at + 1;
    for (int i = 0; i < count; ++i) {
      while (pos < b.size() && b[pos] != '\n') ++pos;
      if (pos++ >= b.size()) return std::nullopt;
    }
    return pos - at - 1;
  };
  switch (b[at]) {
    case 0x80: case 'K': case 'q': case 'h': return 1;
    case 'M': return 2;
    case 'J': case 'r': case 'j': return 4;
    case 0x95: case 'G': return 8;
    case 0x8a: case 0x8c: case 'U': case 'C': return counted(1);
    case 0x8b: case 'X': case 'T': case 'B': return counted(4);
    case 0x8d: case 0x8e: return counted(8);
    case 'I': case 'L': case 'F': case 'p': case 'g': return lines(1);
    case 'c': return lines(2);
    case '(': case ')': case ']': case '}': case 'N': case 0x88: case 0x89: case 't': case 0x85:
    case 0x86: case 0x87: case 'l': case 'a': case 'e': case 'd': case 's': case 'u': case 0x8f:
    case 0x90: case 0x94: case '0': case '1': case '2': case 'R': case 0x81: case 'b': case 'Q':
    case 0x93: case '.':
      return 0;
    default: return std::nullopt;
  }
}

inline std::optional<int64_t> int_value(const Bytes& b, std::size_t at, std::size_t arg) {
  switch (b[at]) {
    case 'K': return b[at + 1];
    case 'M': return static_cast<int64_t>(little_endian(b, at + 1, 2));
    case 'J': return static_cast<int32_t>(little_endian(b, at + 1, 4));
    case 0x8a: {
      const std::size_t n = arg - 1;
      if (n == 0 || n > 8) return std::nullopt;  // a big int: not a size
      uint64_t v = little_endian(b, at + 2, n);
      if (n < 8 && (b[at + 1 + n] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
      return static_cast<int64_t>(v);
    }
    default: return std::nullopt;
  }
}

}  // namespace detail

// Walks up to `max_pickles` pickles back to back from `start` (the legacy format has five).
inline PickleScan scan_pickles(const Bytes& b, std::size_t start, int max_pickles) {
  PickleScan scan;
  std::size_t pos = start;
  while (pos < b.size() && scan.pickles < max_pickles) {
    const auto arg = detail::argument_length(b, pos);
    if (!arg || pos + 1 + *arg > b.size()) break;
    if (auto v = detail::int_value(b, pos, *arg)) scan.ints.push_back({pos, 1 + *arg, *v});
    if (b[pos] == '.') {
      ++scan.pickles;
      scan.end = pos + 1;
    }
    pos += 1 + *arg;
  }
  return scan;
}

// The shortest opcode that pushes `v`: BININT1/BININT2 are unsigned, BININT a signed 32-bit
// value, and anything else a LONG1 of 8 bytes.
inline Bytes encode_pickle_int(int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  Bytes out;
  const auto put = [&](uint8_t op, int width) {
    out.push_back(op);
    for (int i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(u >> (8 * i)));
  };
  if (v >= 0 && v <= 0xFF) {
    put('K', 1);
  } else if (v >= 0 && v <= 0xFFFF) {
    put('M', 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    put('J', 4);
  } else {
    out.push_back(0x8a);
    put(8, 8);
  }
  return out;
}

// Rewrites one integer opcode of the pickles from `start` with an interesting value (the byte
// count may change). False when there is none to rewrite.
inline bool mutate_pickle_int(Bytes& b, std::size_t start, int max_pickles, Rng& rng) {
  const PickleScan scan = scan_pickles(b, start, max_pickles);
  if (scan.ints.empty()) return false;
  const PickleInt& target = scan.ints[rng.below(scan.ints.size())];
  const Bytes with = encode_pickle_int(interesting_int(rng, target.value));
  const auto first = b.begin() + static_cast<std::ptrdiff_t>(target.at);
  b.insert(b.erase(first, first + static_cast<std::ptrdiff_t>(target.length)), with.begin(), with.end());
  return true;
}

}  // namespace ecocpu::fuzz
