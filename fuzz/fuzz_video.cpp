// Video files: libavformat's probing and demuxing of the bytes (only through the memory map),
// the packet count and pts ranks, the skipping and re-counting passes, the size bounds, colour
// conversion and rotation of the sampled frames; then the sequential source over the same bytes,
// every frame and its time. FFmpeg's own code is not instrumented; what the sanitizers watch is
// ours, and what FFmpeg hands it.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "eco/io/mapped_file.hpp"
#include "eco/video/frame_source.hpp"
#include "eco/video/video_file.hpp"
#include "refusal.hpp"

namespace {

// ECO's test-mode rule for 4 segments: int(tick / 2 + tick * k), tick = n / 4.
std::vector<int64_t> four_segments(int64_t frame_count) {
  std::vector<int64_t> indices;
  const double tick = static_cast<double>(frame_count) / 4.0;
  for (int k = 0; k < 4; ++k) {
    indices.push_back(std::min(static_cast<int64_t>(tick / 2.0 + tick * k), frame_count - 1));
  }
  return indices;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = ecocpu::MappedFile::from_bytes("fuzz.video", std::vector<uint8_t>(data, data + size));
  try {
    ecocpu::video::VideoDecodeOptions options;
    options.threads = 1;  // reproducible runs, and no thread pool per input
    (void)ecocpu::video::decode_video(file, four_segments, options);
  } catch (const ecocpu::FileError& e) {
    ecocpu::fuzz::report_refusal(e);
  }
  try {
    const auto source = ecocpu::video::open_video_source(file, 1);
    while (source->next()) {
    }
  } catch (const ecocpu::FileError& e) {
    ecocpu::fuzz::report_refusal(e);
  }
  return 0;
}
