#include "eco/report.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "graph/executor.hpp"
#include "graph/weights.hpp"

namespace ecocpu {

CostedModel cost_model(const ModelConfig& config) {
  CostedModel m{config, build_model(config), {}};
  m.report = count_costs(m.graph);
  return m;
}

std::string with_commas(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 (overlong forms, surrogates and code points
// past U+10FFFF are invalid).
std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  const bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
  return n;
}

}  // namespace

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {  // not UTF-8 (a Latin-1 label file, a crafted name): the replacement character
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.append(s, i, n);
    }
    i += n;
  }
  return out + "\"";
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

namespace {

std::string pad_right(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}
std::string pad_left(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

std::string model_title(const CostedModel& m) {
  return m.config.arch + ", " + std::to_string(m.config.segments) + " segments, " +
         std::to_string(m.graph.output_shape()[1]) + " classes, input " +
         m.graph.input_shape().str() + ", definition: " + m.graph.source;
}

std::string thop_lines(const Cost& total) {
  return "FLOPs = " + format_giga(total.thop) + "\nparams = " + format_mega(total.params) + "\n";
}

std::string totals_text(const Cost& total) {
  return "params " + with_commas(total.params) + ", MACs " + with_commas(total.macs) +
         ", FLOPs " + with_commas(total.flops) + ", thop FLOPs " + with_commas(total.thop) + "\n";
}

std::string json_cost(const Cost& c) {
  return "{\"params\": " + std::to_string(c.params) + ", \"macs\": " + std::to_string(c.macs) +
         ", \"flops\": " + std::to_string(c.flops) + ", \"thop\": " + std::to_string(c.thop) + "}";
}

std::string json_shape(const Shape& s) {
  std::string out = "[";
  for (int i = 0; i < s.rank(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string model_json(const CostedModel& m, const std::string& indent) {
  std::ostringstream out;
  out << "{\n" << indent << "  \"arch\": " << json_quote(m.config.arch) << ",\n"
      << indent << "  \"segments\": " << m.config.segments << ",\n"
      << indent << "  \"classes\": " << m.graph.output_shape()[1] << ",\n"
      << indent << "  \"total\": " << json_cost(m.report.total) << ",\n"
      << indent << "  \"layers\": [";
  for (std::size_t i = 0; i < m.report.layers.size(); ++i) {
    const auto& l = m.report.layers[i];
    out << (i ? "," : "") << "\n" << indent << "    {\"id\": " << json_quote(l.id)
        << ", \"op\": " << json_quote(l.type) << ", \"output\": " << json_shape(l.output)
        << ", \"params\": " << l.cost.params << ", \"macs\": " << l.cost.macs
        << ", \"flops\": " << l.cost.flops << ", \"thop\": " << l.cost.thop << "}";
  }
  out << "\n" << indent << "  ]\n" << indent << "}";
  return out.str();
}

Cost sum_totals(const std::vector<CostedModel>& members) {
  Cost total;
  for (const auto& m : members) total += m.report.total;
  return total;
}

}  // namespace

std::string flops_table(const CostedModel& m) {
  std::ostringstream out;
  out << model_title(m) << "\n\n";
  const std::size_t w_id = 40, w_op = 13, w_shape = 24, w_num = 16;
  out << pad_right("layer", w_id) << pad_right("op", w_op) << pad_right("output", w_shape)
      << pad_left("params", w_num) << pad_left("MACs", w_num) << pad_left("thop FLOPs", w_num)
      << "\n"
      << std::string(w_id + w_op + w_shape + 3 * w_num, '-') << "\n";
  for (const auto& l : m.report.layers) {
    out << pad_right(l.id, w_id) << pad_right(l.type, w_op) << pad_right(l.output.str(), w_shape)
        << pad_left(with_commas(l.cost.params), w_num) << pad_left(with_commas(l.cost.macs), w_num)
        << pad_left(with_commas(l.cost.thop), w_num) << "\n";
  }
  out << std::string(w_id + w_op + w_shape + 3 * w_num, '-') << "\n"
      << "total: " << totals_text(m.report.total) << "\n"
      << thop_lines(m.report.total);
  return out.str();
}

std::string flops_json(const CostedModel& m) { return model_json(m, "") + "\n"; }

std::string ensemble_table(const std::vector<CostedModel>& members) {
  std::ostringstream out;
  out << members.front().config.arch << "_en: ensemble of " << members.size()
      << " models, the sum of its members\n\n";
  const std::size_t w = 18;
  out << pad_left("segments", 10) << pad_left("params", w) << pad_left("MACs", w)
      << pad_left("FLOPs", w) << pad_left("thop FLOPs", w) << "\n";
  for (const auto& m : members) {
    const Cost& c = m.report.total;
    out << pad_left(std::to_string(m.config.segments), 10) << pad_left(with_commas(c.params), w)
        << pad_left(with_commas(c.macs), w) << pad_left(with_commas(c.flops), w)
        << pad_left(with_commas(c.thop), w) << "\n";
  }
  const Cost total = sum_totals(members);
  out << pad_left("sum", 10) << pad_left(with_commas(total.params), w)
      << pad_left(with_commas(total.macs), w) << pad_left(with_commas(total.flops), w)
      << pad_left(with_commas(total.thop), w) << "\n\n"
      << thop_lines(total);
  return out.str();
}

std::string ensemble_json(const std::vector<CostedModel>& members) {
  std::ostringstream out;
  out << "{\n  \"arch\": " << json_quote(members.front().config.arch + "_en")
      << ",\n  \"segments\": [";
  for (std::size_t i = 0; i < members.size(); ++i) {
    out << (i ? ", " : "") << members[i].config.segments;
  }
  out << "],\n  \"classes\": " << members.front().graph.output_shape()[1]
      << ",\n  \"total\": " << json_cost(sum_totals(members)) << ",\n  \"members\": [";
  for (std::size_t i = 0; i < members.size(); ++i) {
    out << (i ? "," : "") << "\n    " << model_json(members[i], "    ");
  }
  out << "\n  ]\n}\n";
  return out.str();
}

std::string summary_table(const CostedModel& m, const EngineMemory& engine) {
  std::ostringstream out;
  const std::size_t w_layer = 56, w_shape = 26, w_num = 14;
  const std::string rule(w_layer + w_shape + w_num, '-');
  out << model_title(m) << "\n" << rule << "\n"
      << pad_right("Layer (type)", w_layer) << pad_right("Output Shape", w_shape)
      << pad_left("Param #", w_num) << "\n"
      << std::string(rule.size(), '=') << "\n";
  double activations = 0;  // a sum of up to every value's size: may pass what an int64 holds
  for (const auto& node : m.graph.nodes) {
    const Shape& shape = m.graph.values[node.output].shape;
    activations += static_cast<double>(shape.numel());
    out << pad_right(node.id + " (" + std::string(node.op->type_name()) + ")", w_layer)
        << pad_right(shape.str(), w_shape) << pad_left(with_commas(node.cost.params), w_num)
        << "\n";
  }
  const double mb = 1024.0 * 1024.0;
  const int64_t input_bytes = m.graph.input_shape().numel() * 4;
  const int64_t peak = peak_activation_bytes(m.graph);
  const int64_t weights = weight_bytes(m.graph);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "Input size (MB): %.2f\n"
                "Activations, every layer's output (MB): %.2f\n"
                "Activations, peak live while running (MB): %.2f\n"
                "Weights incl. BatchNorm statistics (MB): %.2f\n"
                "Fast engine workspace, %d threads (MB): %.2f\n"
                "Estimated total to run (MB): %.2f\n",
                static_cast<double>(input_bytes) / mb, activations * 4 / mb,
                static_cast<double>(peak) / mb, static_cast<double>(weights) / mb, engine.threads,
                static_cast<double>(engine.workspace_bytes) / mb,
                static_cast<double>(peak) / mb + static_cast<double>(weights) / mb +
                    static_cast<double>(engine.workspace_bytes) / mb);
  out << std::string(rule.size(), '=') << "\n"
      << "Total params: " << with_commas(m.report.total.params) << "\n"
      << rule << "\n" << buf << rule << "\n";
  return out.str();
}

}  // namespace ecocpu
