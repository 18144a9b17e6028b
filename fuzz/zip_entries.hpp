#pragma once
// Unpacks and repacks the stored (uncompressed) zip archives torch.save writes, so that the zip
// mutator can change an entry's length and still hand the fuzzer a well-formed archive whose
// directory agrees with its contents. Deliberately separate from eco/checkpoint/zip_archive: the
// mutator must not depend on the code under test. CRCs are written as 0: ecocpu does not read
// them.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ecocpu::fuzz {

struct ZipFileEntry {
  std::string name;
  std::vector<uint8_t> data;
};

namespace detail {

inline uint64_t read_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

inline void write_le(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace detail

// The entries in local-header order, or nullopt unless the bytes are a sequence of stored local
// entries (then the central directory, which is not needed).
inline std::optional<std::vector<ZipFileEntry>> unpack_zip(const uint8_t* data, std::size_t size) {
  constexpr std::size_t kHeader = 30;
  std::vector<ZipFileEntry> entries;
  std::size_t pos = 0;
  while (pos + kHeader <= size && detail::read_le(data + pos, 4) == 0x04034b50) {
    const uint8_t* h = data + pos;
    const auto method = detail::read_le(h + 8, 2), length = detail::read_le(h + 18, 4);
    const auto name_len = detail::read_le(h + 26, 2), extra_len = detail::read_le(h + 28, 2);
    const std::size_t begin = pos + kHeader + name_len + extra_len;
    if (method != 0 || begin > size || length > size - begin) return std::nullopt;
    entries.push_back({std::string(reinterpret_cast<const char*>(h + kHeader), name_len),
                       std::vector<uint8_t>(data + begin, data + begin + length)});
    pos = begin + length;
  }
  if (entries.empty()) return std::nullopt;
  return entries;
}

// Stored entries, each one's data 64-byte aligned like torch.save's (padding in the extra field),
// so the loader's in-place float32 path is reached.
inline std::vector<uint8_t> pack_zip(const std::vector<ZipFileEntry>& entries) {
  using detail::write_le;
  std::vector<uint8_t> out, directory;
  for (const auto& e : entries) {
    const std::size_t offset = out.size();
    const std::size_t unpadded = offset + 30 + e.name.size() + 4;
    const std::size_t padding = (64 - unpadded % 64) % 64;
    write_le(out, 0x04034b50, 4);
    write_le(out, 20, 2);  // version needed
    write_le(out, 0, 2);   // flags
    write_le(out, 0, 2);   // method: stored
    write_le(out, 0, 4);   // time, date
    write_le(out, 0, 4);   // crc
    write_le(out, e.data.size(), 4);
    write_le(out, e.data.size(), 4);
    write_le(out, e.name.size(), 2);
    write_le(out, 4 + padding, 2);
    out.insert(out.end(), e.name.begin(), e.name.end());
    write_le(out, 0x4246, 2);  // "FB", the id torch.save gives its padding field
    write_le(out, padding, 2);
    out.insert(out.end(), padding, 0);
    out.insert(out.end(), e.data.begin(), e.data.end());

    write_le(directory, 0x02014b50, 4);
    write_le(directory, 20, 2);  // version made by
    write_le(directory, 20, 2);
    write_le(directory, 0, 2);
    write_le(directory, 0, 2);
    write_le(directory, 0, 4);
    write_le(directory, 0, 4);
    write_le(directory, e.data.size(), 4);
    write_le(directory, e.data.size(), 4);
    write_le(directory, e.name.size(), 2);
    write_le(directory, 0, 2);  // extra
    write_le(directory, 0, 2);  // comment
    write_le(directory, 0, 4);  // disk, internal attributes
    write_le(directory, 0, 4);  // external attributes
    write_le(directory, offset, 4);
    directory.insert(directory.end(), e.name.begin(), e.name.end());
  }
  const std::size_t directory_offset = out.size();
  out.insert(out.end(), directory.begin(), directory.end());
  write_le(out, 0x06054b50, 4);
  write_le(out, 0, 4);  // disk numbers
  write_le(out, entries.size(), 2);
  write_le(out, entries.size(), 2);
  write_le(out, directory.size(), 4);
  write_le(out, directory_offset, 4);
  write_le(out, 0, 2);  // comment
  return out;
}

}  // namespace ecocpu::fuzz
