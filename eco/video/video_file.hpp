#pragma once
// Sampled frames of a video file through FFmpeg's libraries (any container and codec Debian's
// libavformat and libavcodec read). The file is read only through its memory map: FFmpeg never
// opens a path, so playlists and concat lists cannot make it read other files or URLs.
#include <memory>

#include "eco/io/mapped_file.hpp"
#include "eco/video/image.hpp"

namespace ecocpu::video {

struct VideoDecodeOptions {
  int threads = 0;  // decoder threads; 0 lets FFmpeg pick from the core count
};

// Decodes only up to the last sampled frame and converts only sampled frames to RGB24 (libswscale,
// the `ffmpeg` command's defaults), applying the display matrix's rotation in quarter turns as the
// `ffmpeg` command does. Frames are counted in presentation order. The count comes from the
// container's index when it has one, else from the stream's packets; when decoding shows it wrong,
// the sampler is asked again with the count of decoded frames. Throws FileError "<path>: <cause>"
// for anything it cannot decode (no video stream, zero decodable frames, corrupt data, a frame
// size outside allocate_rgb_image's bounds).
SampledFrames decode_video(const std::shared_ptr<const MappedFile>& file, const FrameSampler& sample,
                           const VideoDecodeOptions& options = {});

}  // namespace ecocpu::video
