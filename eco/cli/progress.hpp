#pragma once
// A one-line progress bar on stderr for batches: inputs done, rate, time left. Drawn only when
// stderr is a terminal, so logs and pipes get nothing.
#include <chrono>
#include <cstdint>

namespace ecocpu::cli {

class ProgressBar {
 public:
  // Draws nothing unless stderr is a terminal and there is more than one input.
  explicit ProgressBar(int64_t total);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance();  // one more input done
  // Erases the bar before a line is written to stderr, so the two do not mix.
  void clear();

 private:
  void draw();
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ecocpu::cli
