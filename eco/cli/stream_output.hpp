#pragma once
// What `ecocpu stream` prints: a line per update (text, or one JSON object per line) and a summary
// at the end.
#include <string>
#include <vector>

#include "eco/cli/common.hpp"
#include "eco/stream/live_stream.hpp"

namespace ecocpu::cli {

struct StreamReport {
  const LoadedModel* model;
  stream::MemoryKind memory;
  int64_t topk;
  const std::vector<std::string>* labels;  // empty: no names
};

std::string stream_header_text(const StreamReport& report, const std::string& input, double fps, double prepare_ms);
// One line, newline included; latency_ms is the update's, measured just before.
std::string stream_update_text(const StreamReport& report, const stream::UpdateReport& update, double latency_ms);
std::string stream_update_json(const StreamReport& report, const stream::UpdateReport& update, double latency_ms);
std::string stream_summary_text(const StreamReport& report, const stream::StreamSummary& summary);
std::string stream_summary_json(const StreamReport& report, const stream::StreamSummary& summary);

}  // namespace ecocpu::cli
