#include "eco/io/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ecocpu {

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "a special file";
}

[[noreturn]] void fail_errno(const std::string& path, const char* action, int err) {
  throw FileError(path + ": " + action + ": " + std::strerror(err));
}

}  // namespace

RegularFile open_regular_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) fail_errno(path, "cannot open", errno);
  RegularFile file{FileDescriptor(fd), 0};
  struct stat st {};
  if (fstat(fd, &st) != 0) fail_errno(path, "cannot read", errno);
  if (!S_ISREG(st.st_mode)) {
    throw FileError(path + ": is " + kind_of(st.st_mode) + ", not a regular file");
  }
  file.size = static_cast<std::size_t>(st.st_size);
  return file;
}

std::vector<std::string> text_lines(const std::string& text) {
  std::vector<std::string> lines;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

std::string read_text_file(const std::string& path, std::size_t max_bytes, const std::string& what) {
  RegularFile file = open_regular_file(path);
  if (file.size > max_bytes) {
    throw FileError(path + ": " + std::to_string(file.size) + " bytes, more than a " + what + " may hold (" +
                    std::to_string(max_bytes) + ")");
  }
  // Read up to one byte past the limit: the file may have grown since fstat.
  std::string text(file.size + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(file.fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno(path, "cannot read", errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > max_bytes) throw FileError(path + ": more than a " + what + " may hold (" + std::to_string(max_bytes) + " bytes)");
  text.resize(got);
  return text;
}

void write_file_atomically(const std::string& path, const std::function<bool(std::FILE*)>& write) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    throw FileError(path + ": cannot write: the target is " + kind_of(st.st_mode) + ", not a regular file");
  }
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) fail_errno(path, "cannot write", errno);
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    const int err = errno;
    ::close(fd);
    std::remove(temp.c_str());
    fail_errno(path, "cannot write", err);
  }
  // mkstemp makes the file 0600; give it the mode a plain create would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  errno = 0;
  bool ok = ::fchmod(fd, 0666 & ~mask) == 0 && write(f);
  int err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && std::rename(temp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (ok) return;
  std::remove(temp.c_str());
  fail_errno(path, "cannot write", err != 0 ? err : EIO);
}

void check_output_path(const std::string& output, const std::vector<std::string>& inputs) {
  const std::filesystem::path folder = std::filesystem::path(output).parent_path();
  std::error_code ec;
  if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
    const bool exists = std::filesystem::exists(folder, ec);
    throw FileError(output + ": cannot write: " + folder.string() + (exists ? " is not a folder" : " does not exist"));
  }
  struct stat out {};
  if (::stat(output.c_str(), &out) != 0) return;  // a new file cannot be an input
  if (!S_ISREG(out.st_mode)) {
    throw FileError(output + ": cannot write: the target is " + kind_of(out.st_mode) + ", not a regular file");
  }
  for (const auto& input : inputs) {
    struct stat in {};
    if (::stat(input.c_str(), &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
      throw FileError(output + ": refusing to write the output over an input (" + input + ")");
    }
  }
}

}  // namespace ecocpu
