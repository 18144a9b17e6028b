#include "eco/video/clip.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <utility>

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

// Where a distinct frame is preprocessed: the first segment, over all clips, that shows it.
struct FrameSlot {
  std::size_t clip;
  int64_t segment;
};

// Each distinct sampled frame is preprocessed once, in parallel, into the first segment that shows
// it, then copied to every other segment (of any clip) that repeats it. Exceptions may not leave
// an OpenMP region: the first one, in segment order, is kept.
std::vector<Tensor> preprocess_clips(const std::map<int64_t, RgbImage>& images,
                                     const std::vector<std::vector<int64_t>>& indices, const PreprocessSpec& spec) {
  const int64_t crop = spec.crop_size;
  const int64_t frame_floats = 3 * crop * crop;
  std::vector<Tensor> frames;
  std::map<int64_t, FrameSlot> first;                  // by frame index
  std::vector<std::pair<int64_t, FrameSlot>> work;      // frame index, where it is preprocessed
  std::vector<std::pair<FrameSlot, FrameSlot>> copies;  // from, to
  for (std::size_t c = 0; c < indices.size(); ++c) {
    frames.emplace_back(Shape{static_cast<int64_t>(indices[c].size()), 3, crop, crop});
    for (std::size_t k = 0; k < indices[c].size(); ++k) {
      const FrameSlot slot{c, static_cast<int64_t>(k)};
      const auto [it, added] = first.try_emplace(indices[c][k], slot);
      if (added) work.emplace_back(indices[c][k], slot);
      if (!added) copies.emplace_back(it->second, slot);
    }
  }
  auto at = [&](FrameSlot s) { return frames[s.clip].data() + s.segment * frame_floats; };
  const auto count = static_cast<int64_t>(work.size());
  std::vector<std::exception_ptr> errors(work.size());
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < count; ++i) {
    try {
      preprocess_frame(images.at(work[i].first), spec, at(work[i].second));
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  for (const auto& [from, to] : copies) {
    std::memcpy(at(to), at(from), static_cast<std::size_t>(frame_floats) * sizeof(float));
  }
  return frames;
}

// The decoders take one sampler: this one asks every sampling and returns all their frames, so
// each distinct frame is decoded once, and keeps each sampling's own indices for its clip. A
// decoder that finds the frame count wrong asks again: every call starts afresh.
FrameSampler union_sampler(std::vector<FrameSampler> samplers, std::vector<std::vector<int64_t>>& chosen) {
  return [samplers = std::move(samplers), &chosen](int64_t frame_count) {
    chosen.clear();
    std::vector<int64_t> all;
    for (const FrameSampler& sample : samplers) {
      chosen.push_back(sample(frame_count));
      all.insert(all.end(), chosen.back().begin(), chosen.back().end());
    }
    return all;
  };
}

SampledFrames decode_input(const std::string& path, InputKind kind, const ClipOptions& options,
                           const FrameSampler& sample) {
  if (kind == InputKind::frame_folder) return read_frame_folder(path, options.frame_pattern, sample);
  VideoDecodeOptions decode;
  decode.threads = options.decoder_threads;
  return decode_video(MappedFile::open(path), sample, decode);
}

}  // namespace

Clip load_clip(const std::string& path, const ClipOptions& options) {
  if (input_kind(path) == InputKind::npy) return load_npy_clip(path, options);
  return std::move(load_clips(path, options, {options.sampling.segments}).front());
}

std::vector<Clip> load_clips(const std::string& path, const ClipOptions& options,
                             const std::vector<int64_t>& segment_counts) {
  const InputKind kind = input_kind(path);
  if (kind == InputKind::npy) {
    throw FileError(path + ": a .npy clip is sampled already, to one segment count; sample a video or a frame "
                           "folder for several");
  }
  std::vector<FrameSampler> samplers;
  for (int64_t segments : segment_counts) {
    SamplingSpec spec = options.sampling;
    spec.segments = segments;
    samplers.push_back(make_sampler(spec, path));
  }
  std::vector<std::vector<int64_t>> indices;
  const SampledFrames sampled = decode_input(path, kind, options, union_sampler(std::move(samplers), indices));
  const auto start = std::chrono::steady_clock::now();
  std::vector<Tensor> frames = preprocess_clips(sampled.images, indices, options.preprocess);
  const double preprocess_ms = ms_since(start);
  std::vector<Clip> clips(segment_counts.size());
  for (std::size_t c = 0; c < clips.size(); ++c) {
    clips[c].frames = std::move(frames[c]);
    clips[c].kind = kind;
    clips[c].frame_count = sampled.frame_count;
    clips[c].indices = std::move(indices[c]);
    clips[c].rotation_degrees = sampled.rotation_degrees;
    clips[c].decode_ms = sampled.decode_ms;
    clips[c].preprocess_ms = preprocess_ms;
  }
  return clips;
}

}  // namespace ecocpu::video
