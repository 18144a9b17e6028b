// Still frames: the JPEG (libjpeg-turbo) and PNG (libavcodec) paths of decode_image, their size
// bounds, and the conversion of every pixel format they produce to RGB.
#include <cstdint>
#include <vector>

#include "eco/io/mapped_file.hpp"
#include "eco/video/image_file.hpp"
#include "refusal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = ecocpu::MappedFile::from_bytes("fuzz.image", std::vector<uint8_t>(data, data + size));
    (void)ecocpu::video::decode_image(*file);
  } catch (const ecocpu::FileError& e) {
    ecocpu::fuzz::report_refusal(e);
  }
  return 0;
}
