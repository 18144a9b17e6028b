#pragma once
// One still frame from a file's bytes: JPEG through libjpeg-turbo (the library PIL uses, with
// PIL's default settings, so the pixels are PIL's), PNG through libavcodec. Grayscale becomes RGB
// as PIL's convert("RGB") does; an alpha channel is dropped.
#include "eco/io/mapped_file.hpp"
#include "eco/video/image.hpp"

namespace ecocpu::video {

// Throws FileError "<path>: <cause>" for a file that is neither a readable JPEG nor a PNG, a
// truncated or corrupt one, or a frame size outside allocate_rgb_image's bounds.
RgbImage decode_image(const MappedFile& file);

}  // namespace ecocpu::video
