#include "eco/video/frame_folder.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "eco/io/mapped_file.hpp"
#include "eco/video/frame_source.hpp"
#include "eco/video/image_file.hpp"

namespace ecocpu::video {

namespace {

// A folder is listed whole before anything is decoded; this bounds the time and the memory that
// takes (one number per matching name).
constexpr int64_t kMaxFolderEntries = 10'000'000;

// A frame number with more digits than an int64_t safely holds. Such a file is kept, as a number
// no gap-free numbering can reach, so that it is reported as a gap rather than skipped silently.
constexpr std::size_t kMaxNumberDigits = 18;
constexpr int64_t kOversizedNumber = std::numeric_limits<int64_t>::max();

[[noreturn]] void fail(const std::string& folder, const std::string& cause) {
  throw FileError(folder + ": " + cause);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A printf-style frame pattern split around its one integer field. Names are formatted here, not
// by printf, so nothing in the pattern ever reaches a format string.
class FramePattern {
 public:
  FramePattern(const std::string& folder, const std::string& pattern) : text_(pattern) {
    std::string* literal = &prefix_;
    bool has_field = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == '/') reject(folder, "names a path; it must be a file name without '/'");
      if (pattern[i] != '%') {
        *literal += pattern[i];
      } else if (i + 1 < pattern.size() && pattern[i + 1] == '%') {
        *literal += '%';
        ++i;
      } else {
        if (has_field) reject(folder, "has more than one integer field");
        i = parse_field(folder, i);
        has_field = true;
        literal = &suffix_;
      }
    }
    if (!has_field) reject(folder, "has no integer field (%d, %Nd or %0Nd)");
  }

  const std::string& text() const { return text_; }

  std::string name(int64_t number) const { return prefix_ + padded(std::to_string(number)) + suffix_; }

  // The number a file name stands for, if formatting that number gives exactly this name (so
  // 'img_1.jpg' is no frame of img_%05d.jpg); kOversizedNumber for numbers past 18 digits.
  std::optional<int64_t> number_of(std::string_view file_name) const {
    if (file_name.size() <= prefix_.size() + suffix_.size() || !file_name.starts_with(prefix_) ||
        !file_name.ends_with(suffix_)) {
      return std::nullopt;
    }
    const std::string_view field = file_name.substr(prefix_.size(), file_name.size() - prefix_.size() - suffix_.size());
    std::string_view digits = field.substr(std::min(field.find_first_not_of(" 0"), field.size() - 1));
    if (!std::all_of(digits.begin(), digits.end(), is_digit) || padded(digits) != field) return std::nullopt;
    if (digits.size() > kMaxNumberDigits) return kOversizedNumber;
    int64_t number = 0;
    for (char c : digits) number = number * 10 + (c - '0');
    return number;
  }

 private:
  [[noreturn]] void reject(const std::string& folder, const std::string& cause) const {
    fail(folder, "the frame pattern '" + text_ + "' " + cause);
  }

  // `%` [0] [N up to 2 digits] `d`, starting at `percent`; returns the position of the `d`.
  std::size_t parse_field(const std::string& folder, std::size_t percent) {
    std::size_t i = percent + 1;
    if (i < text_.size() && text_[i] == '0') {
      zero_padded_ = true;
      ++i;
    }
    const std::size_t width_start = i;
    while (i < text_.size() && is_digit(text_[i]) && i - width_start < 2) width_ = width_ * 10 + (text_[i++] - '0');
    if (i >= text_.size() || text_[i] != 'd') {
      reject(folder, "has a conversion at position " + std::to_string(percent + 1) +
                         " other than %d, %Nd or %0Nd (N up to 99); write %% for a literal %");
    }
    return i;
  }

  // The field printf writes for a number with these digits.
  std::string padded(std::string_view digits) const {
    std::string field(width_ > digits.size() ? width_ - digits.size() : 0, zero_padded_ ? '0' : ' ');
    field += digits;
    return field;
  }

  std::string text_;
  std::string prefix_;
  std::string suffix_;
  std::size_t width_ = 0;
  bool zero_padded_ = false;
};

struct DirectoryClose {
  void operator()(DIR* dir) const { closedir(dir); }
};
using Directory = std::unique_ptr<DIR, DirectoryClose>;

Directory open_folder(const std::string& folder) {
  // O_DIRECTORY: a FIFO or device is refused before it is opened, so nothing blocks on it.
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == ENOTDIR) fail(folder, "not a folder");
  if (fd < 0) fail(folder, std::string("cannot open: ") + std::strerror(errno));
  Directory dir(fdopendir(fd));
  if (!dir) {
    const int error = errno;
    ::close(fd);
    fail(folder, std::string("cannot open: ") + std::strerror(error));
  }
  return dir;
}

// The frame numbers present, sorted; frame 0 is left out (upstream numbers frames from 1).
struct FrameListing {
  std::vector<int64_t> numbers;
  std::string oversized_name;  // the name of a frame numbered kOversizedNumber, if any

  std::string name_of(const FramePattern& pattern, int64_t number) const {
    return number == kOversizedNumber ? oversized_name : pattern.name(number);
  }
};

FrameListing list_frames(const std::string& folder, const FramePattern& pattern) {
  Directory dir = open_folder(folder);
  FrameListing listing;
  for (int64_t entries = 1;; ++entries) {
    errno = 0;
    const dirent* entry = readdir(dir.get());
    if (!entry && errno != 0) fail(folder, std::string("cannot read: ") + std::strerror(errno));
    if (!entry) break;
    if (entries > kMaxFolderEntries) {
      fail(folder, "holds more than " + std::to_string(kMaxFolderEntries) + " entries, too many for a frame folder");
    }
    const std::optional<int64_t> number = pattern.number_of(entry->d_name);
    if (!number || *number == 0) continue;
    if (*number == kOversizedNumber) listing.oversized_name = entry->d_name;
    listing.numbers.push_back(*number);
  }
  std::sort(listing.numbers.begin(), listing.numbers.end());
  return listing;
}

// The frame count: the frames must be numbered 1..n without a gap, as upstream's loader, which
// opens frame k by formatting k, expects.
int64_t check_numbering(const std::string& folder, const FramePattern& pattern, const FrameListing& listing) {
  const std::vector<int64_t>& numbers = listing.numbers;
  if (numbers.empty()) fail(folder, "no frame matches " + pattern.text());
  if (numbers.front() != 1) {
    fail(folder, "frame 1 (" + pattern.name(1) + ") is missing; the first frame present is " +
                     listing.name_of(pattern, numbers.front()));
  }
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    const auto expected = static_cast<int64_t>(i) + 1;
    if (numbers[i] != expected) {
      fail(folder, pattern.name(expected) + " is missing but " + listing.name_of(pattern, numbers.back()) +
                       " exists");
    }
  }
  return static_cast<int64_t>(numbers.size());
}

std::vector<int64_t> distinct_indices(const std::string& folder, std::vector<int64_t> indices, int64_t frame_count) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  if (!indices.empty() && (indices.front() < 0 || indices.back() >= frame_count)) {
    throw std::out_of_range(folder + ": the frame sampler chose a frame outside 0.." +
                            std::to_string(frame_count - 1));
  }
  return indices;
}

std::string path_in(const std::string& folder, const std::string& name) {
  return folder.ends_with('/') ? folder + name : folder + "/" + name;
}

// Each frame is decoded on its own thread; an exception cannot leave an OpenMP region, so each is
// kept and the first in frame order thrown afterwards, whichever thread finished first.
std::map<int64_t, RgbImage> decode_frames(const std::string& folder, const FramePattern& pattern,
                                          const std::vector<int64_t>& indices) {
  const auto count = static_cast<int64_t>(indices.size());
  std::vector<RgbImage> images(indices.size());
  std::vector<std::exception_ptr> errors(indices.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < count; ++i) {
    try {
      images[i] = decode_image(*MappedFile::open(path_in(folder, pattern.name(indices[i] + 1))));
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  std::map<int64_t, RgbImage> by_index;
  for (std::size_t i = 0; i < indices.size(); ++i) by_index.emplace(indices[i], std::move(images[i]));
  return by_index;
}

// Whether a frame's file is there. Only "no such file" says it is not: a folder of that name, a
// file without read permission and the like are left to decode_image's opening to report.
bool present(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 || errno != ENOENT;
}

class FolderSource final : public FrameSource {
 public:
  FolderSource(const std::string& folder, const std::string& pattern, double fps)
      : folder_(folder), pattern_(folder, pattern), clock_(fps) {
    open_folder(folder_);  // refuses a path that is no folder
    if (!present(frame_path())) fail(folder_, "frame 1 (" + pattern_.name(1) + ") is missing");
  }

  std::optional<StreamFrame> next() override {
    ended_ = ended_ || !present(frame_path());
    if (ended_) return std::nullopt;
    return clock_.stamp(decode_image(*MappedFile::open(frame_path())));
  }

  double fps() const override { return clock_.fps(); }
  const std::string& name() const override { return folder_; }

 private:
  std::string frame_path() const { return path_in(folder_, pattern_.name(clock_.next_index() + 1)); }

  std::string folder_;
  FramePattern pattern_;
  FrameClock clock_;
  bool ended_ = false;  // a frame that appears after the gap is not read
};

}  // namespace

std::unique_ptr<FrameSource> open_folder_source(const std::string& folder, const std::string& pattern, double fps) {
  return std::make_unique<FolderSource>(folder, pattern, fps);
}

SampledFrames read_frame_folder(const std::string& folder, const std::string& pattern, const FrameSampler& sample) {
  const auto start = std::chrono::steady_clock::now();
  const FramePattern frame_pattern(folder, pattern);
  SampledFrames frames;
  frames.frame_count = check_numbering(folder, frame_pattern, list_frames(folder, frame_pattern));
  frames.indices = sample(frames.frame_count);
  frames.images = decode_frames(folder, frame_pattern, distinct_indices(folder, frames.indices, frames.frame_count));
  frames.decode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return frames;
}

}  // namespace ecocpu::video
