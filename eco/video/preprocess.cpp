#include "eco/video/preprocess.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "ops/vector_clones.hpp"

namespace ecocpu::video {
namespace {

// Pillow resamples 8-bit images in fixed point: 22 fractional bits leave 8 for the pixel value and 2
// of headroom in an int32. Each output adds half a unit before the shift, i.e. rounds to nearest.
constexpr int kPrecisionBits = 22;
constexpr int32_t kRoundingHalf = int32_t{1} << (kPrecisionBits - 1);

// With frames at most kMaxFrameSide a side, this keeps every scaled side below 2^30 (PIL's sizes
// are C ints) and scale_size * side exact in a double.
constexpr int64_t kMaxScaleSize = int64_t{1} << 16;

// PIL's image sides are C ints; this bound also keeps width * height * 3 within int64.
constexpr int64_t kMaxResizedSide = int64_t{1} << 30;

// The horizontal pass of the fast path runs on this many input rows at a time, transposed so that
// the rows are the vector lanes.
constexpr int64_t kRowsPerChunk = 32;

// PIL's bilinear resampling weights along one axis for the outputs [first, first + outputs): output
// o reads count[o] consecutive inputs from start[o], weighted by weights[o * stride + t].
struct AxisWeights {
  std::vector<int64_t> start;
  std::vector<int64_t> count;
  int64_t stride = 0;
  std::vector<int32_t> weights;  // zero past each output's count

  // The windows move monotonically with the output, so the first and last bound them all.
  int64_t first_input() const { return start.front(); }
  int64_t end_input() const { return start.back() + count.back(); }
};

double triangle(double t) {
  t = std::abs(t);
  return t < 1.0 ? 1.0 - t : 0.0;
}

// Rounds half away from zero, as Pillow's conversion of normalised weights does.
int32_t to_fixed_point(double weight) {
  const double scaled = weight * static_cast<double>(int32_t{1} << kPrecisionBits);
  return static_cast<int32_t>(weight < 0 ? scaled - 0.5 : scaled + 0.5);
}

// One output's weights, normalised, in the exact order of operations Pillow uses: they must agree
// to the last bit, since they are rounded to fixed point afterwards.
void fixed_point_weights(double center, double filterscale, int64_t window_start, int64_t count,
                         std::vector<double>& scratch, int32_t* weights) {
  const double inverse = 1.0 / filterscale;  // Pillow multiplies by the reciprocal, not divides
  scratch.resize(static_cast<std::size_t>(count));
  double sum = 0.0;
  for (int64_t t = 0; t < count; ++t) {
    scratch[t] = triangle((static_cast<double>(t + window_start) - center + 0.5) * inverse);
    sum += scratch[t];
  }
  for (int64_t t = 0; t < count; ++t) weights[t] = to_fixed_point(sum != 0.0 ? scratch[t] / sum : scratch[t]);
}

AxisWeights pil_bilinear_weights(int64_t in_size, int64_t out_size, int64_t first, int64_t outputs) {
  // Pillow takes the input extent from a float box, (in1 - in0) / out_size.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
  // Downscaling widens the triangle to cover every input pixel (antialiasing); upscaling does not.
  const double filterscale = std::max(scale, 1.0);
  const double support = filterscale;
  auto center = [&](int64_t o) { return (static_cast<double>(first + o) + 0.5) * scale; };
  AxisWeights axis;
  for (int64_t o = 0; o < outputs; ++o) {
    const int64_t window_start = std::max<int64_t>(0, static_cast<int64_t>(center(o) - support + 0.5));
    const int64_t window_end = std::min(in_size, static_cast<int64_t>(center(o) + support + 0.5));
    axis.start.push_back(window_start);
    axis.count.push_back(window_end - window_start);
    axis.stride = std::max(axis.stride, window_end - window_start);
  }
  axis.weights.assign(static_cast<std::size_t>(outputs * axis.stride), 0);
  std::vector<double> scratch;
  for (int64_t o = 0; o < outputs; ++o) {
    fixed_point_weights(center(o), filterscale, axis.start[o], axis.count[o], scratch,
                        axis.weights.data() + o * axis.stride);
  }
  return axis;
}

uint8_t clamp_to_byte(int32_t sum) { return static_cast<uint8_t>(std::clamp(sum >> kPrecisionBits, 0, 255)); }

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

void check_frame(const RgbImage& frame) {
  require(frame.width >= 1 && frame.height >= 1 && frame.width <= kMaxFrameSide && frame.height <= kMaxFrameSide,
          "preprocessing: the frame is " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
              "; frames are 1 to " + std::to_string(kMaxFrameSide) + " pixels a side");
  require(frame.pixels.size() == static_cast<std::size_t>(frame.width * frame.height * 3),
          "preprocessing: the frame's pixel buffer does not hold width * height * 3 bytes");
}

void check_spec(const PreprocessSpec& spec) {
  require(spec.scale_size >= 1 && spec.scale_size <= kMaxScaleSize,
          "preprocessing: the scale size is " + std::to_string(spec.scale_size) + "; it must be 1 to " +
              std::to_string(kMaxScaleSize));
  require(spec.crop_size >= 1 && spec.crop_size <= spec.scale_size,
          "preprocessing: the crop size is " + std::to_string(spec.crop_size) + "; it must be 1 to the scale size (" +
              std::to_string(spec.scale_size) + ")");
}

// Where the crop lies in the scaled frame, and which passes PIL runs to scale the frame.
struct CropPlan {
  ScaledSize scaled;
  int64_t crop;
  int64_t left;
  int64_t top;
  bool scale_width;
  bool scale_height;
};

CropPlan plan_crop(const RgbImage& frame, const PreprocessSpec& spec) {
  check_frame(frame);
  check_spec(spec);
  const ScaledSize scaled = scaled_size(frame.width, frame.height, spec.scale_size);
  return {scaled,
          spec.crop_size,
          crop_offset(scaled.width, spec.crop_size),
          crop_offset(scaled.height, spec.crop_size),
          scaled.width != frame.width,
          scaled.height != frame.height};
}

void transpose_bytes_scalar(const uint8_t* src, int64_t src_stride, int64_t rows, int64_t cols, uint8_t* dst,
                            int64_t dst_stride) {
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) dst[c * dst_stride + r] = src[r * src_stride + c];
  }
}

#if XSIMD_WITH_SSE2
using ByteLanes = xsimd::batch<uint8_t, xsimd::sse2>;
constexpr int64_t kTile = 16;

// A 16x16 byte tile: each round interleaves row i with row i + 8, which rotates the 8-bit index
// (row, column) of every byte left by one bit; four rounds swap row and column.
void transpose_tile(const uint8_t* src, int64_t src_stride, uint8_t* dst, int64_t dst_stride) {
  ByteLanes rows[kTile];
  for (int64_t r = 0; r < kTile; ++r) rows[r] = ByteLanes::load_unaligned(src + r * src_stride);
  for (int round = 0; round < 4; ++round) {
    ByteLanes mixed[kTile];
    for (int64_t i = 0; i < kTile / 2; ++i) {
      mixed[2 * i] = xsimd::zip_lo(rows[i], rows[i + kTile / 2]);
      mixed[2 * i + 1] = xsimd::zip_hi(rows[i], rows[i + kTile / 2]);
    }
    std::copy(mixed, mixed + kTile, rows);
  }
  for (int64_t r = 0; r < kTile; ++r) rows[r].store_unaligned(dst + r * dst_stride);
}
#endif

// dst[c * dst_stride + r] = src[r * src_stride + c]. The fast path's transposes move as many bytes
// as it reads, so they go by vector tiles.
void transpose_bytes(const uint8_t* src, int64_t src_stride, int64_t rows, int64_t cols, uint8_t* dst,
                     int64_t dst_stride) {
  int64_t full_rows = 0;
  int64_t full_cols = 0;
#if XSIMD_WITH_SSE2
  full_rows = rows / kTile * kTile;
  full_cols = cols / kTile * kTile;
  for (int64_t r = 0; r < full_rows; r += kTile) {
    for (int64_t c = 0; c < full_cols; c += kTile) {
      transpose_tile(src + r * src_stride + c, src_stride, dst + c * dst_stride + r, dst_stride);
    }
  }
#endif
  // The ragged right edge (all rows), then the ragged bottom edge (the full columns).
  transpose_bytes_scalar(src + full_cols, src_stride, rows, cols - full_cols, dst + full_cols * dst_stride,
                         dst_stride);
  transpose_bytes_scalar(src + full_rows * src_stride, src_stride, rows - full_rows, full_cols, dst + full_rows,
                         dst_stride);
}

// The horizontal pass over one chunk of rows, transposed: `columns` holds input byte b (pixel x,
// channel c at b = 3 * (x - x_begin) + c) of the chunk's rows at columns[b * kRowsPerChunk + row];
// the scaled crop columns go to scaled[(3 * j + c) * kRowsPerChunk + row]. The rows being the
// lanes, every weight is a scalar broadcast over contiguous bytes.
ECOCPU_VECTOR_CLONES
void scale_transposed_chunk(const uint8_t* columns, const AxisWeights& axis, int64_t x_begin, uint8_t* scaled) {
  constexpr int64_t kLanes = 3 * kRowsPerChunk;  // one pixel's three channels over the chunk's rows
  const int64_t outputs = static_cast<int64_t>(axis.start.size());
  for (int64_t j = 0; j < outputs; ++j) {
    const int32_t* weights = axis.weights.data() + j * axis.stride;
    const uint8_t* window = columns + (axis.start[j] - x_begin) * kLanes;
    int32_t sums[kLanes];
    std::fill(sums, sums + kLanes, kRoundingHalf);
    for (int64_t t = 0; t < axis.count[j]; ++t) {
      const uint8_t* in = window + t * kLanes;
      const int32_t weight = weights[t];
      for (int64_t lane = 0; lane < kLanes; ++lane) sums[lane] += in[lane] * weight;
    }
    uint8_t* out = scaled + j * kLanes;
    for (int64_t lane = 0; lane < kLanes; ++lane) out[lane] = clamp_to_byte(sums[lane]);
  }
}

// The crop's columns of the scaled frame for the input rows [row_begin, row_end): one pointer per
// row to crop * 3 bytes (RGB). Borrowed from the frame when PIL skips the horizontal pass.
struct CropColumns {
  std::vector<uint8_t> storage;
  std::vector<const uint8_t*> rows;
};

CropColumns crop_columns_unscaled(const RgbImage& frame, const CropPlan& plan, int64_t row_begin, int64_t row_end) {
  CropColumns columns;
  for (int64_t y = row_begin; y < row_end; ++y) columns.rows.push_back(frame.row(y) + plan.left * 3);
  return columns;
}

// PIL's horizontal pass for the crop's columns only. Each output column reads its own window of
// input columns, which vectorises badly along a row; so each chunk of rows is transposed, filtered
// with the rows as lanes, and transposed back.
CropColumns crop_columns_scaled(const RgbImage& frame, const CropPlan& plan, int64_t row_begin, int64_t row_end) {
  const AxisWeights axis = pil_bilinear_weights(frame.width, plan.scaled.width, plan.left, plan.crop);
  const int64_t x_begin = axis.first_input();
  const int64_t input_bytes = (axis.end_input() - x_begin) * 3;
  const int64_t output_bytes = plan.crop * 3;
  // Zeroed once: the lanes of a short last chunk compute on these bytes and are then dropped.
  std::vector<uint8_t> transposed_in(static_cast<std::size_t>(input_bytes * kRowsPerChunk));
  std::vector<uint8_t> transposed_out(static_cast<std::size_t>(output_bytes * kRowsPerChunk));
  CropColumns columns;
  columns.storage.resize(static_cast<std::size_t>((row_end - row_begin) * output_bytes));
  for (int64_t y = row_begin; y < row_end; y += kRowsPerChunk) {
    const int64_t rows = std::min(kRowsPerChunk, row_end - y);
    transpose_bytes(frame.row(y) + x_begin * 3, frame.width * 3, rows, input_bytes, transposed_in.data(),
                    kRowsPerChunk);
    scale_transposed_chunk(transposed_in.data(), axis, x_begin, transposed_out.data());
    transpose_bytes(transposed_out.data(), kRowsPerChunk, output_bytes, rows,
                    columns.storage.data() + (y - row_begin) * output_bytes, output_bytes);
  }
  for (int64_t y = row_begin; y < row_end; ++y) {
    columns.rows.push_back(columns.storage.data() + (y - row_begin) * output_bytes);
  }
  return columns;
}

CropColumns crop_columns(const RgbImage& frame, const CropPlan& plan, int64_t row_begin, int64_t row_end) {
  return plan.scale_width ? crop_columns_scaled(frame, plan, row_begin, row_end)
                          : crop_columns_unscaled(frame, plan, row_begin, row_end);
}

// One output row of PIL's vertical pass, over `count` source rows of `bytes` bytes each.
ECOCPU_VECTOR_CLONES
void scale_rows(const uint8_t* const* rows, const int32_t* weights, int64_t count, int64_t bytes, int32_t* sums,
                uint8_t* out) {
  std::fill(sums, sums + bytes, kRoundingHalf);
  for (int64_t t = 0; t < count; ++t) {
    const uint8_t* in = rows[t];
    const int32_t weight = weights[t];
    for (int64_t b = 0; b < bytes; ++b) sums[b] += in[b] * weight;
  }
  for (int64_t b = 0; b < bytes; ++b) out[b] = clamp_to_byte(sums[b]);
}

// Row y of the network input: RGB bytes to the B, G and R planes, minus the mean.
ECOCPU_VECTOR_CLONES
void write_bgr_row(const uint8_t* rgb, int64_t width, const std::array<float, 3>& mean_bgr, int64_t plane_size,
                   float* out) {
  float* blue = out;
  float* green = out + plane_size;
  float* red = out + 2 * plane_size;
  for (int64_t x = 0; x < width; ++x) {
    blue[x] = static_cast<float>(rgb[3 * x + 2]) - mean_bgr[0];
    green[x] = static_cast<float>(rgb[3 * x + 1]) - mean_bgr[1];
    red[x] = static_cast<float>(rgb[3 * x]) - mean_bgr[2];
  }
}

void check_size(int64_t width, int64_t height, const char* what) {
  require(width >= 1 && height >= 1, std::string(what) + ": the size " + std::to_string(width) + "x" +
                                         std::to_string(height) + " is not positive");
}

RgbImage blank_image(int64_t width, int64_t height) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<std::size_t>(width * height * 3));
  return image;
}

// PIL's horizontal pass over every row (the reference does not skip rows the vertical pass ignores).
RgbImage resample_horizontally(const RgbImage& in, int64_t width) {
  const AxisWeights axis = pil_bilinear_weights(in.width, width, 0, width);
  RgbImage out = blank_image(width, in.height);
  for (int64_t y = 0; y < in.height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      for (int64_t c = 0; c < 3; ++c) {
        int32_t sum = kRoundingHalf;
        for (int64_t t = 0; t < axis.count[x]; ++t) {
          sum += in.row(y)[(axis.start[x] + t) * 3 + c] * axis.weights[x * axis.stride + t];
        }
        out.row(y)[x * 3 + c] = clamp_to_byte(sum);
      }
    }
  }
  return out;
}

RgbImage resample_vertically(const RgbImage& in, int64_t height) {
  const AxisWeights axis = pil_bilinear_weights(in.height, height, 0, height);
  RgbImage out = blank_image(in.width, height);
  const int64_t bytes = in.width * 3;
  std::vector<int32_t> sums(static_cast<std::size_t>(bytes));
  for (int64_t y = 0; y < height; ++y) {
    std::fill(sums.begin(), sums.end(), kRoundingHalf);
    for (int64_t t = 0; t < axis.count[y]; ++t) {
      const uint8_t* in_row = in.row(axis.start[y] + t);
      for (int64_t b = 0; b < bytes; ++b) sums[b] += in_row[b] * axis.weights[y * axis.stride + t];
    }
    for (int64_t b = 0; b < bytes; ++b) out.row(y)[b] = clamp_to_byte(sums[b]);
  }
  return out;
}

}  // namespace

PreprocessSpec preprocess_spec_for(int64_t crop_size) {
  PreprocessSpec spec;
  spec.crop_size = crop_size;
  spec.scale_size = crop_size * 256 / 224;
  return spec;
}

ScaledSize scaled_size(int64_t width, int64_t height, int64_t scale_size) {
  check_size(width, height, "scaled_size");
  require(scale_size >= 1 && scale_size <= kMaxScaleSize,
          "scaled_size: the scale size " + std::to_string(scale_size) + " is not 1 to " + std::to_string(kMaxScaleSize));
  require(width <= kMaxFrameSide && height <= kMaxFrameSide, "scaled_size: the frame is larger than " +
                                                                 std::to_string(kMaxFrameSide) + " pixels a side");
  // Python's int(size * long / short): the product is exact, the quotient a correctly rounded
  // double (both operands are below 2^53), truncated.
  auto other_side = [&](int64_t long_side, int64_t short_side) {
    return static_cast<int64_t>(static_cast<double>(scale_size * long_side) / static_cast<double>(short_side));
  };
  if (width < height) return {scale_size, other_side(height, width)};
  return {other_side(width, height), scale_size};
}

int64_t crop_offset(int64_t scaled, int64_t crop) {
  // Python 3's round((scaled - crop) / 2.): halves go to the even neighbour.
  const int64_t difference = scaled - crop;
  const int64_t floor_half = difference >= 0 ? difference / 2 : -((-difference + 1) / 2);
  const bool is_half = difference - 2 * floor_half == 1;
  return is_half && floor_half % 2 != 0 ? floor_half + 1 : floor_half;
}

// Scales only the input rows and columns the crop's pixels read. (Under the Scale rule both sides
// change or neither does; each pass is still skipped on its own, as PIL does.)
void preprocess_frame(const RgbImage& frame, const PreprocessSpec& spec, float* out) {
  const CropPlan plan = plan_crop(frame, spec);
  const int64_t plane_size = plan.crop * plan.crop;
  const int64_t bytes = plan.crop * 3;
  if (!plan.scale_height) {
    const CropColumns columns = crop_columns(frame, plan, plan.top, plan.top + plan.crop);
    for (int64_t i = 0; i < plan.crop; ++i) {
      write_bgr_row(columns.rows[i], plan.crop, spec.mean_bgr, plane_size, out + i * plan.crop);
    }
    return;
  }
  const AxisWeights axis = pil_bilinear_weights(frame.height, plan.scaled.height, plan.top, plan.crop);
  const CropColumns columns = crop_columns(frame, plan, axis.first_input(), axis.end_input());
  std::vector<int32_t> sums(static_cast<std::size_t>(bytes));
  std::vector<uint8_t> row(static_cast<std::size_t>(bytes));
  for (int64_t i = 0; i < plan.crop; ++i) {
    scale_rows(columns.rows.data() + (axis.start[i] - axis.first_input()), axis.weights.data() + i * axis.stride,
               axis.count[i], bytes, sums.data(), row.data());
    write_bgr_row(row.data(), plan.crop, spec.mean_bgr, plane_size, out + i * plan.crop);
  }
}

void preprocess_frame_reference(const RgbImage& frame, const PreprocessSpec& spec, float* out) {
  const CropPlan plan = plan_crop(frame, spec);
  const RgbImage scaled = pil_resize_bilinear(frame, plan.scaled.width, plan.scaled.height);
  const int64_t plane_size = plan.crop * plan.crop;
  for (int64_t i = 0; i < plan.crop; ++i) {
    const uint8_t* rgb = scaled.row(plan.top + i) + plan.left * 3;
    for (int64_t j = 0; j < plan.crop; ++j) {
      for (int64_t plane = 0; plane < 3; ++plane) {
        const uint8_t value = rgb[j * 3 + (2 - plane)];  // planes are B, G, R
        out[plane * plane_size + i * plan.crop + j] = static_cast<float>(value) - spec.mean_bgr[plane];
      }
    }
  }
}

RgbImage pil_resize_bilinear(const RgbImage& frame, int64_t width, int64_t height) {
  check_frame(frame);
  check_size(width, height, "pil_resize_bilinear");
  require(width <= kMaxResizedSide && height <= kMaxResizedSide,
          "pil_resize_bilinear: " + std::to_string(width) + "x" + std::to_string(height) + " is larger than " +
              std::to_string(kMaxResizedSide) + " pixels a side");
  // PIL resamples horizontally first, and skips a pass whose size does not change.
  RgbImage image = width != frame.width ? resample_horizontally(frame, width) : frame;
  if (height != frame.height) image = resample_vertically(image, height);
  return image;
}

}  // namespace ecocpu::video
