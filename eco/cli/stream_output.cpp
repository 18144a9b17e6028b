#include "eco/cli/stream_output.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "eco/api/loading.hpp"
#include "eco/report.hpp"

namespace ecocpu::cli {

namespace {

// The k best classes of the running prediction.
std::vector<int> best_classes(const StreamReport& report, const std::vector<double>& p) {
  return top_classes(p.data(), static_cast<int64_t>(p.size()), report.topk);
}

std::string label_of(const StreamReport& report, int c) { return report.labels->empty() ? "" : (*report.labels)[c]; }

}  // namespace

std::string stream_header_text(const StreamReport& report, const std::string& input, double fps, double prepare_ms) {
  const LoadedModel& m = *report.model;
  std::string out = format_line("%s, %lld frames in the working memory (--memory %s), %lld classes, weights: %s\n",
                           m.config.arch.c_str(), static_cast<long long>(m.config.segments),
                           stream::memory_kind_name(report.memory), static_cast<long long>(m.graph.output_shape()[1]),
                           m.weights_source.c_str());
  if (m.load_ms > 0) out += format_line("checkpoint loaded in %.1f ms\n", m.load_ms);
  out += format_line("plans prepared in %.1f ms\n", prepare_ms);
  return out + format_line("input: %s, %.3f frames per second\n", input.c_str(), fps);
}

std::string stream_update_text(const StreamReport& report, const stream::UpdateReport& u, double latency_ms) {
  const std::vector<double> p = u.prediction->probabilities();
  std::ostringstream out;
  out << format_line("update %4lld  frame %6lld  %8.2f s  2D %3lld  skipped %lld  latency %6.1f ms  top:",
                static_cast<long long>(u.update), static_cast<long long>(u.frame), u.time_s,
                static_cast<long long>(u.computed_2d), static_cast<long long>(u.skipped), latency_ms);
  for (int c : best_classes(report, p)) {
    out << format_line(" %d (%.3f)", c, p[c]);
    if (!report.labels->empty()) out << " " << label_of(report, c);
    out << ";";
  }
  std::string line = out.str();
  line.back() = '\n';
  return line;
}

std::string stream_update_json(const StreamReport& report, const stream::UpdateReport& u, double latency_ms) {
  const std::vector<double>& average = u.prediction->value();
  const std::vector<double> p = u.prediction->probabilities();
  std::ostringstream out;
  out << "{\"update\": " << u.update << ", \"frame\": " << u.frame << ", \"time_s\": " << json_number(u.time_s)
      << ", \"memory\": [";
  for (std::size_t i = 0; i < u.memory.size(); ++i) out << (i ? ", " : "") << u.memory[i];
  out << "], \"computed_2d\": " << u.computed_2d << ", \"skipped\": " << u.skipped
      << ", \"logits\": " << json_numbers(u.logits->data(), u.logits->numel())
      << ", \"average\": " << json_numbers(average.data(), static_cast<int64_t>(average.size()))
      << ", \"average_of\": " << json_quote(u.prediction->sums_logits() ? "summed logits" : "probabilities")
      << ", \"topk\": [";
  const std::vector<int> best = best_classes(report, p);
  for (std::size_t i = 0; i < best.size(); ++i) {
    out << (i ? ", " : "") << "{\"class\": " << best[i];
    if (!report.labels->empty()) out << ", \"label\": " << json_quote(label_of(report, best[i]));
    out << ", \"probability\": " << json_number(p[best[i]]) << "}";
  }
  out << "], \"forward_ms\": " << json_number(u.forward_ms) << ", \"latency_ms\": " << json_number(latency_ms) << "}\n";
  return out.str();
}

std::string stream_summary_text(const StreamReport& report, const stream::StreamSummary& s) {
  const int64_t n = report.model->config.segments;
  const double longest = s.latency_ms.empty() ? 0 : *std::max_element(s.latency_ms.begin(), s.latency_ms.end());
  return format_line("\n%lld frames, %lld updates, %lld skipped; the 2D network ran on %lld frames (%lld without the "
                "feature cache); update median %.1f ms; latency median %.1f ms, longest %.1f ms; %.2f s from the "
                "first frame to the end\n",
                static_cast<long long>(s.frames), static_cast<long long>(s.updates), static_cast<long long>(s.skipped),
                static_cast<long long>(s.computed_2d), static_cast<long long>(s.updates * n), median(s.forward_ms),
                median(s.latency_ms), longest, s.seconds);
}

std::string stream_summary_json(const StreamReport& report, const stream::StreamSummary& s) {
  const int64_t n = report.model->config.segments;
  std::ostringstream out;
  out << "{\"summary\": {\"frames\": " << s.frames << ", \"updates\": " << s.updates << ", \"skipped\": " << s.skipped
      << ", \"computed_2d\": " << s.computed_2d << ", \"computed_2d_without_cache\": " << s.updates * n
      << ", \"latency_ms\": {\"median\": " << json_number(median(s.latency_ms)) << ", \"max\": "
      << json_number(s.latency_ms.empty() ? 0 : *std::max_element(s.latency_ms.begin(), s.latency_ms.end()))
      << "}, \"forward_ms\": {\"median\": " << json_number(median(s.forward_ms)) << "}, \"seconds\": " << json_number(s.seconds)
      << "}}\n";
  return out.str();
}

}  // namespace ecocpu::cli
