#pragma once
// One input of `ecocpu run`, whatever its kind, made into the network input: a video file or a
// folder of frames is sampled, decoded and preprocessed as upstream does; a .npy file is taken as
// already preprocessed.
#include <cstdint>
#include <string>
#include <vector>

#include "eco/video/frame_folder.hpp"
#include "eco/video/preprocess.hpp"
#include "eco/video/sampling.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu::video {

enum class InputKind { npy, frame_folder, video };

// A folder, a file ending in .npy, else a video (the file's bytes decide its container).
InputKind input_kind(const std::string& path);
const char* input_kind_name(InputKind kind);

struct ClipOptions {
  SamplingSpec sampling;  // its segment count is the clip's frame count (0: a .npy's own)
  std::string frame_pattern = kDefaultFramePattern;
  PreprocessSpec preprocess;
  int decoder_threads = 0;
};

struct Clip {
  Tensor frames;                 // (segments, 3, crop, crop): BGR minus the mean
  InputKind kind = InputKind::npy;
  int64_t frame_count = 0;       // frames in the input
  std::vector<int64_t> indices;  // the sampled frames (a .npy: all of them)
  int rotation_degrees = 0;
  double decode_ms = 0;
  double preprocess_ms = 0;
};

// Throws FileError "<path>: <cause>" for anything that cannot become the network input. A .npy
// clip is (T, 3, crop, crop) or (1, T, 3, crop, crop) with T the segment count (any T when the
// sampling's segment count is 0, any square frame when the crop size is 0).
Clip load_clip(const std::string& path, const ClipOptions& options);

// One clip per segment count from one decode (ECO_en's members, each sampled by the options'
// rule with its own count): the decoder reads every frame any of them samples, once; a frame
// several share is preprocessed once. The clips share decode_ms and preprocess_ms (both cover the
// whole). A .npy is refused (FileError): it is sampled already.
std::vector<Clip> load_clips(const std::string& path, const ClipOptions& options,
                             const std::vector<int64_t>& segment_counts);

}  // namespace ecocpu::video
