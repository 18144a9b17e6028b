#pragma once
// What `ecocpu run` prints for each input: a table for people, or one JSON object per line.
#include <string>
#include <vector>

#include "eco/cli/common.hpp"
#include "eco/video/clip.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu::cli {

// One input's outcome: its clip and logits, or the one-line reason it failed.
struct RunResult {
  std::string input;  // empty for the seeded random clip
  const video::Clip* clip = nullptr;
  const Tensor* logits = nullptr;
  double forward_ms = 0;
  std::string error;
};

struct RunReport {
  const LoadedModel* model;
  std::string engine;
  double prepare_ms;
  int64_t topk;
  const std::vector<std::string>* labels;  // empty: no names
};

// The lines that say once per run which model runs: arch, weights, load and preparation times.
std::string run_header_text(const RunReport& report);
std::string run_result_text(const RunReport& report, const RunResult& result);
// One line, newline included.
std::string run_result_json(const RunReport& report, const RunResult& result);

}  // namespace ecocpu::cli
