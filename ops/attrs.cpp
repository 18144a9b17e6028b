#include "ops/attrs.hpp"

#include <charconv>
#include <cmath>
#include <sstream>

namespace ecocpu {

std::string attr_to_string(const AttrValue& value) {
  struct Printer {
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const {
      std::ostringstream s;
      s << v;
      return s.str();
    }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return "'" + v + "'"; }
  };
  return std::visit(Printer{}, value);
}

namespace {

std::optional<int64_t> parse_whole(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// 'N' is the segment count, 'N/k' the segment count divided by k (integer division, as upstream).
std::optional<int64_t> parse_segment_expression(std::string text, int64_t segments) {
  std::erase(text, ' ');
  if (text == "N") return segments;
  if (text.size() > 2 && text.starts_with("N/")) {
    auto divisor = parse_whole(std::string_view(text).substr(2));
    if (!divisor || *divisor <= 0) return std::nullopt;
    return segments / *divisor;
  }
  return parse_whole(text);
}

}  // namespace

AttrReader::AttrReader(const Attrs& attrs, int64_t segments) : attrs_(attrs), segments_(segments) {}

const AttrValue& AttrReader::find(const std::string& name) {
  auto it = attrs_.find(name);
  if (it == attrs_.end()) throw AttrError("missing attribute '" + name + "'");
  used_.insert(name);
  return it->second;
}

int64_t AttrReader::to_int(const std::string& name, const AttrValue& value) const {
  if (auto* i = std::get_if<int64_t>(&value)) return *i;
  if (auto* d = std::get_if<double>(&value); d && std::floor(*d) == *d && std::abs(*d) < 1e15) {
    return static_cast<int64_t>(*d);
  }
  if (auto* s = std::get_if<std::string>(&value)) {
    if (auto v = parse_segment_expression(*s, segments_)) return *v;
  }
  throw AttrError("attribute '" + name + "' must be a whole number or 'N/k', got " +
                  attr_to_string(value));
}

int64_t AttrReader::get_int(const std::string& name) { return to_int(name, find(name)); }

int64_t AttrReader::get_int_in(const std::string& name, int64_t min, int64_t max) {
  const int64_t v = get_int(name);
  if (v < min || v > max) {
    throw AttrError(name + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
                    ", got " + std::to_string(v));
  }
  return v;
}

double AttrReader::get_number(const std::string& name) {
  const AttrValue& v = find(name);
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  throw AttrError("attribute '" + name + "' must be a number, got " + attr_to_string(v));
}

std::string AttrReader::get_string(const std::string& name) {
  const AttrValue& v = find(name);
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  throw AttrError("attribute '" + name + "' must be a string, got " + attr_to_string(v));
}

bool AttrReader::get_bool(const std::string& name) {
  const AttrValue& v = find(name);
  if (auto* b = std::get_if<bool>(&v)) return *b;
  throw AttrError("attribute '" + name + "' must be true or false, got " + attr_to_string(v));
}

void AttrReader::ignore(const std::string& name) {
  if (has(name)) used_.insert(name);
}

AxisInts AttrReader::get_axes(const std::string& scalar_name, const std::string& axis_prefix,
                              int rank, std::optional<int64_t> fallback) {
  static constexpr const char* kSuffix3[] = {"_d", "_h", "_w"};
  static constexpr const char* kSuffix2[] = {"_h", "_w"};
  const char* const* suffixes = rank == 3 ? kSuffix3 : kSuffix2;

  AxisInts out;
  out.rank = rank;
  int per_axis_given = 0;
  for (int a = 0; a < rank; ++a) per_axis_given += has(axis_prefix + suffixes[a]) ? 1 : 0;

  if (has(scalar_name)) {
    if (per_axis_given) {
      throw AttrError("both '" + scalar_name + "' and '" + axis_prefix + "_*' are given");
    }
    int64_t v = get_int(scalar_name);
    for (int a = 0; a < rank; ++a) out.v[a] = v;
  } else if (per_axis_given == rank) {
    for (int a = 0; a < rank; ++a) out.v[a] = get_int(axis_prefix + suffixes[a]);
  } else if (per_axis_given > 0) {
    std::string names;
    for (int a = 0; a < rank; ++a) names += (a ? ", " : "") + axis_prefix + suffixes[a];
    throw AttrError("give all of " + names + " or '" + scalar_name + "'");
  } else if (fallback) {
    for (int a = 0; a < rank; ++a) out.v[a] = *fallback;
  } else {
    throw AttrError("missing attribute '" + scalar_name + "'");
  }
  return out;
}

void AttrReader::finish() const {
  for (const auto& [name, value] : attrs_) {
    if (!used_.count(name)) {
      throw AttrError("unknown attribute '" + name + "' (" + attr_to_string(value) + ")");
    }
  }
}

}  // namespace ecocpu
