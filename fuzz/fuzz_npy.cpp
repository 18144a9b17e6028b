// .npy clips: the header dict parser, the shape's element count and the data length check.
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "eco/io/npy.hpp"
#include "interesting.hpp"
#include "refusal.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using namespace ecocpu::fuzz;

struct NpyParts {
  uint8_t major = 1;
  std::string header;
  std::vector<uint8_t> data;
};

std::optional<NpyParts> split_npy(const uint8_t* p, std::size_t size) {
  if (size < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0 || p[6] < 1 || p[6] > 3) return std::nullopt;
  NpyParts parts;
  parts.major = p[6];
  const std::size_t width = parts.major == 1 ? 2 : 4, start = 8 + width;
  if (size < start) return std::nullopt;
  std::size_t length = 0;
  for (std::size_t i = 0; i < width; ++i) length |= static_cast<std::size_t>(p[8 + i]) << (8 * i);
  if (length > size - start) return std::nullopt;
  parts.header.assign(reinterpret_cast<const char*>(p + start), length);
  parts.data.assign(p + start + length, p + size);
  return parts;
}

std::vector<uint8_t> join_npy(const NpyParts& parts) {
  std::vector<uint8_t> out{0x93, 'N', 'U', 'M', 'P', 'Y', parts.major, 0};
  const int width = parts.major == 1 ? 2 : 4;
  for (int i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(parts.header.size() >> (8 * i)));
  out.insert(out.end(), parts.header.begin(), parts.header.end());
  out.insert(out.end(), parts.data.begin(), parts.data.end());
  return out;
}

// A new 'shape' tuple: mostly the old rank with one or more dimensions made interesting,
// sometimes a rank of 0 or 6 (both refused). Returns the element count when it is small enough
// to give the data that many floats, so that the shape also passes the length check.
std::optional<std::size_t> rewrite_shape(std::string& header, Rng& rng) {
  const std::size_t key = header.find("'shape'");
  const std::size_t open = header.find('(', key == std::string::npos ? 0 : key);
  const std::size_t close = header.find(')', open == std::string::npos ? 0 : open);
  if (key == std::string::npos || open == std::string::npos || close == std::string::npos) return std::nullopt;
  std::vector<int64_t> dims;
  for (std::size_t pos = open + 1; pos < close;) {
    std::size_t used = 0;
    try {
      dims.push_back(std::stoll(header.substr(pos, close - pos), &used));
    } catch (const std::exception&) {
      break;
    }
    pos += used;
    while (pos < close && (header[pos] == ',' || header[pos] == ' ')) ++pos;
  }
  if (rng.one_in(8)) dims.resize(rng.one_in(2) ? 0 : 6, 1);
  for (auto& d : dims) {
    if (rng.one_in(2)) d = interesting_int(rng, d);
  }
  std::string tuple = "(";
  uint64_t numel = 1;
  bool small = true;
  for (int64_t d : dims) {
    tuple += std::to_string(d) + (dims.size() == 1 ? ",)" : ", ");
    small = small && d >= 0 && d < (1 << 16) && numel * static_cast<uint64_t>(d) < (1 << 16);
    if (small) numel *= static_cast<uint64_t>(d);
  }
  if (dims.size() != 1) tuple += ")";
  header.replace(open, close + 1 - open, tuple);
  if (!small) return std::nullopt;
  return static_cast<std::size_t>(numel);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = ecocpu::MappedFile::from_bytes("fuzz.npy", std::vector<uint8_t>(data, data + size));
    (void)ecocpu::parse_npy(*file);
  } catch (const std::exception& e) {
    report_refusal(e);
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng rng(seed);
  auto parts = split_npy(data, size);
  if (!parts || rng.one_in(3)) return LLVMFuzzerMutate(data, size, max_size);
  const auto numel = rewrite_shape(parts->header, rng);
  if (numel && !rng.one_in(4)) parts->data.resize(*numel * sizeof(float), 0);
  const std::vector<uint8_t> out = join_npy(*parts);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
