// Still frames (JPEG through TurboJPEG, PNG through libavcodec), folders of extracted frames, and
// several clips from one folder.
// Every input is made here: JPEGs with TurboJPEG's compressor, PNGs with libavcodec's encoder, in a
// temporary folder removed at the end.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include "eco/io/mapped_file.hpp"
#include "eco/video/clip.hpp"
#include "eco/video/frame_folder.hpp"
#include "eco/video/image_file.hpp"
#include "test_support.hpp"
#include "video_support.hpp"

using namespace ecocpu;
using namespace ecocpu::video;
using test::Bytes;
using test::contains;
using test::TempDir;
using test::write_bytes;
using Indices = std::vector<int64_t>;

namespace {

// An 18x10 4:2:0 JPEG (quality 75, noisy gradients: two MCUs wide, so the smooth chroma upsampling
// crosses a block edge) and the RGB bytes Pillow 9.4.0 (Debian 12, libjpeg62-turbo 2.1.5) decodes
// from it with Image.open(f).convert("RGB").tobytes(); both written by a throwaway Python script.
const uint8_t kPilJpeg[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x08, 0x06, 0x06, 0x07, 0x06, 0x05, 0x08,
    0x07, 0x07, 0x07, 0x09, 0x09, 0x08, 0x0a, 0x0c, 0x14, 0x0d, 0x0c, 0x0b, 0x0b, 0x0c, 0x19, 0x12,
    0x13, 0x0f, 0x14, 0x1d, 0x1a, 0x1f, 0x1e, 0x1d, 0x1a, 0x1c, 0x1c, 0x20, 0x24, 0x2e, 0x27, 0x20,
    0x22, 0x2c, 0x23, 0x1c, 0x1c, 0x28, 0x37, 0x29, 0x2c, 0x30, 0x31, 0x34, 0x34, 0x34, 0x1f, 0x27,
    0x39, 0x3d, 0x38, 0x32, 0x3c, 0x2e, 0x33, 0x34, 0x32, 0xff, 0xdb, 0x00, 0x43, 0x01, 0x09, 0x09,
    0x09, 0x0c, 0x0b, 0x0c, 0x18, 0x0d, 0x0d, 0x18, 0x32, 0x21, 0x1c, 0x21, 0x32, 0x32, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32,
    0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0xff, 0xc0,
    0x00, 0x11, 0x08, 0x00, 0x0a, 0x00, 0x12, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11,
    0x01, 0xff, 0xc4, 0x00, 0x1f, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05,
    0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21,
    0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23,
    0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17,
    0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a,
    0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
    0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
    0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5,
    0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1,
    0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xc4, 0x00, 0x1f, 0x01, 0x00, 0x03,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x11, 0x00,
    0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77, 0x00,
    0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13,
    0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15,
    0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27,
    0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
    0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
    0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4,
    0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9,
    0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0xe1,
    0xec, 0xbc, 0x21, 0xe6, 0x36, 0x31, 0xb9, 0xb0, 0x4b, 0x2e, 0x32, 0xdd, 0x47, 0x03, 0x1c, 0x74,
    0xe7, 0xf3, 0xae, 0xa7, 0x4e, 0xf0, 0x61, 0x58, 0xd6, 0x59, 0x36, 0x08, 0x81, 0xc9, 0x0e, 0x70,
    0x47, 0x6e, 0x9d, 0xcf, 0x07, 0xf2, 0xfc, 0xfa, 0x9b, 0x54, 0x53, 0x1c, 0x99, 0x51, 0xc3, 0x9c,
    0x71, 0xd3, 0xa7, 0xf8, 0x9a, 0xe8, 0xe0, 0x45, 0x6d, 0x43, 0x2c, 0xa0, 0x90, 0xcb, 0x8c, 0x8e,
    0x9c, 0xb7, 0xf8, 0x0a, 0xf2, 0xe1, 0x8b, 0xff, 0x00, 0x64, 0x55, 0xa7, 0x1b, 0xb6, 0xd2, 0x38,
    0xb2, 0x6c, 0xef, 0x12, 0x9a, 0x38, 0x11, 0xe1, 0xa1, 0x81, 0x85, 0x94, 0x0e, 0xc3, 0x6b, 0x0c,
    0x7e, 0x94, 0x57, 0xb4, 0x45, 0x1c, 0x7e, 0x52, 0x7c, 0x8b, 0xf7, 0x47, 0x6a, 0x2b, 0x65, 0x5b,
    0x4f, 0xe1, 0xc3, 0xee, 0x97, 0xff, 0x00, 0x24, 0x7d, 0x53, 0xe2, 0x0a, 0xc9, 0xda, 0xdf, 0x8f,
    0xfc, 0x03, 0xff, 0xd9,
};
const uint8_t kPilRgb[] = {
    0x17, 0x14, 0x0d, 0x12, 0x09, 0x0a, 0x27, 0x12, 0x23, 0x22, 0x03, 0x13, 0x2d, 0x00, 0x05, 0x44,
    0x0e, 0x04, 0x4d, 0x0c, 0x00, 0x50, 0x03, 0x00, 0x6b, 0x0f, 0x14, 0x79, 0x0d, 0x1d, 0x79, 0x00,
    0x12, 0xae, 0x24, 0x34, 0xb5, 0x1b, 0x23, 0xad, 0x06, 0x0d, 0xbc, 0x07, 0x16, 0xc9, 0x0f, 0x1a,
    0xca, 0x13, 0x0f, 0xd5, 0x1f, 0x12, 0x23, 0x2a, 0x1a, 0x1f, 0x20, 0x18, 0x0f, 0x03, 0x0d, 0x35,
    0x1f, 0x2b, 0x2c, 0x0a, 0x09, 0x53, 0x24, 0x1a, 0x50, 0x17, 0x06, 0x5a, 0x14, 0x0a, 0x64, 0x0e,
    0x17, 0x88, 0x25, 0x3a, 0x87, 0x12, 0x2c, 0xa8, 0x24, 0x39, 0x9e, 0x0c, 0x17, 0xb5, 0x15, 0x1f,
    0xce, 0x21, 0x35, 0xde, 0x2b, 0x3e, 0xd4, 0x23, 0x29, 0xd6, 0x26, 0x26, 0x05, 0x1f, 0x00, 0x0c,
    0x20, 0x05, 0x0f, 0x16, 0x0f, 0x49, 0x45, 0x44, 0x40, 0x2f, 0x27, 0x58, 0x3c, 0x30, 0x54, 0x2a,
    0x1c, 0x61, 0x2a, 0x27, 0x6c, 0x27, 0x3a, 0x78, 0x23, 0x42, 0x90, 0x2b, 0x4d, 0x90, 0x1d, 0x3a,
    0xbc, 0x3b, 0x4f, 0xba, 0x2b, 0x3d, 0xe4, 0x47, 0x64, 0xdd, 0x39, 0x5b, 0xdf, 0x3a, 0x58, 0xda,
    0x36, 0x4f, 0x21, 0x53, 0x16, 0x17, 0x43, 0x10, 0x31, 0x52, 0x35, 0x2c, 0x3f, 0x2c, 0x29, 0x30,
    0x1e, 0x3d, 0x36, 0x24, 0x52, 0x3f, 0x31, 0x72, 0x50, 0x51, 0x79, 0x47, 0x62, 0x81, 0x40, 0x68,
    0x72, 0x22, 0x49, 0xac, 0x4f, 0x6e, 0xa4, 0x38, 0x4f, 0xc8, 0x4e, 0x65, 0xc6, 0x3e, 0x62, 0xe7,
    0x55, 0x84, 0xe4, 0x4e, 0x8b, 0xe1, 0x48, 0x89, 0x19, 0x6a, 0x0d, 0x11, 0x5c, 0x0a, 0x45, 0x84,
    0x4b, 0x2a, 0x5a, 0x32, 0x28, 0x4b, 0x2a, 0x56, 0x6a, 0x51, 0x53, 0x59, 0x4d, 0x74, 0x6a, 0x72,
    0x7a, 0x60, 0x83, 0x7d, 0x56, 0x83, 0x94, 0x60, 0x87, 0x9c, 0x59, 0x7a, 0xa4, 0x53, 0x66, 0xa6,
    0x47, 0x5d, 0xc8, 0x5a, 0x7d, 0xef, 0x75, 0xb2, 0xdb, 0x54, 0xba, 0xdc, 0x51, 0xc8, 0x00, 0x6d,
    0x00, 0x06, 0x70, 0x01, 0x33, 0x8f, 0x3a, 0x41, 0x90, 0x4f, 0x38, 0x76, 0x43, 0x7d, 0xac, 0x8a,
    0x4c, 0x6c, 0x5d, 0x56, 0x67, 0x6f, 0x5f, 0x5f, 0x81, 0x87, 0x7a, 0xa5, 0x96, 0x7d, 0x9d, 0xbc,
    0x96, 0xab, 0xa9, 0x74, 0x7a, 0xdf, 0x9e, 0xa4, 0xce, 0x7f, 0x95, 0xe8, 0x89, 0xb5, 0xdc, 0x69,
    0xb4, 0xe6, 0x6b, 0xc5, 0x1e, 0xae, 0x11, 0x20, 0xa9, 0x1b, 0x17, 0x92, 0x20, 0x2c, 0x99, 0x3e,
    0x22, 0x7d, 0x37, 0x58, 0xa4, 0x75, 0x4f, 0x8a, 0x74, 0x53, 0x7f, 0x82, 0x66, 0x81, 0x9e, 0x6e,
    0x7d, 0x9c, 0xab, 0xae, 0xbd, 0xa4, 0x9c, 0x99, 0xdd, 0xc6, 0xb4, 0xdc, 0xb9, 0xa5, 0xd9, 0xa7,
    0xa6, 0xc8, 0x84, 0x83, 0xc0, 0x65, 0x53, 0xce, 0x69, 0x4d, 0x0a, 0xb2, 0x00, 0x11, 0xb2, 0x0c,
    0x05, 0x97, 0x0e, 0x1e, 0xa2, 0x32, 0x30, 0xa2, 0x4a, 0x3b, 0x9d, 0x60, 0x73, 0xc4, 0xa4, 0x70,
    0xb2, 0xae, 0x7e, 0xb1, 0xc2, 0x6e, 0x95, 0xa6, 0xa5, 0xc3, 0xbb, 0x93, 0xa6, 0x88, 0xc3, 0xc7,
    0x94, 0xa7, 0xa0, 0x6c, 0xb0, 0x99, 0x7a, 0xb7, 0x91, 0x6d, 0xe1, 0xaa, 0x69, 0xe9, 0xaa, 0x5a,
    0x1f, 0xda, 0x11, 0x14, 0xc8, 0x0d, 0x31, 0xd7, 0x39, 0x38, 0xcf, 0x4c, 0x4c, 0xd1, 0x68, 0x3e,
    0xb2, 0x67, 0x56, 0xbb, 0x91, 0x5f, 0xb3, 0xa3, 0x8f, 0xd5, 0xd7, 0x96, 0xd1, 0xcd, 0x94, 0xc8,
    0xa2, 0x90, 0xba, 0x78, 0x98, 0xb4, 0x5d, 0xa6, 0xb6, 0x5d, 0xae, 0xaf, 0x6d, 0xdc, 0xd6, 0x9a,
    0xd4, 0xcb, 0x88, 0xe8, 0xde, 0x96, 0x26, 0xeb, 0x18, 0x18, 0xd6, 0x12, 0x2a, 0xda, 0x31, 0x3d,
    0xde, 0x50, 0x4e, 0xdc, 0x6c, 0x4d, 0xcb, 0x79, 0x59, 0xc7, 0x98, 0x60, 0xbd, 0xa8, 0x8e, 0xdf,
    0xd9, 0x8d, 0xd4, 0xc4, 0x92, 0xd0, 0x9d, 0x8b, 0xc0, 0x6e, 0xa6, 0xd0, 0x64, 0xb1, 0xcc, 0x61,
    0xbb, 0xc9, 0x74, 0xdd, 0xe7, 0xa0, 0xd4, 0xe1, 0x9c, 0xe4, 0xf5, 0xb1,
};

// width x height pixels of one colour (as many channels as `colour` has).
Bytes solid(int width, int height, std::vector<uint8_t> colour) {
  Bytes pixels;
  for (int i = 0; i < width * height; ++i) pixels.insert(pixels.end(), colour.begin(), colour.end());
  return pixels;
}

Bytes compress_jpeg(const Bytes& pixels, int width, int height, int pixel_format, int subsampling) {
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitCompress(), tjDestroy);
  REQUIRE(tj);
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  REQUIRE(tjCompress2(tj.get(), pixels.data(), width, 0, height, pixel_format, &jpeg, &size, subsampling, 90,
                      TJFLAG_ACCURATEDCT) == 0);
  Bytes bytes(jpeg, jpeg + size);
  tjFree(jpeg);
  return bytes;
}

// Frame k of the test folders: 32x24, a colour that encodes k (JPEG keeps flat colours to +-2).
std::vector<uint8_t> colour_of(int64_t k) {
  return {static_cast<uint8_t>(20 * k), static_cast<uint8_t>(250 - 20 * k), 100};
}
Bytes frame_jpeg(int64_t k) { return compress_jpeg(solid(32, 24, colour_of(k)), 32, 24, TJPF_RGB, TJSAMP_420); }

// The frame number a decoded frame's colour encodes, or -1.
int64_t number_in(const RgbImage& image) {
  const uint8_t* p = image.row(image.height / 2) + image.width / 2 * 3;
  for (int64_t k = 0; k <= 12; ++k) {
    const std::vector<uint8_t> c = colour_of(k);
    if (std::abs(p[0] - c[0]) <= 2 && std::abs(p[1] - c[1]) <= 2 && std::abs(p[2] - c[2]) <= 2) return k;
  }
  return -1;
}

struct AvFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
  void operator()(AVFrame* f) const { av_frame_free(&f); }
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};

// A PNG from libavcodec's encoder; `fill` writes the frame's planes.
Bytes encode_png(int width, int height, AVPixelFormat format, const std::function<void(AVFrame&)>& fill) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  REQUIRE(codec);
  std::unique_ptr<AVCodecContext, AvFree> context(avcodec_alloc_context3(codec));
  context->width = width;
  context->height = height;
  context->pix_fmt = format;
  context->time_base = {1, 25};
  REQUIRE(avcodec_open2(context.get(), codec, nullptr) == 0);
  std::unique_ptr<AVFrame, AvFree> frame(av_frame_alloc());
  frame->width = width;
  frame->height = height;
  frame->format = format;
  REQUIRE(av_frame_get_buffer(frame.get(), 0) == 0);
  fill(*frame);
  std::unique_ptr<AVPacket, AvFree> packet(av_packet_alloc());
  REQUIRE(avcodec_send_frame(context.get(), frame.get()) == 0);
  REQUIRE(avcodec_receive_packet(context.get(), packet.get()) == 0);
  return Bytes(packet->data, packet->data + packet->size);
}

// Sample value of pixel (x, y), channel c, in a test pattern that varies along both axes.
uint8_t pattern_value(int x, int y, int c) { return static_cast<uint8_t>(x * 37 + y * 11 + c * 85); }

Bytes png_rgb(int width, int height) {
  return encode_png(width, height, AV_PIX_FMT_RGB24, [](AVFrame& f) {
    for (int y = 0; y < f.height; ++y)
      for (int x = 0; x < f.width * 3; ++x) f.data[0][y * f.linesize[0] + x] = pattern_value(x / 3, y, x % 3);
  });
}

// The JPEG cut halfway through its entropy-coded data (after the SOS marker, FF DA).
Bytes cut_in_scan(const Bytes& jpeg) {
  std::size_t sos = 2;
  while (sos + 1 < jpeg.size() && !(jpeg[sos] == 0xFF && jpeg[sos + 1] == 0xDA)) ++sos;
  REQUIRE(sos + 1 < jpeg.size());
  return Bytes(jpeg.begin(), jpeg.begin() + (sos + jpeg.size()) / 2);
}

RgbImage decode(const Bytes& bytes, const std::string& name = "frame") {
  return decode_image(*MappedFile::from_bytes(name, bytes));
}

std::string decode_error(const Bytes& bytes, const std::string& name = "frame") {
  return test::error_of<FileError>([&] { decode(bytes, name); });
}

// A sampler that records the count it was given and returns fixed indices.
struct RecordingSampler {
  Indices chosen;
  int64_t seen = -1;
  FrameSampler get() {
    return [this](int64_t n) {
      seen = n;
      return chosen;
    };
  }
};

// Writes frames `numbers`, named by snprintf with the test's own (trusted) format.
void write_frames(const TempDir& folder, const char* name_format, std::initializer_list<int64_t> numbers) {
  for (int64_t k : numbers) {
    char name[64];
    std::snprintf(name, sizeof name, name_format, static_cast<int>(k));
    write_bytes(folder / name, frame_jpeg(k));
  }
}

std::string folder_error(const std::string& folder, const std::string& pattern = kDefaultFramePattern) {
  return test::error_of<FileError>([&] { read_frame_folder(folder, pattern, [](int64_t) { return Indices{0}; }); });
}

}  // namespace

TEST_CASE("image files: a JPEG decodes to exactly PIL's pixels") {
  const RgbImage image = decode(Bytes(std::begin(kPilJpeg), std::end(kPilJpeg)));
  CHECK(image.width == 18);
  CHECK(image.height == 10);
  CHECK(image.pixels == Bytes(std::begin(kPilRgb), std::end(kPilRgb)));
}

TEST_CASE("image files: a grayscale JPEG becomes RGB with R = G = B") {
  Bytes gray(16 * 8);
  for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i * 2);
  const RgbImage image = decode(compress_jpeg(gray, 16, 8, TJPF_GRAY, TJSAMP_GRAY));
  REQUIRE(image.pixels.size() == 16 * 8 * 3);
  bool replicated = true;
  for (std::size_t i = 0; i < image.pixels.size(); i += 3) {
    replicated = replicated && image.pixels[i] == image.pixels[i + 1] && image.pixels[i] == image.pixels[i + 2];
  }
  CHECK(replicated);
  CHECK(image.pixels[3 * 100] > image.pixels[3 * 10]);  // the ramp survived
}

TEST_CASE("image files: PNGs in RGB, RGBA, gray and palette decode losslessly to RGB") {
  const int width = 7, height = 5;
  SUBCASE("RGB") {
    const RgbImage image = decode(png_rgb(width, height));
    REQUIRE(image.width == width);
    REQUIRE(image.height == height);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c) CHECK(image.row(y)[x * 3 + c] == pattern_value(x, y, c));
  }
  SUBCASE("RGBA: the alpha channel is dropped, not blended") {
    const RgbImage image = decode(encode_png(width, height, AV_PIX_FMT_RGBA, [](AVFrame& f) {
      for (int y = 0; y < f.height; ++y)
        for (int x = 0; x < f.width * 4; ++x)
          f.data[0][y * f.linesize[0] + x] = x % 4 == 3 ? uint8_t{0} : pattern_value(x / 4, y, x % 4);
    }));
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c) CHECK(image.row(y)[x * 3 + c] == pattern_value(x, y, c));
  }
  SUBCASE("gray: full range, replicated") {
    const RgbImage image = decode(encode_png(width, height, AV_PIX_FMT_GRAY8, [](AVFrame& f) {
      for (int y = 0; y < f.height; ++y)
        for (int x = 0; x < f.width; ++x) f.data[0][y * f.linesize[0] + x] = pattern_value(x, y, 0);
    }));
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c) CHECK(image.row(y)[x * 3 + c] == pattern_value(x, y, 0));
  }
  SUBCASE("palette: looked up") {
    const RgbImage image = decode(encode_png(width, height, AV_PIX_FMT_PAL8, [](AVFrame& f) {
      auto* palette = reinterpret_cast<uint32_t*>(f.data[1]);
      for (uint32_t i = 0; i < 256; ++i) palette[i] = 0xFF000000u | (i << 16) | ((255 - i) << 8) | (i * 7 % 256);
      for (int y = 0; y < f.height; ++y)
        for (int x = 0; x < f.width; ++x) f.data[0][y * f.linesize[0] + x] = pattern_value(x, y, 0);
    }));
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int i = pattern_value(x, y, 0);
        CHECK(image.row(y)[x * 3] == i);
        CHECK(image.row(y)[x * 3 + 1] == 255 - i);
        CHECK(image.row(y)[x * 3 + 2] == i * 7 % 256);
      }
    }
  }
}

TEST_CASE("image files: hostile bytes are one-line errors naming the file") {
  const Bytes jpeg = frame_jpeg(3);
  CHECK(decode_error(Bytes{'G', 'I', 'F', '8', '9', 'a'}, "x.jpg") == "x.jpg: not a JPEG or PNG image");
  CHECK(decode_error(Bytes{0xFF, 0xD8}, "x.jpg") == "x.jpg: not a JPEG or PNG image");

  CHECK(decode_error(cut_in_scan(jpeg), "cut.jpg") == "cut.jpg: Premature end of JPEG file");
  CHECK(decode_error(Bytes(jpeg.begin(), jpeg.begin() + jpeg.size() / 2), "cut.jpg") ==
        "cut.jpg: Invalid JPEG file structure: missing SOS marker");
  CHECK(decode_error(Bytes(jpeg.begin(), jpeg.begin() + 20), "head.jpg") == "head.jpg: Premature end of JPEG file");
  CHECK(decode_error(Bytes{0xFF, 0xD8, 0xFF}, "magic.jpg") == "magic.jpg: Premature end of JPEG file");

  // TurboJPEG writes Adobe CMYK JPEGs from CMYK pixels.
  const Bytes cmyk = compress_jpeg(solid(8, 8, {1, 2, 3, 4}), 8, 8, TJPF_CMYK, TJSAMP_444);
  CHECK(decode_error(cmyk, "cmyk.jpg") == "cmyk.jpg: CMYK JPEGs are not supported");
}

TEST_CASE("image files: PNG chunks are checked, and ancillary ones never reach the decoder") {
  const Bytes png = png_rgb(9, 9);
  const std::size_t after_ihdr = 8 + 4 + 4 + 13 + 4;  // signature; IHDR's length, type, data, CRC
  const auto with_chunk = [&](const std::string& type, const Bytes& data) {
    Bytes chunk{0, 0, 0, static_cast<uint8_t>(data.size())};
    chunk.insert(chunk.end(), type.begin(), type.end());
    chunk.insert(chunk.end(), data.begin(), data.end());
    chunk.insert(chunk.end(), {0, 0, 0, 0});  // a wrong CRC
    Bytes bytes = png;
    bytes.insert(bytes.begin() + after_ihdr, chunk.begin(), chunk.end());
    return bytes;
  };
  // FFmpeg would inflate a zTXt chunk into memory without a bound; ancillary chunks are dropped
  // unread, bad CRC and all.
  CHECK(decode(with_chunk("zTXt", {'k', 0, 0, 0x78, 0x9C, 0xFF})).pixels == decode(png).pixels);

  Bytes bad_crc = png;
  bad_crc[after_ihdr - 1] ^= 1;
  const std::string corrupt = decode_error(bad_crc, "crc.png");
  CHECK(contains(corrupt, "crc.png: corrupt or truncated PNG data ("));
  CHECK(corrupt.find('\n') == std::string::npos);

  CHECK(decode_error(Bytes(png.begin(), png.end() - 20), "cut.png") ==
        "cut.png: truncated PNG: the IDAT chunk runs past the end of the file");
  CHECK(decode_error(Bytes(png.begin(), png.end() - 6), "cut.png") ==
        "cut.png: truncated PNG: a chunk header runs past the end of the file");
  CHECK(decode_error(Bytes(png.begin(), png.begin() + 20), "short.png") ==
        "short.png: not a valid PNG: it does not start with an IHDR chunk");
  CHECK(decode_error(with_chunk("tE\nt", {}), "type.png") == "type.png: not a valid PNG: a chunk type is not 4 letters");
}

TEST_CASE("image files: a frame size past the bounds is refused before it is allocated") {
  const std::string refusal = ": the frame is 60000x60000; frames are 1 to 16384 pixels a side and at most 67108864 pixels";
  Bytes jpeg = frame_jpeg(1);
  // SOF0: FF C0, length (2), precision (1), height (2), width (2): big-endian 60000 = EA 60.
  std::size_t at = 2;
  while (at + 1 < jpeg.size() && !(jpeg[at] == 0xFF && jpeg[at + 1] == 0xC0)) ++at;
  REQUIRE(at + 9 < jpeg.size());
  for (std::size_t i : {at + 5, at + 7}) {
    jpeg[i] = 0xEA;
    jpeg[i + 1] = 0x60;
  }
  CHECK(decode_error(jpeg, "big.jpg") == "big.jpg" + refusal);

  Bytes png = png_rgb(4, 4);  // IHDR's width and height are bytes 16..23, big-endian
  for (std::size_t i : {16, 20}) {
    png[i] = 0;
    png[i + 1] = 0;
    png[i + 2] = 0xEA;
    png[i + 3] = 0x60;
  }
  CHECK(decode_error(png, "big.png") == "big.png" + refusal);
}

TEST_CASE("frame folders: counts the frames, asks the sampler, decodes each sampled frame once") {
  TempDir folder;
  write_frames(folder, "img_%05d.jpg", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  write_bytes(folder / "img_00000.jpg", frame_jpeg(0));    // upstream numbers frames from 1
  write_bytes(folder / "img_1.jpg", Bytes{'x'});           // not img_%05d: ignored
  write_bytes(folder / "img_000011.jpg", Bytes{'x'});      // 11 would be img_00011.jpg
  write_bytes(folder / "img_00012.jpg.part", Bytes{'x'});  // suffix differs
  std::filesystem::create_directory(folder / "sub");
  RecordingSampler sampler{{0, 4, 4, 9}};
  const SampledFrames frames = read_frame_folder(folder.path(), kDefaultFramePattern, sampler.get());
  CHECK(sampler.seen == 10);
  CHECK(frames.frame_count == 10);
  CHECK(frames.indices == Indices{0, 4, 4, 9});
  REQUIRE(frames.images.size() == 3);
  CHECK(number_in(frames.images.at(0)) == 1);  // index i is file number i + 1
  CHECK(number_in(frames.images.at(4)) == 5);
  CHECK(number_in(frames.images.at(9)) == 10);
  CHECK(frames.images.at(9).width == 32);
  CHECK(frames.rotation_degrees == 0);
  CHECK(frames.decode_ms > 0);
}

TEST_CASE("frame folders: custom patterns, unpadded, space-padded and with a literal %") {
  TempDir folder;
  SUBCASE("unpadded PNG frames") {
    for (int k = 1; k <= 12; ++k) write_bytes(folder / ("frame" + std::to_string(k) + ".png"), png_rgb(3 + k, 2));
    RecordingSampler sampler{{11, 0}};
    const SampledFrames frames = read_frame_folder(folder.path() + "/", "frame%d.png", sampler.get());
    CHECK(sampler.seen == 12);
    CHECK(frames.images.at(11).width == 15);  // frames of different sizes are fine
    CHECK(frames.images.at(0).width == 4);
  }
  SUBCASE("a literal % and space padding") {
    write_frames(folder, "100%% %3d.jpg", {1, 2, 3});
    write_bytes(folder / "100% 4.jpg", Bytes{'x'});  // '%3d' formats 4 as '  4'
    RecordingSampler sampler{{2}};
    const SampledFrames frames = read_frame_folder(folder.path(), "100%% %3d.jpg", sampler.get());
    CHECK(sampler.seen == 3);
    CHECK(number_in(frames.images.at(2)) == 3);
  }
}

TEST_CASE("frame folders: the numbering must start at 1 and have no gaps") {
  TempDir folder;
  CHECK(folder_error(folder.path()) == folder.path() + ": no frame matches img_%05d.jpg");
  write_frames(folder, "img_%05d.jpg", {0, 2, 3});
  CHECK(folder_error(folder.path()) ==
        folder.path() + ": frame 1 (img_00001.jpg) is missing; the first frame present is img_00002.jpg");
  write_frames(folder, "img_%05d.jpg", {1, 5});
  CHECK(folder_error(folder.path()) == folder.path() + ": img_00004.jpg is missing but img_00005.jpg exists");
  write_frames(folder, "img_%05d.jpg", {4});
  // A number too long for 64 bits is still a frame name, so still a gap.
  const std::string huge = "img_123456789012345678901234567890.jpg";
  write_bytes(folder / huge, Bytes{'x'});
  CHECK(folder_error(folder.path()) == folder.path() + ": img_00006.jpg is missing but " + huge + " exists");
}

TEST_CASE("frame folders: patterns other than one %d, %Nd or %0Nd are refused") {
  TempDir folder;
  const auto refusal = [&](const std::string& pattern) { return folder.path() + ": the frame pattern '" + pattern + "' "; };
  CHECK(folder_error(folder.path(), "%s") ==
        refusal("%s") + "has a conversion at position 1 other than %d, %Nd or %0Nd (N up to 99); write %% for a literal %");
  CHECK(contains(folder_error(folder.path(), "a%n"), refusal("a%n") + "has a conversion at position 2"));
  CHECK(contains(folder_error(folder.path(), "%5s"), refusal("%5s") + "has a conversion at position 1"));
  CHECK(contains(folder_error(folder.path(), "%100d"), refusal("%100d") + "has a conversion"));
  CHECK(contains(folder_error(folder.path(), "%-5d"), refusal("%-5d") + "has a conversion"));
  CHECK(contains(folder_error(folder.path(), "img%"), refusal("img%") + "has a conversion"));
  CHECK(folder_error(folder.path(), "%d%d") == refusal("%d%d") + "has more than one integer field");
  CHECK(folder_error(folder.path(), "abc") == refusal("abc") + "has no integer field (%d, %Nd or %0Nd)");
  CHECK(folder_error(folder.path(), "%%d") == refusal("%%d") + "has no integer field (%d, %Nd or %0Nd)");
  CHECK(folder_error(folder.path(), "a/%d") == refusal("a/%d") + "names a path; it must be a file name without '/'");
}

TEST_CASE("frame folders: a frame that is not a readable image names its file") {
  TempDir folder;
  write_frames(folder, "img_%05d.jpg", {1, 2, 4, 5});
  std::filesystem::create_directory(folder / "img_00003.jpg");
  write_bytes(folder / "img_00006.jpg", Bytes{'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  const Bytes jpeg = frame_jpeg(7);
  write_bytes(folder / "img_00007.jpg", cut_in_scan(jpeg));
  REQUIRE(::mkfifo((folder / "img_00008.jpg").c_str(), 0600) == 0);
  const auto error_reading = [&](Indices chosen) {
    return test::error_of<FileError>([&] { read_frame_folder(folder.path(), kDefaultFramePattern, [&](int64_t) { return chosen; }); });
  };
  CHECK(error_reading({2}) == folder / "img_00003.jpg: is a directory, not a regular file");
  CHECK(error_reading({5}) == folder / "img_00006.jpg: not a JPEG or PNG image");
  CHECK(error_reading({6}) == folder / "img_00007.jpg: Premature end of JPEG file");
  CHECK(error_reading({7}) == folder / "img_00008.jpg: is a FIFO, not a regular file");
  // Several bad frames: the first in frame order is reported, whichever thread failed first.
  CHECK(error_reading({7, 6, 5, 0, 2}) == folder / "img_00003.jpg: is a directory, not a regular file");
  CHECK(error_reading({0, 1, 3, 4}).empty());
}

TEST_CASE("frame folders: the folder must be a folder") {
  TempDir folder;
  write_bytes(folder / "file", Bytes{'x'});
  CHECK(folder_error(folder / "file") == folder / "file: not a folder");
  CHECK(folder_error(folder / "none") == folder / "none: cannot open: No such file or directory");
  REQUIRE(::mkfifo((folder / "fifo").c_str(), 0600) == 0);
  CHECK(folder_error(folder / "fifo") == folder / "fifo: not a folder");
}

TEST_CASE("frame folders: the sampler's errors pass through, and its indices are checked") {
  TempDir folder;
  write_frames(folder, "img_%05d.jpg", {1, 2});
  CHECK(test::error_of<FileError>([&] {
          read_frame_folder(folder.path(), kDefaultFramePattern,
                            [](int64_t) -> Indices { throw FileError("--frames 5 is past the last frame"); });
        }) == "--frames 5 is past the last frame");
  CHECK_THROWS_AS(read_frame_folder(folder.path(), kDefaultFramePattern, [](int64_t) { return Indices{2}; }),
                  std::out_of_range);
  CHECK_THROWS_AS(read_frame_folder(folder.path(), kDefaultFramePattern, [](int64_t) { return Indices{-1}; }),
                  std::out_of_range);
}

TEST_CASE("clips: several segment counts from one decode equal the clip each count gives alone") {
  TempDir folder;
  write_frames(folder, "img_%05d.jpg", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  ClipOptions options;
  options.preprocess = preprocess_spec_for(56);  // small frames keep the test fast
  SUBCASE("test sampling") {}
  SUBCASE("random sampling, one seed for every count") {
    options.sampling.mode = SamplingMode::random;
    options.sampling.seed = 5;
  }
  // 4 twice: every frame of the third clip is the first's; 12 repeats frames within its clip.
  const Indices counts{4, 3, 4, 12};
  const std::vector<Clip> clips = load_clips(folder.path(), options, counts);
  REQUIRE(clips.size() == counts.size());
  for (std::size_t c = 0; c < counts.size(); ++c) {
    CAPTURE(counts[c]);
    ClipOptions alone = options;
    alone.sampling.segments = counts[c];
    const Clip expected = load_clip(folder.path(), alone);
    CHECK(clips[c].indices == make_sampler(alone.sampling, "x")(10));
    CHECK(clips[c].indices == expected.indices);
    CHECK(clips[c].frame_count == 10);
    REQUIRE(clips[c].frames.shape() == expected.frames.shape());
    CHECK(std::memcmp(clips[c].frames.data(), expected.frames.data(),
                      static_cast<std::size_t>(expected.frames.numel()) * sizeof(float)) == 0);
    CHECK(clips[c].decode_ms == clips[0].decode_ms);  // one decode serves them all
  }
}

TEST_CASE("clips: a .npy cannot give several segment counts") {
  TempDir folder;
  write_bytes(folder / "clip.npy", Bytes{'x'});
  CHECK(test::error_of<FileError>([&] { load_clips(folder / "clip.npy", ClipOptions{}, {4, 8}); }) ==
        folder / "clip.npy: a .npy clip is sampled already, to one segment count; sample a video or a frame folder "
                 "for several");
}
