#include "eco/video/image.hpp"

#include "eco/io/mapped_file.hpp"

namespace ecocpu::video {

bool within_frame_bounds(int64_t width, int64_t height) {
  // The sides are checked first, so that the product cannot overflow.
  return width >= 1 && height >= 1 && width <= kMaxFrameSide && height <= kMaxFrameSide &&
         width * height <= kMaxFramePixels;
}

std::string frame_size_refusal(int64_t width, int64_t height) {
  return "the frame is " + std::to_string(width) + "x" + std::to_string(height) + "; frames are 1 to " +
         std::to_string(kMaxFrameSide) + " pixels a side and at most " + std::to_string(kMaxFramePixels) + " pixels";
}

RgbImage allocate_rgb_image(int64_t width, int64_t height, const std::string& source) {
  if (!within_frame_bounds(width, height)) throw FileError(source + ": " + frame_size_refusal(width, height));
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<std::size_t>(width * height * 3));
  return image;
}

}  // namespace ecocpu::video
