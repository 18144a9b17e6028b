#include "eco/cli/run_output.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "eco/api/loading.hpp"
#include "eco/report.hpp"

namespace ecocpu::cli {

namespace {

std::string format(const char* pattern, auto... values) {
  char line[512];
  std::snprintf(line, sizeof line, pattern, values...);
  return line;
}

std::string json_int_list(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

std::string json_top(const RunReport& report, const Tensor& logits) {
  const int64_t classes = logits.dim(1);
  const auto best = top_classes(logits.data(), classes, report.topk);
  const auto prob = softmax(logits.data(), classes);
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < best.size(); ++i) {
    out << (i ? ", " : "") << "{\"index\": " << best[i];
    if (!report.labels->empty()) out << ", \"label\": " << json_quote((*report.labels)[best[i]]);
    out << ", \"probability\": " << json_number(prob[best[i]])
        << ", \"logit\": " << json_number(logits.data()[best[i]]) << "}";
  }
  out << "]";
  return out.str();
}

std::string json_clip(const video::Clip& clip) {
  std::ostringstream out;
  out << ", \"kind\": " << json_quote(video::input_kind_name(clip.kind)) << ", \"frame_count\": " << clip.frame_count
      << ", \"frames\": " << json_int_list(clip.indices);
  if (clip.rotation_degrees != 0) out << ", \"rotation\": " << clip.rotation_degrees;
  return out.str();
}

}  // namespace

std::string run_header_text(const RunReport& report) {
  const LoadedModel& m = *report.model;
  std::string out = format("%s, %lld segments, %lld classes, weights: %s\n", m.config.arch.c_str(),
                           static_cast<long long>(m.config.segments),
                           static_cast<long long>(m.graph.output_shape()[1]), m.weights_source.c_str());
  if (m.load_ms > 0) out += format("checkpoint loaded in %.1f ms\n", m.load_ms);
  return out + format("plan prepared in %.1f ms\n", report.prepare_ms);
}

std::string run_result_text(const RunReport& report, const RunResult& result) {
  std::ostringstream out;  // not std::string concatenation: GCC 12 gives a false -Wrestrict on it
  out << "\n";
  if (const video::Clip* clip = result.clip) {
    out << "input: " << result.input << " (" << video::input_kind_name(clip->kind) << ", " << clip->frame_count
        << " frames";
    if (clip->kind != video::InputKind::npy) {
      out << "; sampled";
      for (int64_t i : clip->indices) out << " " << i;
    }
    if (clip->rotation_degrees != 0) out << "; rotated " << clip->rotation_degrees << " degrees";
    out << ")\n";
    if (clip->kind != video::InputKind::npy) {
      out << format("decode %.1f ms, preprocess %.1f ms\n", clip->decode_ms, clip->preprocess_ms);
    }
  }
  const Tensor& logits = *result.logits;
  out << format("forward pass (%s engine): %.3f s\n\n%6s %8s %12s %12s  %s\n", report.engine.c_str(),
                result.forward_ms / 1000, "rank", "class", "probability", "logit",
                report.labels->empty() ? "" : "label");
  const int64_t classes = logits.dim(1);
  const auto best = top_classes(logits.data(), classes, report.topk);
  const auto prob = softmax(logits.data(), classes);
  for (std::size_t i = 0; i < best.size(); ++i) {
    out << format("%6zu %8d %12.6f %12.4f  %s\n", i + 1, best[i], prob[best[i]], logits.data()[best[i]],
                  report.labels->empty() ? "" : (*report.labels)[best[i]].c_str());
  }
  return out.str();
}

std::string run_result_json(const RunReport& report, const RunResult& result) {
  std::ostringstream out;
  out << "{\"input\": " << (result.input.empty() ? "null" : json_quote(result.input));
  if (!result.error.empty()) {
    out << ", \"error\": " << json_quote(result.error) << "}\n";
    return out.str();
  }
  const LoadedModel& m = *report.model;
  const Tensor& logits = *result.logits;
  out << ", \"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
      << ", \"classes\": " << logits.dim(1);
  if (result.clip) out << json_clip(*result.clip);
  const double decode = result.clip ? result.clip->decode_ms : 0;
  const double preprocess = result.clip ? result.clip->preprocess_ms : 0;
  out << ", \"prepare_ms\": " << json_number(report.prepare_ms)
      << ", \"seconds\": " << json_number(result.forward_ms / 1000) << ", \"timings_ms\": {\"decode\": "
      << json_number(decode) << ", \"preprocess\": " << json_number(preprocess)
      << ", \"forward\": " << json_number(result.forward_ms) << "}, \"top\": " << json_top(report, logits) << "}\n";
  return out.str();
}

}  // namespace ecocpu::cli
