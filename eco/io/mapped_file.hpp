#pragma once
// A read-only memory map of a whole file, and a bounds-checked reader over it. Checkpoint and .npy
// tensors are viewed in place where their alignment allows, so the map is shared by every tensor
// that points into it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ecocpu {

// A file that cannot be read (as a checkpoint, an array, ...); the message starts with the path.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MappedFile {
 public:
  // Throws FileError ("<path>: cannot open ...") for missing, unreadable or empty files.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  // The same interface over bytes in memory (tests and fuzzers); `source` names them in errors.
  static std::shared_ptr<const MappedFile> from_bytes(std::string source, std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // An owner for a tensor viewing [begin, begin + bytes) of `file`: it keeps the file mapped, and
  // when the last view lets go (the tensor was packed and released) it hands the range's whole
  // pages back to the kernel, so a loaded checkpoint does not stay resident beside its packed
  // copy. Pages are read again from the file if another view still reads them.
  static std::shared_ptr<const void> range_owner(std::shared_ptr<const MappedFile> file, const void* begin,
                                                 std::size_t bytes);

  // Drops the whole pages inside the range from the process's memory (range_owner's release).
  void release_pages(const void* begin, std::size_t bytes) const;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  MappedFile(std::string path, const uint8_t* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  std::size_t size_;
  bool mapped_ = true;
  std::vector<uint8_t> owned_;  // from_bytes' copy
};

// A bounds-checked little-endian reader over a byte range; errors name the file and what was
// being read.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, std::size_t size, std::string source)
      : data_(data), size_(size), source_(std::move(source)) {}

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return size_ - pos_; }
  bool at_end() const { return pos_ == size_; }
  void seek(std::size_t pos, const char* what);
  const uint8_t* take(std::size_t n, const char* what);
  uint8_t u8(const char* what) { return *take(1, what); }
  uint16_t u16(const char* what);
  uint32_t u32(const char* what);
  uint64_t u64(const char* what);
  [[noreturn]] void fail(const std::string& cause) const;
  const std::string& source() const { return source_; }

 private:
  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string source_;
};

}  // namespace ecocpu
