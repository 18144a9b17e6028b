#pragma once
// The directory of a zip archive (the container of PyTorch >= 1.6 checkpoints), read from a mapped
// file. Only stored (uncompressed) entries can be read, which is what torch.save writes; their
// bytes are used in place. ZIP64 records are understood.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "eco/io/mapped_file.hpp"

namespace ecocpu {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;          // 0 = stored
  uint64_t size = 0;            // uncompressed
  uint64_t compressed_size = 0;
  uint64_t header_offset = 0;   // of the local header
};

class ZipArchive {
 public:
  // Throws FileError naming the file for anything malformed.
  explicit ZipArchive(const MappedFile& file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  // The bytes of a stored entry, in the mapped file. Throws for compressed or out-of-range entries.
  const uint8_t* data(const ZipEntry& entry) const;

  static bool looks_like_zip(const MappedFile& file);

 private:
  void read_directory();
  const MappedFile& file_;
  std::vector<ZipEntry> entries_;
  // Entry index by name (the first of duplicates): a checkpoint with many storages looks one up
  // per storage, which a linear search would make quadratic.
  std::unordered_map<std::string, std::size_t> by_name_;
};

}  // namespace ecocpu
