#pragma once
// The online loop: frames come from a source in their own thread (decoded, paced, preprocessed),
// are gathered into windows of N, and each full window is one update of the working memory and
// one prediction, made on the calling thread. When the network falls behind a live source, the
// older waiting window is dropped (its update skipped and counted); nothing queues without bound:
// at most one window is being filled, one waits and one is in the network.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "eco/stream/online_model.hpp"
#include "eco/stream/working_memory.hpp"
#include "eco/video/frame_source.hpp"
#include "eco/video/preprocess.hpp"

namespace ecocpu::stream {

struct StreamOptions {
  MemoryKind memory = MemoryKind::paper;
  uint64_t sampling_seed = 0;
  bool realtime = false;  // pace the source at its timestamps, as a camera would deliver it
  bool live = false;      // skip updates when behind (realtime or a live source) instead of waiting
  video::PreprocessSpec preprocess;
};

struct UpdateReport {
  int64_t update = 0;        // 0-based count of the updates made (skipped ones are not numbered)
  int64_t frame = 0;         // the last frame of the window
  double time_s = 0;         // its presentation time
  std::vector<int64_t> memory;
  int64_t computed_2d = 0;
  int64_t skipped = 0;       // updates skipped so far
  double forward_ms = 0;      // the update's own work: 2D part on the new frames, 3D part, classifier
  const Tensor* logits = nullptr;
  const RunningPrediction* prediction = nullptr;
  std::chrono::steady_clock::time_point arrival;  // when the window's last frame arrived
};

struct StreamSummary {
  int64_t frames = 0;       // read from the source
  int64_t updates = 0;      // made
  int64_t skipped = 0;
  int64_t computed_2d = 0;  // frames the 2D part ran on, over all updates
  double seconds = 0;       // from the first frame's arrival to the end
  std::vector<double> latency_ms;  // per update, as the callback measured it
  std::vector<double> forward_ms;  // per update
};

// Where --realtime schedules frames, in seconds after the first: each frame follows the one before
// by the gap between their timestamps, that gap kept within [0, kMaxPacingGap], so that a crafted
// or broken timestamp (NaN, a jump back, a jump of years ahead) costs at most one such gap and
// neither stalls the stream nor breaks the clock's arithmetic.
constexpr double kMaxPacingGap = 2.0;
class Pacer {
 public:
  double schedule(double time_s);  // the first frame: 0

 private:
  bool started_ = false;
  double previous_time_ = 0, scheduled_ = 0;
};

// Runs until the source ends. `emit` writes an update's line and returns its latency in ms (the
// time from the window's last frame arriving to the line being written). Throws FileError when
// the source fails (after the updates before it were emitted) or ends before the first update.
StreamSummary run_stream(const std::shared_ptr<video::FrameSource>& source, OnlineModel& model,
                         const StreamOptions& options, const std::function<double(const UpdateReport&)>& emit);

}  // namespace ecocpu::stream
