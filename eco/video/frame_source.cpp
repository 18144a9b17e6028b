// The raw source, the clock of the sources without timestamps, and the raw format's parsing. The
// video and folder sources are in video_file.cpp and frame_folder.cpp.
#include "eco/video/frame_source.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace ecocpu::video {

namespace {

double checked_fps(double fps) {
  if (!std::isfinite(fps) || fps <= 0) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%g", fps);
    throw std::invalid_argument(std::string("the frame rate must be a positive number, not ") + shown);
  }
  return fps;
}

void check_raw_size(int64_t width, int64_t height) {
  if (!within_frame_bounds(width, height)) throw std::invalid_argument(frame_size_refusal(width, height));
}

// Waits until a non-blocking descriptor has data (or its end) to read.
void wait_readable(int fd, const std::string& name) {
  pollfd request{fd, POLLIN, 0};
  while (::poll(&request, 1, -1) < 0) {
    if (errno != EINTR) throw FileError(name + ": cannot wait for input: " + std::strerror(errno));
  }
}

// Reads `size` bytes, fewer only where the input ends: a pipe hands a frame over in pieces.
std::size_t read_fully(int fd, uint8_t* data, std::size_t size, const std::string& name) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::read(fd, data + done, size - done);
    if (got == 0) break;
    if (got > 0) {
      done += static_cast<std::size_t>(got);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_readable(fd, name);
    } else if (errno != EINTR) {
      throw FileError(name + ": cannot read: " + std::strerror(errno));
    }
  }
  return done;
}

void swap_red_and_blue(RgbImage& image) {
  for (std::size_t i = 0; i + 2 < image.pixels.size(); i += 3) std::swap(image.pixels[i], image.pixels[i + 2]);
}

class RawSource final : public FrameSource {
 public:
  RawSource(int fd, std::string name, const RawFormat& format, double fps)
      : fd_(fd), name_(std::move(name)), format_(format), clock_(fps) {
    check_raw_size(format.width, format.height);
  }

  std::optional<StreamFrame> next() override {
    RgbImage image = allocate_rgb_image(format_.width, format_.height, name_);
    const std::size_t size = image.pixels.size();
    const std::size_t got = read_fully(fd_, image.pixels.data(), size, name_);
    if (got == 0) return std::nullopt;
    if (got < size) {
      throw FileError(name_ + ": the stream ended inside frame " + std::to_string(clock_.next_index()) + " (" +
                      std::to_string(got) + " of " + std::to_string(size) + " bytes)");
    }
    if (format_.pixels == RawFormat::Pixels::bgr24) swap_red_and_blue(image);
    return clock_.stamp(std::move(image));
  }

  double fps() const override { return clock_.fps(); }
  const std::string& name() const override { return name_; }

 private:
  int fd_;
  std::string name_;
  RawFormat format_;
  FrameClock clock_;
};

// A side of a raw frame size: decimal digits only (no sign, no space). Up to 9 of them, which
// the bounds check then refuses when too large, so the value cannot overflow.
std::optional<int64_t> parse_side(std::string_view text) {
  constexpr std::size_t kMaxDigits = 9;
  if (text.empty() || text.size() > kMaxDigits) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

FrameClock::FrameClock(double fps) : fps_(checked_fps(fps)) {}

StreamFrame FrameClock::stamp(RgbImage image) {
  StreamFrame frame{next_index_, static_cast<double>(next_index_) / fps_, std::move(image)};
  ++next_index_;
  return frame;
}

std::unique_ptr<FrameSource> open_raw_source(int fd, const std::string& name, const RawFormat& format, double fps) {
  return std::make_unique<RawSource>(fd, name, format, fps);
}

RawFormat parse_raw_format(const std::string& size, const std::string& pixels) {
  const std::size_t x = size.find('x');
  const std::optional<int64_t> width = parse_side(std::string_view(size).substr(0, x));
  const std::optional<int64_t> height =
      x == std::string::npos ? std::nullopt : parse_side(std::string_view(size).substr(x + 1));
  if (!width || !height) {
    throw std::invalid_argument("the raw frame size '" + size + "' is not WIDTHxHEIGHT (e.g. 640x480)");
  }
  check_raw_size(*width, *height);
  RawFormat format{*width, *height, RawFormat::Pixels::bgr24};
  if (pixels == "rgb24") {
    format.pixels = RawFormat::Pixels::rgb24;
  } else if (pixels != "bgr24") {
    throw std::invalid_argument("unknown raw pixel format '" + pixels + "' (bgr24 or rgb24)");
  }
  return format;
}

}  // namespace ecocpu::video
