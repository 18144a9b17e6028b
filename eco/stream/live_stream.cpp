#include "eco/stream/live_stream.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "eco/io/mapped_file.hpp"

namespace ecocpu::stream {

namespace {

using Clock = std::chrono::steady_clock;

// N consecutive frames, preprocessed.
struct Window {
  int64_t first = 0;
  std::vector<float> pixels;  // N frames of (3, S, S)
  double last_time_s = 0;
  Clock::time_point arrival;
};

// The hand-over between the reading thread and the network: one waiting window at most.
class WindowSlot {
 public:
  explicit WindowSlot(bool live) : live_(live) {}

  // Live: a window still waiting is replaced (its update skipped); otherwise the reader waits.
  void put(Window w) {
    std::unique_lock lock(mutex_);
    if (!live_) changed_.wait(lock, [&] { return !waiting_ || stop_; });
    if (waiting_) ++skipped_;
    waiting_ = std::move(w);
    changed_.notify_all();
  }
  // The next window, or nothing once the reader has finished and none waits.
  std::optional<Window> take() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return waiting_ || finished_; });
    std::optional<Window> w = std::move(waiting_);
    waiting_.reset();
    changed_.notify_all();
    return w;
  }
  void finish(std::exception_ptr error, int64_t frames) {
    std::lock_guard lock(mutex_);
    finished_ = true;
    error_ = error;
    frames_ = frames;
    changed_.notify_all();
  }
  // Makes a reader blocked in put() return (the network gave up).
  void stop() {
    std::lock_guard lock(mutex_);
    stop_ = true;
    changed_.notify_all();
  }
  bool stopped() const {
    std::lock_guard lock(mutex_);
    return stop_;
  }
  int64_t skipped() const {
    std::lock_guard lock(mutex_);
    return skipped_;
  }
  std::exception_ptr error() const { return error_; }
  Clock::time_point first_arrival{};  // written by the reader before its first window, read after it finished
  int64_t frames() const { return frames_; }

 private:
  bool live_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Window> waiting_;
  bool finished_ = false, stop_ = false;
  int64_t skipped_ = 0, frames_ = 0;
  std::exception_ptr error_;
};

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

// The reading thread: every frame preprocessed into the window being filled; a full window goes
// to the slot.
void read_frames(video::FrameSource& source, const StreamOptions& options, int64_t n, WindowSlot& slot) {
  const int64_t side = options.preprocess.crop_size;
  const auto frame_floats = static_cast<std::size_t>(3 * side * side);
  int64_t frames = 0;
  std::exception_ptr error;
  try {
    const Clock::time_point start = Clock::now();  // the first frame's schedule, for pacing
    Pacer pacer;
    Window w;
    while (!slot.stopped()) {
      std::optional<video::StreamFrame> f = source.next();
      if (!f) break;
      const double scheduled = pacer.schedule(f->time_s);
      if (options.realtime) std::this_thread::sleep_until(start + seconds(scheduled));
      const Clock::time_point arrival = Clock::now();
      if (frames == 0) slot.first_arrival = arrival;
      ++frames;
      const int64_t position = f->index % n;
      if (position == 0) w = Window{f->index, std::vector<float>(frame_floats * static_cast<std::size_t>(n)), 0, {}};
      video::preprocess_frame(f->image, options.preprocess, w.pixels.data() + static_cast<std::size_t>(position) * frame_floats);
      if (position == n - 1) {
        w.last_time_s = f->time_s;
        w.arrival = arrival;
        slot.put(std::move(w));
      }
    }
  } catch (...) {
    error = std::current_exception();
  }
  slot.finish(error, frames);
}

}  // namespace

double Pacer::schedule(double time_s) {
  if (started_) {
    const double gap = time_s - previous_time_;
    if (gap > 0) scheduled_ += std::min(gap, kMaxPacingGap);  // false for NaN
  }
  if (std::isfinite(time_s)) previous_time_ = time_s;
  started_ = true;
  return scheduled_;
}

StreamSummary run_stream(const std::shared_ptr<video::FrameSource>& source, OnlineModel& model,
                         const StreamOptions& options, const std::function<double(const UpdateReport&)>& emit) {
  const int64_t n = model.memory_size();
  const auto frame_floats = static_cast<std::size_t>(3 * options.preprocess.crop_size * options.preprocess.crop_size);
  std::unique_ptr<WorkingMemory> memory = make_working_memory(options.memory, n, options.sampling_seed);
  RunningPrediction prediction(options.memory == MemoryKind::decay);
  // The reader owns what it touches, so that it can be left behind blocked in a read (a live
  // source with no more frames) when the network fails.
  auto slot = std::make_shared<WindowSlot>(options.live);
  std::thread reader([slot, source, options, n] { read_frames(*source, options, n, *slot); });
  StreamSummary summary;
  try {
    while (std::optional<Window> w = slot->take()) {
      UpdateReport r;
      r.memory = memory->update(w->first);
      const Clock::time_point start = Clock::now();
      const OnlineModel::Update u = model.update(r.memory, [&](int64_t i) {
        return w->pixels.data() + static_cast<std::size_t>(i - w->first) * frame_floats;
      });
      r.forward_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      prediction.add(u.logits.data(), u.logits.numel());
      r.update = summary.updates++;
      r.frame = w->first + n - 1;
      r.time_s = w->last_time_s;
      r.computed_2d = u.computed_2d;
      r.skipped = slot->skipped();
      r.logits = &u.logits;
      r.prediction = &prediction;
      r.arrival = w->arrival;
      summary.computed_2d += u.computed_2d;
      summary.forward_ms.push_back(r.forward_ms);
      summary.latency_ms.push_back(emit(r));
    }
  } catch (...) {
    slot->stop();
    reader.detach();
    throw;
  }
  reader.join();
  summary.frames = slot->frames();
  summary.skipped = slot->skipped();
  summary.seconds = summary.frames ? std::chrono::duration<double>(Clock::now() - slot->first_arrival).count() : 0;
  if (slot->error()) std::rethrow_exception(slot->error());
  if (summary.updates == 0) {
    throw FileError(source->name() + ": the stream ended after " + std::to_string(summary.frames) +
                    " frames; the first update needs " + std::to_string(n) + " (--segments)");
  }
  return summary;
}

}  // namespace ecocpu::stream
