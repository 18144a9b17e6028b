#include "eco/cli/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <string>

namespace ecocpu::cli {

ProgressBar::ProgressBar(int64_t total)
    : total_(total), enabled_(total > 1 && isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {
  draw();
}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', stderr);
}

void ProgressBar::advance() {
  ++done_;
  draw();
}

void ProgressBar::clear() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  drawn_ = false;
}

void ProgressBar::draw() {
  if (!enabled_) return;
  constexpr int kWidth = 30;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int filled = static_cast<int>(kWidth * done_ / total_);
  std::string bar(static_cast<std::size_t>(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(static_cast<std::size_t>(kWidth - filled - 1), ' ');
  const double rate = seconds > 0 ? static_cast<double>(done_) / seconds : 0;
  std::string left = "--";
  if (rate > 0) left = std::to_string(static_cast<int64_t>(static_cast<double>(total_ - done_) / rate + 0.5)) + " s";
  std::fprintf(stderr, "\r\033[K[%s] %lld/%lld inputs, %.2f/s, %s left", bar.c_str(), static_cast<long long>(done_),
               static_cast<long long>(total_), rate, left.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace ecocpu::cli
