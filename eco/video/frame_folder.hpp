#pragma once
// A folder of extracted frames, as upstream reads them: files named by a printf-style pattern with
// one integer field (default img_%05d.jpg), numbered from 1 without gaps.
#include <string>

#include "eco/video/image.hpp"

namespace ecocpu::video {

constexpr const char* kDefaultFramePattern = "img_%05d.jpg";

// Throws FileError "<folder>: <cause>" for a pattern without exactly one integer field (%d, %Nd or
// %0Nd; %% stands for %; nothing else), a folder that holds no frame 1, or a gap in the numbering
// (frame k + 1 present, k missing); then decodes the sampled frames with decode_image.
SampledFrames read_frame_folder(const std::string& folder, const std::string& pattern,
                                const FrameSampler& sample);

}  // namespace ecocpu::video
