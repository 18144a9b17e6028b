#include "eco/io/mapped_file.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "eco/io/files.hpp"

namespace ecocpu {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  RegularFile file = open_regular_file(path);
  if (file.size == 0) throw FileError(path + ": the file is empty");
  void* p = mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
  if (p == MAP_FAILED) throw FileError(path + ": cannot map: " + std::strerror(errno));
  return std::shared_ptr<const MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), file.size));
}

std::shared_ptr<const MappedFile> MappedFile::from_bytes(std::string source, std::vector<uint8_t> bytes) {
  auto file = std::shared_ptr<MappedFile>(new MappedFile(std::move(source), nullptr, bytes.size()));
  file->owned_ = std::move(bytes);
  file->data_ = file->owned_.data();
  file->mapped_ = false;
  return file;
}

MappedFile::~MappedFile() {
  if (mapped_) munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::release_pages(const void* begin, std::size_t bytes) const {
  if (!mapped_) return;
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t first = (start + page - 1) / page * page, end = (start + bytes) / page * page;
  // Only whole pages inside the range: the pages at its ends may hold a neighbour's bytes.
  if (first < end) madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED);
}

namespace {

struct MappedRange {
  std::shared_ptr<const MappedFile> file;
  const void* begin;
  std::size_t bytes;
  ~MappedRange() { file->release_pages(begin, bytes); }
};

}  // namespace

std::shared_ptr<const void> MappedFile::range_owner(std::shared_ptr<const MappedFile> file, const void* begin,
                                                   std::size_t bytes) {
  return std::make_shared<MappedRange>(MappedRange{std::move(file), begin, bytes});
}

void ByteReader::fail(const std::string& cause) const { throw FileError(source_ + ": " + cause); }

void ByteReader::seek(std::size_t pos, const char* what) {
  if (pos > size_) fail(std::string("truncated: ") + what + " lies past the end of the file");
  pos_ = pos;
}

const uint8_t* ByteReader::take(std::size_t n, const char* what) {
  if (n > size_ - pos_) fail(std::string("truncated while reading ") + what);
  const uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

uint16_t ByteReader::u16(const char* what) {
  const uint8_t* p = take(2, what);
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

uint32_t ByteReader::u32(const char* what) {
  const uint8_t* p = take(4, what);
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t ByteReader::u64(const char* what) {
  const uint64_t lo = u32(what);
  const uint64_t hi = u32(what);
  return lo | (hi << 32);
}

}  // namespace ecocpu
