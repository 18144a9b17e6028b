#pragma once
// Opening and writing files that come from, or go to, places a user names. Every input is a
// regular file (a FIFO, socket or device is refused before anything can block on it, and a read
// is bounded), and every output is written to a temporary file beside its target and renamed over
// it once complete, so a failure never leaves a half-written file, and an output never replaces
// a device or one of the command's own inputs.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "eco/io/mapped_file.hpp"

namespace ecocpu {

// An open file descriptor that closes itself.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens `path` read-only if it is a regular file; returns it with its size. Throws FileError
// "<path>: <cause>" (missing, unreadable, a directory, a FIFO, socket or device).
struct RegularFile {
  FileDescriptor fd;
  std::size_t size;
};
RegularFile open_regular_file(const std::string& path);

// The whole file as text. Throws FileError when it is not a regular file, cannot be read, or holds
// more than `max_bytes` (`what` names the kind of file in that message, e.g. "definition file").
std::string read_text_file(const std::string& path, std::size_t max_bytes, const std::string& what);

// The lines of a text file's contents, each without its '\n' and a trailing '\r' (files written on
// Windows); a final newline does not start another line.
std::vector<std::string> text_lines(const std::string& text);

// Writes `path` atomically through `write`, which gets an open stream and returns false on a
// write error. Refuses a target that exists but is not a regular file. Throws FileError.
void write_file_atomically(const std::string& path, const std::function<bool(std::FILE*)>& write);

// Checks, before any work, that `output` can be written: its folder exists, it is not a device,
// FIFO or directory, and it names none of `inputs` (same device and inode, so links and other
// spellings of a path count too). Throws FileError.
void check_output_path(const std::string& output, const std::vector<std::string>& inputs);

}  // namespace ecocpu
