#pragma once
// Decoded frames as every decoder hands them over and the preprocessing reads them: 8-bit RGB,
// packed rows (PIL's "RGB" mode, FFmpeg's rgb24).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ecocpu::video {

// Frames larger than this are refused before anything is allocated for them: 8K video is 33
// megapixels, and a crafted header may declare up to 2^32 x 2^32.
constexpr int64_t kMaxFrameSide = 16384;
constexpr int64_t kMaxFramePixels = int64_t{1} << 26;

struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;  // height rows of width * 3 bytes: R, G, B

  uint8_t* row(int64_t y) { return pixels.data() + y * width * 3; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * 3; }
};

// Whether a frame of this size is within the bounds above.
bool within_frame_bounds(int64_t width, int64_t height);

// "the frame is WxH; frames are 1 to 16384 pixels a side and at most 67108864 pixels".
std::string frame_size_refusal(int64_t width, int64_t height);

// Throws FileError "<source>: " + frame_size_refusal(width, height) for sizes outside the bounds;
// returns an image of that size otherwise.
RgbImage allocate_rgb_image(int64_t width, int64_t height, const std::string& source);

// The frame indices (0-based) to decode, given how many frames the input holds. Called once the
// count is known (again if decoding shows the container's count was wrong). It throws FileError
// when the input cannot give what was asked (e.g. "--frames 120 is past the last frame").
using FrameSampler = std::function<std::vector<int64_t>(int64_t frame_count)>;

// What a decoder returns: the input's frame count, the sampled indices (one per segment, may
// repeat) and each distinct sampled frame, decoded once.
struct SampledFrames {
  int64_t frame_count = 0;
  std::vector<int64_t> indices;
  std::map<int64_t, RgbImage> images;  // by frame index
  int rotation_degrees = 0;            // clockwise rotation applied from the video's display matrix
  double decode_ms = 0;                // reading, decoding and colour conversion
};

}  // namespace ecocpu::video
