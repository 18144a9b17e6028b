#pragma once
// What the two users of FFmpeg's libraries (video_file.cpp, image_file.cpp) share: owners for
// FFmpeg's objects, its error text, and the libraries loaded with their logging turned off.
#include "eco/video/ffmpeg_library.hpp"

#include <memory>
#include <mutex>
#include <string>

namespace ecocpu::video::ffmpeg {

struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { lib().avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { lib().av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { lib().av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* c) const { lib().sws_freeContext(c); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;

// FFmpeg's text for an AVERROR code.
inline std::string reason(int error) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  lib().av_strerror(error, text, sizeof text);
  return text;
}

// FFmpeg's libraries loaded for decoding the file at `path` (lib(path): a one-line FileError if
// they cannot be), their logging turned off: FFmpeg logs a bad file's complaints to stderr,
// several lines of them; ours is the one line the caller prints. Process-wide, once.
inline void load_quietly(const std::string& path) {
  lib(path);
  static std::once_flag once;
  std::call_once(once, [] { lib().av_log_set_level(AV_LOG_QUIET); });
}

}  // namespace ecocpu::video::ffmpeg
