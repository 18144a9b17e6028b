#pragma once
// Upstream's test-time preprocessing of one frame, to the pixel: GroupScale(256) (shorter side to
// 256 with PIL's antialiased bilinear filter, 8-bit fixed point, rounded to 8 bits after each
// pass), GroupCenterCrop(224) (offsets int(round((size - 224) / 2)), halves rounded to even as
// Python does), then BGR channel order minus the mean (104, 117, 128), no scaling. For another
// network input size S the scale and crop become S * 256 / 224 and S (preprocess_spec_for).
#include <array>
#include <cstdint>

#include "eco/video/image.hpp"

namespace ecocpu::video {

struct PreprocessSpec {
  int64_t scale_size = 256;  // the shorter side after scaling
  int64_t crop_size = 224;   // the square centre crop
  std::array<float, 3> mean_bgr = {104.f, 117.f, 128.f};
};

// Upstream's spec for a network input of crop_size: the scale keeps 256 : 224 (TSN's
// scale_size = input_size * 256 // 224; C3DRes18's 112 gives 128).
PreprocessSpec preprocess_spec_for(int64_t crop_size);

// The scaled size: the shorter side becomes scale_size, the other int(scale_size * long / short)
// (torchvision's Scale/Resize rule for an int size). Equal sides give a square.
struct ScaledSize {
  int64_t width;
  int64_t height;
};
ScaledSize scaled_size(int64_t width, int64_t height, int64_t scale_size);

// Where the centre crop starts in the scaled image: int(round((scaled - crop) / 2)).
int64_t crop_offset(int64_t scaled, int64_t crop);

// The network input of one frame: 3 planes (B, G, R) of crop_size x crop_size floats at `out`.
// One fused pass that computes only the scaled pixels the crop keeps. Throws std::invalid_argument
// for a spec with a non-positive size, a crop larger than the scale size or a scale size above
// 65536, and for a frame outside 1..16384 pixels a side or whose buffer is not width x height x 3.
void preprocess_frame(const RgbImage& frame, const PreprocessSpec& spec, float* out);

// The oracle: PIL's resize of the whole frame, then the crop, the channel swap and the mean, as
// separate plain steps. preprocess_frame must equal it exactly.
void preprocess_frame_reference(const RgbImage& frame, const PreprocessSpec& spec, float* out);

// PIL's Image.resize((width, height), BILINEAR) of an RGB image, restated (the oracle's first step).
RgbImage pil_resize_bilinear(const RgbImage& frame, int64_t width, int64_t height);

}  // namespace ecocpu::video
