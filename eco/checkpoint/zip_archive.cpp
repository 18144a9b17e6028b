#include "eco/checkpoint/zip_archive.hpp"

#include <cstring>

namespace ecocpu {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kZip64End = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr std::size_t kEndRecordSize = 22;

struct DirectoryLocation {
  uint64_t entries = 0, offset = 0, size = 0;
};

std::size_t find_end_record(const MappedFile& file) {
  if (file.size() < kEndRecordSize) throw FileError(file.path() + ": too short to be a zip archive");
  const std::size_t lowest = file.size() > 0xFFFF + kEndRecordSize ? file.size() - 0xFFFF - kEndRecordSize : 0;
  for (std::size_t pos = file.size() - kEndRecordSize + 1; pos-- > lowest;) {
    const uint8_t* p = file.data() + pos;
    if (p[0] == 0x50 && p[1] == 0x4b && p[2] == 0x05 && p[3] == 0x06) return pos;
  }
  throw FileError(file.path() + ": zip archive without an end-of-directory record (truncated?)");
}

DirectoryLocation locate_directory(const MappedFile& file) {
  const std::size_t end = find_end_record(file);
  ByteReader r(file.data(), file.size(), file.path());
  r.seek(end + 10, "the end-of-directory record");
  DirectoryLocation loc;
  loc.entries = r.u16("the entry count");
  loc.size = r.u32("the directory size");
  loc.offset = r.u32("the directory offset");
  if (loc.entries != 0xFFFF && loc.size != 0xFFFFFFFF && loc.offset != 0xFFFFFFFF) return loc;

  // ZIP64: a locator just before the end record points at the 64-bit end record.
  if (end < 20) r.fail("ZIP64 archive without its locator");
  r.seek(end - 20, "the ZIP64 locator");
  if (r.u32("the ZIP64 locator") != kZip64Locator) r.fail("ZIP64 archive without its locator");
  r.u32("the ZIP64 locator");
  r.seek(r.u64("the ZIP64 end record offset"), "the ZIP64 end record");
  if (r.u32("the ZIP64 end record") != kZip64End) r.fail("bad ZIP64 end record");
  r.take(8 + 2 + 2 + 4 + 4 + 8, "the ZIP64 end record");
  loc.entries = r.u64("the ZIP64 entry count");
  loc.size = r.u64("the ZIP64 directory size");
  loc.offset = r.u64("the ZIP64 directory offset");
  return loc;
}

// Replaces 32-bit fields saturated at 0xFFFFFFFF with their ZIP64 extra-field values.
void apply_zip64_extra(ByteReader& r, std::size_t extra_end, ZipEntry& e, bool size_max,
                       bool compressed_max, bool offset_max) {
  while (r.position() + 4 <= extra_end) {
    const uint16_t id = r.u16("an extra field"), len = r.u16("an extra field");
    const std::size_t next = r.position() + len;
    if (next > extra_end) r.fail("extra field of entry '" + e.name + "' overruns its header");
    if (id == 0x0001) {
      if (size_max) e.size = r.u64("a ZIP64 size");
      if (compressed_max) e.compressed_size = r.u64("a ZIP64 size");
      if (offset_max) e.header_offset = r.u64("a ZIP64 offset");
    }
    r.seek(next, "an extra field");
  }
}

}  // namespace

bool ZipArchive::looks_like_zip(const MappedFile& file) {
  return file.size() >= 4 && std::memcmp(file.data(), "PK\x03\x04", 4) == 0;
}

ZipArchive::ZipArchive(const MappedFile& file) : file_(file) { read_directory(); }

void ZipArchive::read_directory() {
  const DirectoryLocation loc = locate_directory(file_);
  ByteReader r(file_.data(), file_.size(), file_.path());
  r.seek(loc.offset, "the zip directory");
  for (uint64_t i = 0; i < loc.entries; ++i) {
    if (r.u32("a directory entry") != kCentralHeader) r.fail("corrupt zip directory");
    r.take(6, "a directory entry");
    ZipEntry e;
    e.method = r.u16("a directory entry");
    r.take(8, "a directory entry");
    e.compressed_size = r.u32("a directory entry");
    e.size = r.u32("a directory entry");
    const uint16_t name_len = r.u16("a directory entry"), extra_len = r.u16("a directory entry"),
                   comment_len = r.u16("a directory entry");
    r.take(8, "a directory entry");
    e.header_offset = r.u32("a directory entry");
    const uint8_t* name = r.take(name_len, "an entry name");
    e.name.assign(reinterpret_cast<const char*>(name), name_len);
    const std::size_t extra_end = r.position() + extra_len;
    apply_zip64_extra(r, extra_end, e, e.size == 0xFFFFFFFF, e.compressed_size == 0xFFFFFFFF,
                      e.header_offset == 0xFFFFFFFF);
    r.seek(extra_end, "an extra field");
    r.take(comment_len, "an entry comment");
    by_name_.emplace(e.name, entries_.size());
    entries_.push_back(std::move(e));
  }
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

const uint8_t* ZipArchive::data(const ZipEntry& e) const {
  ByteReader r(file_.data(), file_.size(), file_.path());
  if (e.method != 0) r.fail("zip entry '" + e.name + "' is compressed; torch.save stores entries uncompressed");
  if (e.compressed_size != e.size) r.fail("zip entry '" + e.name + "' has inconsistent sizes");
  r.seek(e.header_offset, "a local header");
  if (r.u32("a local header") != kLocalHeader) r.fail("bad local header for zip entry '" + e.name + "'");
  r.take(22, "a local header");
  const uint16_t name_len = r.u16("a local header"), extra_len = r.u16("a local header");
  r.take(name_len + static_cast<std::size_t>(extra_len), "a local header");
  if (e.size > r.remaining()) r.fail("zip entry '" + e.name + "' runs past the end of the file");
  return file_.data() + r.position();
}

}  // namespace ecocpu
