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

// ECO_en: several models (members), each on its own sampling of the same input; the prediction is
// the mean of their softmax probabilities.
struct EnsembleReport {
  std::vector<RunReport> members;  // each with the same engine, topk and labels
};

struct EnsembleResult {
  std::string input;
  std::vector<RunResult> members;  // in the report's order; empty when the input failed
  std::vector<double> average;     // the members' mean probability of each class
  std::string error;
};

// The lines that say once per run which model runs: arch, weights, load and preparation times.
std::string run_header_text(const RunReport& report);
std::string run_result_text(const RunReport& report, const RunResult& result);
// One line, newline included.
std::string run_result_json(const RunReport& report, const RunResult& result);

// The same for an ensemble: the header lists the members; an input's text gives the average's
// top classes and a line per member; its JSON has "members" (logits and top classes of each),
// "average" (every class's probability) and "topk" (the average's).
std::string run_header_text(const EnsembleReport& report);
std::string run_result_text(const EnsembleReport& report, const EnsembleResult& result);
std::string run_result_json(const EnsembleReport& report, const EnsembleResult& result);

}  // namespace ecocpu::cli
