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

std::string json_int_list(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

// The ranked classes: index, label (when there are labels), probability, and the logit unless
// `logits` is null (an ensemble's average has none).
std::string json_ranked(const std::vector<int>& best, const std::vector<std::string>& labels,
                        const std::vector<double>& prob, const float* logits) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < best.size(); ++i) {
    out << (i ? ", " : "") << "{\"index\": " << best[i];
    if (!labels.empty()) out << ", \"label\": " << json_quote(labels[best[i]]);
    out << ", \"probability\": " << json_number(prob[best[i]]);
    if (logits) out << ", \"logit\": " << json_number(logits[best[i]]);
    out << "}";
  }
  out << "]";
  return out.str();
}

std::string json_top(const RunReport& report, const Tensor& logits) {
  const int64_t classes = logits.dim(1);
  return json_ranked(top_classes(logits.data(), classes, report.topk), *report.labels,
                     softmax(logits.data(), classes), logits.data());
}

// `frames`: the sampled indices, which an ensemble gives per member instead.
std::string json_clip(const video::Clip& clip, bool frames = true) {
  std::ostringstream out;
  out << ", \"kind\": " << json_quote(video::input_kind_name(clip.kind)) << ", \"frame_count\": " << clip.frame_count;
  if (frames) out << ", \"frames\": " << json_int_list(clip.indices);
  if (clip.rotation_degrees != 0) out << ", \"rotation\": " << clip.rotation_degrees;
  return out.str();
}

// The input line, and the decode line for decoded inputs; `sampled`: the indices too.
std::string clip_text(const std::string& input, const video::Clip& clip, bool sampled) {
  std::ostringstream out;
  out << "input: " << input << " (" << video::input_kind_name(clip.kind) << ", " << clip.frame_count << " frames";
  if (sampled && clip.kind != video::InputKind::npy) {
    out << "; sampled";
    for (int64_t i : clip.indices) out << " " << i;
  }
  if (clip.rotation_degrees != 0) out << "; rotated " << clip.rotation_degrees << " degrees";
  out << ")\n";
  if (clip.kind != video::InputKind::npy) {
    out << format_line("decode %.1f ms, preprocess %.1f ms\n", clip.decode_ms, clip.preprocess_ms);
  }
  return out.str();
}

std::string json_input(const std::string& input) {
  return "{\"input\": " + (input.empty() ? std::string("null") : json_quote(input));
}

// The end of a failed input's object, newline included.
std::string json_error(const std::string& error) { return ", \"error\": " + json_quote(error) + "}\n"; }

std::string ensemble_name(const EnsembleReport& report) {
  std::string archs;
  for (const RunReport& member : report.members) {
    const std::string& arch = member.model->config.arch;
    if (("+" + archs + "+").find("+" + arch + "+") == std::string::npos) archs += (archs.empty() ? "" : "+") + arch;
  }
  return archs + "_en";
}

std::string json_average_top(const EnsembleReport& report, const std::vector<double>& average) {
  const RunReport& any = report.members.front();
  return json_ranked(top_classes(average.data(), static_cast<int64_t>(average.size()), any.topk), *any.labels,
                     average, nullptr);
}

std::string json_member(const RunReport& report, const RunResult& result) {
  const LoadedModel& m = *report.model;
  const Tensor& logits = *result.logits;
  std::ostringstream out;
  out << "{\"arch\": " << json_quote(m.config.arch) << ", \"segments\": " << m.config.segments
      << ", \"weights\": " << json_quote(m.weights_source);
  if (result.clip) out << ", \"frames\": " << json_int_list(result.clip->indices);
  out << ", \"prepare_ms\": " << json_number(report.prepare_ms)
      << ", \"forward_ms\": " << json_number(result.forward_ms)
      << ", \"logits\": " << json_numbers(logits.data(), logits.dim(1)) << ", \"topk\": " << json_top(report, logits)
      << "}";
  return out.str();
}

}  // namespace

std::string run_header_text(const RunReport& report) {
  const LoadedModel& m = *report.model;
  std::string out = format_line("%s, %lld segments, %lld classes, weights: %s\n", m.config.arch.c_str(),
                           static_cast<long long>(m.config.segments),
                           static_cast<long long>(m.graph.output_shape()[1]), m.weights_source.c_str());
  if (m.load_ms > 0) out += format_line("checkpoint loaded in %.1f ms\n", m.load_ms);
  return out + format_line("plan prepared in %.1f ms\n", report.prepare_ms);
}

std::string run_result_text(const RunReport& report, const RunResult& result) {
  std::ostringstream out;  // not std::string concatenation: GCC 12 gives a false -Wrestrict on it
  out << "\n";
  if (result.clip) out << clip_text(result.input, *result.clip, true);
  const Tensor& logits = *result.logits;
  out << format_line("forward pass (%s engine): %.3f s\n\n%6s %8s %12s %12s  %s\n", report.engine.c_str(),
                result.forward_ms / 1000, "rank", "class", "probability", "logit",
                report.labels->empty() ? "" : "label");
  const int64_t classes = logits.dim(1);
  const auto best = top_classes(logits.data(), classes, report.topk);
  const auto prob = softmax(logits.data(), classes);
  for (std::size_t i = 0; i < best.size(); ++i) {
    out << format_line("%6zu %8d %12.6f %12.4f  %s\n", i + 1, best[i], prob[best[i]], logits.data()[best[i]],
                  report.labels->empty() ? "" : (*report.labels)[best[i]].c_str());
  }
  return out.str();
}

std::string run_result_json(const RunReport& report, const RunResult& result) {
  std::ostringstream out;
  out << json_input(result.input);
  if (!result.error.empty()) return out.str() + json_error(result.error);
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

std::string run_header_text(const EnsembleReport& report) {
  const LoadedModel& any = *report.members.front().model;
  std::ostringstream out;
  out << ensemble_name(report) << " (segments";
  for (std::size_t i = 0; i < report.members.size(); ++i) {
    out << (i ? ", " : " ") << report.members[i].model->config.segments;
  }
  out << "), " << any.graph.output_shape()[1] << " classes\n";
  for (std::size_t i = 0; i < report.members.size(); ++i) {
    const LoadedModel& m = *report.members[i].model;
    out << "member " << i + 1 << ": " << m.config.arch << ", " << m.config.segments
        << " segments, weights: " << m.weights_source << ";";
    if (m.load_ms > 0) out << format_line(" checkpoint loaded in %.1f ms,", m.load_ms);
    out << format_line(" plan prepared in %.1f ms\n", report.members[i].prepare_ms);
  }
  return out.str();
}

std::string run_result_text(const EnsembleReport& report, const EnsembleResult& result) {
  const RunReport& any = report.members.front();
  const auto label = [&](int i) { return any.labels->empty() ? std::string() : (*any.labels)[i]; };
  std::ostringstream out;
  out << "\n" << clip_text(result.input, *result.members.front().clip, false);
  for (std::size_t i = 0; i < result.members.size(); ++i) {
    const Tensor& logits = *result.members[i].logits;
    const int best = top_classes(logits.data(), logits.dim(1), 1).front();
    out << "member " << i + 1 << ": " << report.members[i].model->config.segments << " segments, weights: "
        << report.members[i].model->weights_source << "; top-1: class " << best
        << format_line(", probability %.6f", softmax(logits.data(), logits.dim(1))[best])
        << (label(best).empty() ? "" : " (" + label(best) + ")")
        << format_line("; forward pass (%s engine): %.3f s\n", any.engine.c_str(), result.members[i].forward_ms / 1000);
  }
  const std::vector<double>& average = result.average;
  out << format_line("\naverage of the members' probabilities:\n\n%6s %8s %12s", "rank", "class", "probability")
      << (any.labels->empty() ? "" : "  label") << "\n";
  const auto best = top_classes(average.data(), static_cast<int64_t>(average.size()), any.topk);
  for (std::size_t i = 0; i < best.size(); ++i) {
    out << format_line("%6zu %8d %12.6f", i + 1, best[i], average[best[i]])
        << (label(best[i]).empty() ? "" : "  " + label(best[i])) << "\n";
  }
  return out.str();
}

std::string run_result_json(const EnsembleReport& report, const EnsembleResult& result) {
  std::ostringstream out;
  out << json_input(result.input);
  if (!result.error.empty()) return out.str() + json_error(result.error);
  std::vector<int64_t> segments;
  double prepare = 0, forward = 0;
  for (std::size_t i = 0; i < result.members.size(); ++i) {
    segments.push_back(report.members[i].model->config.segments);
    prepare += report.members[i].prepare_ms;
    forward += result.members[i].forward_ms;
  }
  const video::Clip& clip = *result.members.front().clip;
  out << ", \"arch\": " << json_quote(ensemble_name(report)) << ", \"segments\": " << json_int_list(segments)
      << ", \"classes\": " << result.average.size() << json_clip(clip, false)
      << ", \"prepare_ms\": " << json_number(prepare) << ", \"seconds\": " << json_number(forward / 1000)
      << ", \"timings_ms\": {\"decode\": " << json_number(clip.decode_ms)
      << ", \"preprocess\": " << json_number(clip.preprocess_ms) << ", \"forward\": " << json_number(forward)
      << "}, \"members\": [";
  for (std::size_t i = 0; i < result.members.size(); ++i) {
    out << (i ? ", " : "") << json_member(report.members[i], result.members[i]);
  }
  out << "], \"average\": " << json_numbers(result.average.data(), static_cast<int64_t>(result.average.size()))
      << ", \"topk\": " << json_average_top(report, result.average) << "}\n";
  return out.str();
}

}  // namespace ecocpu::cli
