// Frame preprocessing: PIL's bilinear resize restated, torchvision's Scale and CenterCrop rules,
// and the fused fast path, which must equal the plain reference bit for bit.
#include "eco/video/preprocess.hpp"

#include <doctest/doctest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.hpp"

using namespace ecocpu;
using namespace ecocpu::video;
using test::contains;
using Bytes = std::vector<uint8_t>;

namespace {

RgbImage image_of(int64_t width, int64_t height, const Bytes& pixels) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels = pixels;
  return image;
}

RgbImage random_image(int64_t width, int64_t height, std::mt19937& rng) {
  Bytes pixels(static_cast<std::size_t>(width * height * 3));
  // Mostly noise, sometimes only the extremes, so that sums reach the clamp at 0 and 255.
  const bool extremes = rng() % 4 == 0;
  for (uint8_t& p : pixels) p = static_cast<uint8_t>(extremes ? (rng() % 2) * 255 : rng() % 256);
  return image_of(width, height, pixels);
}

std::vector<float> fast(const RgbImage& frame, const PreprocessSpec& spec) {
  std::vector<float> out(static_cast<std::size_t>(3 * spec.crop_size * spec.crop_size));
  preprocess_frame(frame, spec, out.data());
  return out;
}

std::vector<float> reference(const RgbImage& frame, const PreprocessSpec& spec) {
  std::vector<float> out(static_cast<std::size_t>(3 * spec.crop_size * spec.crop_size));
  preprocess_frame_reference(frame, spec, out.data());
  return out;
}

PreprocessSpec spec_of(int64_t scale_size, int64_t crop_size) {
  PreprocessSpec spec;
  spec.scale_size = scale_size;
  spec.crop_size = crop_size;
  return spec;
}

}  // namespace

TEST_CASE("preprocess: scaled_size turns the shorter side to the scale size, the other int(size * long / short)") {
  auto check = [](int64_t w, int64_t h, int64_t size, int64_t sw, int64_t sh) {
    const ScaledSize s = scaled_size(w, h, size);
    CAPTURE(w);
    CAPTURE(h);
    CHECK(s.width == sw);
    CHECK(s.height == sh);
  };
  check(1280, 720, 256, 455, 256);  // 455.1
  check(720, 1280, 256, 256, 455);
  check(1920, 1080, 256, 455, 256);
  check(1281, 719, 256, 456, 256);  // 456.1
  check(171, 128, 256, 342, 256);   // exactly 342
  check(300, 200, 256, 384, 256);   // exactly 384
  check(225, 224, 256, 257, 256);   // 257.1
  check(256, 256, 256, 256, 256);
  check(224, 224, 256, 256, 256);
  check(3, 1000, 256, 256, 85333);
  check(1, 1, 256, 256, 256);
  check(33, 17, 16, 31, 16);
}

TEST_CASE("preprocess: crop_offset is Python 3's round((scaled - crop) / 2.), halves to even") {
  CHECK(crop_offset(455, 224) == 116);  // 115.5
  CHECK(crop_offset(231, 224) == 4);    // 3.5
  CHECK(crop_offset(229, 224) == 2);    // 2.5
  CHECK(crop_offset(257, 224) == 16);   // 16.5
  CHECK(crop_offset(227, 224) == 2);    // 1.5
  CHECK(crop_offset(225, 224) == 0);    // 0.5
  CHECK(crop_offset(256, 224) == 16);
  CHECK(crop_offset(342, 224) == 59);
  CHECK(crop_offset(224, 224) == 0);
  CHECK(crop_offset(224, 225) == 0);   // round(-0.5) is -0.0
  CHECK(crop_offset(224, 227) == -2);  // round(-1.5)
}

TEST_CASE("preprocess: pil_resize_bilinear equals PIL 9.4 on images small enough to work by hand") {
  // Every expected value below was worked out from Pillow's rules (triangle weights over a support
  // widened by the downscaling factor, 22-bit fixed point, rounding after each pass) and is what
  // PIL 9.4.0's Image.resize(size, Image.BILINEAR) returns for the same input.
  const RgbImage two = image_of(2, 1, {10, 11, 0, 200, 200, 255});
  // Upscaling: weights 1 | 0.75, 0.25 | 0.25, 0.75 | 1; x.5 sums round up.
  CHECK(pil_resize_bilinear(two, 4, 1).pixels == Bytes{10, 11, 0, 58, 58, 64, 153, 153, 191, 200, 200, 255});
  // Downscaling to one pixel: both weights 0.5.
  CHECK(pil_resize_bilinear(two, 1, 1).pixels == Bytes{105, 106, 128});
  // 3 -> 2: weights 0.625, 0.375 (and mirrored), after normalising 5/6 and 1/2.
  const RgbImage three = image_of(3, 1, {0, 255, 7, 100, 100, 7, 255, 0, 7});
  CHECK(pil_resize_bilinear(three, 2, 1).pixels == Bytes{38, 197, 7, 197, 38, 7});
  // The same along the other axis, alone and after an (identity-valued) horizontal pass.
  const RgbImage column = image_of(1, 3, three.pixels);
  CHECK(pil_resize_bilinear(column, 1, 2).pixels == Bytes{38, 197, 7, 197, 38, 7});
  CHECK(pil_resize_bilinear(column, 2, 2).pixels == Bytes{38, 197, 7, 38, 197, 7, 197, 38, 7, 197, 38, 7});
  // The same size is a copy.
  CHECK(pil_resize_bilinear(three, 3, 1).pixels == three.pixels);
}

TEST_CASE("preprocess: planes are B, G, R minus the mean, and a flat frame stays flat") {
  Bytes pixels;
  for (int i = 0; i < 640 * 480; ++i) pixels.insert(pixels.end(), {10, 20, 250});
  const RgbImage flat = image_of(640, 480, pixels);
  PreprocessSpec spec;
  spec.mean_bgr = {1.5f, 2.f, 3.f};
  std::vector<float> expected(224 * 224, 248.5f);  // B
  expected.resize(2 * 224 * 224, 18.f);            // G
  expected.resize(3 * 224 * 224, 7.f);             // R
  CHECK(fast(flat, spec) == expected);
  CHECK(reference(flat, spec) == expected);
}

TEST_CASE("preprocess: the fused fast path equals the reference exactly") {
  std::mt19937 rng(2024);
  struct Case {
    int64_t width, height, scale, crop;
  };
  const Case cases[] = {
      {171, 128, 256, 224},  {1281, 719, 256, 224}, {225, 224, 256, 224}, {224, 224, 256, 224},
      {256, 256, 256, 224},  {257, 255, 256, 224},  {1, 1, 256, 224},     {640, 480, 256, 224},
      {480, 640, 256, 224},  {1920, 1080, 256, 224}, {256, 400, 256, 224}, {3, 1000, 16, 8},
      {1000, 3, 16, 8},      {1280, 720, 16, 8},    {1280, 720, 5, 5},    {37, 1000, 5, 5},
      {7, 7, 5, 5},          {16, 16, 16, 8},       {1, 1, 1, 1},         {2, 3, 5, 1},
  };
  for (const Case& c : cases) {
    CAPTURE(c.width);
    CAPTURE(c.height);
    CAPTURE(c.scale);
    const RgbImage frame = random_image(c.width, c.height, rng);
    const PreprocessSpec spec = spec_of(c.scale, c.crop);
    CHECK(fast(frame, spec) == reference(frame, spec));
  }
  // Random small shapes: chunks of rows cut anywhere, every ratio of up- and downscaling.
  for (int i = 0; i < 60; ++i) {
    const int64_t width = 1 + rng() % 120;
    const int64_t height = 1 + rng() % 120;
    const int64_t scale = 1 + rng() % 70;
    const int64_t crop = 1 + rng() % scale;
    CAPTURE(width);
    CAPTURE(height);
    CAPTURE(scale);
    CAPTURE(crop);
    const RgbImage frame = random_image(width, height, rng);
    const PreprocessSpec spec = spec_of(scale, crop);
    CHECK(fast(frame, spec) == reference(frame, spec));
  }
}

TEST_CASE("preprocess: invalid specs and frames are refused") {
  const RgbImage frame = image_of(2, 2, Bytes(12, 0));
  std::vector<float> out(3 * 256 * 256);
  auto error = [&](const RgbImage& f, int64_t scale, int64_t crop) {
    return test::error_of<std::invalid_argument>([&] { preprocess_frame(f, spec_of(scale, crop), out.data()); });
  };
  CHECK(contains(error(frame, 224, 256), "the crop size is 256; it must be 1 to the scale size (224)"));
  CHECK(contains(error(frame, 256, 0), "the crop size is 0"));
  CHECK(contains(error(frame, 0, 0), "the scale size is 0"));
  CHECK(contains(error(frame, -5, 1), "the scale size is -5"));
  CHECK(contains(error(RgbImage{}, 256, 224), "the frame is 0x0"));
  CHECK(contains(error(image_of(2, 2, Bytes(11, 0)), 256, 224), "pixel buffer"));
  CHECK(contains(test::error_of<std::invalid_argument>(
                     [&] { preprocess_frame_reference(frame, spec_of(224, 256), out.data()); }),
                 "the crop size is 256"));
  CHECK_THROWS_AS(pil_resize_bilinear(frame, 0, 4), std::invalid_argument);
  CHECK_THROWS_AS(scaled_size(0, 4, 256), std::invalid_argument);
}
