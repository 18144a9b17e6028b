#pragma once
// Every frame of one input, in order, one at a time as it arrives: the input of `ecocpu stream`.
// Each kind of source is beside the sampled reader it shares its decoding with: the video source
// in video_file.cpp (decode_video's decoder core), the folder source in frame_folder.cpp
// (read_frame_folder's patterns), the raw source in frame_source.cpp.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "eco/io/mapped_file.hpp"
#include "eco/video/image.hpp"

namespace ecocpu::video {

struct StreamFrame {
  int64_t index = 0;  // 0-based, presentation order
  // Seconds since the first frame. Video: (pts - the first frame's pts) * time_base, with
  // FFmpeg's best-effort pts; a frame without one comes 1 / fps after the frame before. Folder
  // and raw: index / fps.
  double time_s = 0;
  RgbImage image;
};

// One per input; not thread-safe, but it may be used from a thread other than the one that made it.
class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame; nullopt at the end (and on every call after it). Throws FileError
  // "<name>: <cause>" (one line) for bad data.
  virtual std::optional<StreamFrame> next() = 0;
  // The nominal frame rate: a video's avg_frame_rate, else its r_frame_rate, else 25; the fps
  // given to a folder or raw source.
  virtual double fps() const = 0;
  // The path, or the name given to a raw source ("stdin").
  virtual const std::string& name() const = 0;
};

// Every frame decode_video numbers, in its order and with its pixels (the same decoder, colour
// conversion, rotation and size bounds). Throws FileError "<path>: <cause>" for a file that is no
// readable video; next() throws it when not one frame decodes.
std::unique_ptr<FrameSource> open_video_source(const std::string& path, int decoder_threads);
std::unique_ptr<FrameSource> open_video_source(std::shared_ptr<const MappedFile> file, int decoder_threads);

// Frames 1, 2, ... of the folder, named by `pattern` (frame_folder.hpp's rules), each decoded
// with decode_image at its own size; the stream ends at the first number without a file. Throws
// FileError "<folder>: <cause>" for a bad pattern, a path that is no folder, or a folder without
// frame 1; std::invalid_argument for an fps that is not positive and finite.
std::unique_ptr<FrameSource> open_folder_source(const std::string& folder, const std::string& pattern, double fps);

// Raw frames, packed rows of width * height pixels of 3 bytes.
struct RawFormat {
  int64_t width = 0;
  int64_t height = 0;
  enum class Pixels { bgr24, rgb24 } pixels = Pixels::bgr24;
};

// Frames read from `fd` (a pipe, a file, anything read(2) takes; it is not closed), exactly
// width * height * 3 bytes each. An end of the input between frames ends the stream; inside
// one, next() throws FileError "<name>: the stream ended inside frame K (B of N bytes)". Throws
// std::invalid_argument for a size outside allocate_rgb_image's bounds or an fps that is not
// positive and finite.
std::unique_ptr<FrameSource> open_raw_source(int fd, const std::string& name, const RawFormat& format, double fps);

// "640x480" and "bgr24" or "rgb24" (the `ffmpeg` command's names). Throws std::invalid_argument
// with a one-line cause for anything else, or a size outside allocate_rgb_image's bounds.
RawFormat parse_raw_format(const std::string& size, const std::string& pixels);

// For the sources without timestamps of their own (folders, raw frames): frame k is at k / fps.
class FrameClock {
 public:
  // Throws std::invalid_argument for an fps that is not positive and finite.
  explicit FrameClock(double fps);
  double fps() const { return fps_; }
  int64_t next_index() const { return next_index_; }
  // The next frame, numbered and timed.
  StreamFrame stamp(RgbImage image);

 private:
  double fps_;
  int64_t next_index_ = 0;
};

}  // namespace ecocpu::video
