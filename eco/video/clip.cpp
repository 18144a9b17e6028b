#include "eco/video/clip.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <algorithm>

#include "eco/io/npy.hpp"
#include "eco/video/video_file.hpp"

namespace ecocpu::video {

InputKind input_kind(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return InputKind::frame_folder;
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0) return InputKind::npy;
  return InputKind::video;
}

const char* input_kind_name(InputKind kind) {
  switch (kind) {
    case InputKind::npy: return "npy";
    case InputKind::frame_folder: return "frames";
    case InputKind::video: return "video";
  }
  return "?";
}

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

Clip load_npy_clip(const std::string& path, const ClipOptions& options) {
  Tensor t = read_npy(path);
  Shape s = t.shape();
  if (s.rank() == 5 && s[0] == 1) s = Shape(s.begin() + 1, s.end());
  const int64_t crop = options.preprocess.crop_size > 0 ? options.preprocess.crop_size
                       : (s.rank() > 0 ? s[s.rank() - 1] : 0);
  if (s.rank() != 4 || s[1] != 3 || s[2] != crop || s[3] != crop) {
    const std::string c = options.preprocess.crop_size > 0 ? std::to_string(crop) : "S";
    throw FileError(path + ": the clip is " + t.shape().str() + ", expected (T, 3, " + c + ", " + c +
                    ") or (1, T, 3, " + c + ", " + c + ")" +
                    (options.preprocess.crop_size > 0 ? "" : ", S the model's input size (224; C3DRes18 112)"));
  }
  const int64_t segments = options.sampling.segments;
  if (segments != 0 && s[0] != segments) {
    throw FileError(path + ": the clip holds " + std::to_string(s[0]) + " frames but the model takes " +
                    std::to_string(segments) + " segments");
  }
  Clip clip;
  clip.frames = t.reshaped(s);
  clip.kind = InputKind::npy;
  clip.frame_count = s[0];
  for (int64_t i = 0; i < s[0]; ++i) clip.indices.push_back(i);
  return clip;
}

// Each distinct sampled frame is preprocessed once, in parallel, and copied to every segment that
// repeats it. Exceptions may not leave an OpenMP region: the first one, in frame order, is kept.
Tensor preprocess_frames(const SampledFrames& sampled, const PreprocessSpec& spec) {
  const int64_t crop = spec.crop_size;
  const int64_t frame_floats = 3 * crop * crop;
  const auto segments = static_cast<int64_t>(sampled.indices.size());
  Tensor frames(Shape{segments, 3, crop, crop});
  // The segment whose frame each segment copies: the first one with the same frame index.
  std::vector<int64_t> source(sampled.indices.size());
  for (int64_t k = 0; k < segments; ++k) {
    source[k] = std::find(sampled.indices.begin(), sampled.indices.end(), sampled.indices[k]) -
                sampled.indices.begin();
  }
  std::vector<std::exception_ptr> errors(sampled.indices.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t k = 0; k < segments; ++k) {
    if (source[k] != k) continue;
    try {
      preprocess_frame(sampled.images.at(sampled.indices[k]), spec, frames.data() + k * frame_floats);
    } catch (...) {
      errors[k] = std::current_exception();
    }
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  for (int64_t k = 0; k < segments; ++k) {
    if (source[k] != k) {
      std::memcpy(frames.data() + k * frame_floats, frames.data() + source[k] * frame_floats,
                  static_cast<std::size_t>(frame_floats) * sizeof(float));
    }
  }
  return frames;
}

}  // namespace

Clip load_clip(const std::string& path, const ClipOptions& options) {
  const InputKind kind = input_kind(path);
  if (kind == InputKind::npy) return load_npy_clip(path, options);
  const FrameSampler sample = make_sampler(options.sampling, path);
  SampledFrames sampled;
  if (kind == InputKind::frame_folder) {
    sampled = read_frame_folder(path, options.frame_pattern, sample);
  } else {
    VideoDecodeOptions decode;
    decode.threads = options.decoder_threads;
    sampled = decode_video(MappedFile::open(path), sample, decode);
  }
  Clip clip;
  clip.kind = kind;
  clip.frame_count = sampled.frame_count;
  clip.indices = sampled.indices;
  clip.rotation_degrees = sampled.rotation_degrees;
  clip.decode_ms = sampled.decode_ms;
  const auto start = std::chrono::steady_clock::now();
  clip.frames = preprocess_frames(sampled, options.preprocess);
  clip.preprocess_ms = ms_since(start);
  return clip;
}

}  // namespace ecocpu::video
