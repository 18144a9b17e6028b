#pragma once
// What `ecocpu flops` and `ecocpu summary` print: tables for people, JSON for programs.
#include <string>
#include <vector>

#include "eco/model.hpp"
#include "graph/counter.hpp"
#include "graph/ir.hpp"

namespace ecocpu {

struct CostedModel {
  ModelConfig config;
  Graph graph;
  CostReport report;
};

CostedModel cost_model(const ModelConfig& config);

// Per-layer table and totals, ending with thop's two lines ("FLOPs = ... G", "params = ... M").
std::string flops_table(const CostedModel& model);
std::string flops_json(const CostedModel& model);

// An ensemble (ECO_en): each member's totals and their sum; JSON lists the members in full.
std::string ensemble_table(const std::vector<CostedModel>& members);
std::string ensemble_json(const std::vector<CostedModel>& members);

// What the fast engine's plan adds for a model: its workspace (the kernels' scratch memory) on
// `threads` threads.
struct EngineMemory {
  int threads = 0;
  int64_t workspace_bytes = 0;
};

// torchsummary-style: layer, output shape, parameters, then the memory activations and weights
// need, and the fast engine's workspace.
std::string summary_table(const CostedModel& model, const EngineMemory& engine);

// A JSON string literal, quotes and escapes included; bytes that are not UTF-8 become U+FFFD.
std::string json_quote(const std::string& s);
// A JSON number, or null where `value` is NaN or infinite (JSON has neither).
std::string json_number(double value);

// 12345678 -> "12,345,678".
std::string with_commas(int64_t value);

}  // namespace ecocpu
