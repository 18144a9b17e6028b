#pragma once
// Layer attributes as the definition files spell them, and a reader that each op's factory uses to
// pull out what it understands. Whatever an op does not read is an error: a misspelt attribute
// must not silently fall back to a default.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>

namespace ecocpu {

using AttrValue = std::variant<int64_t, double, bool, std::string>;

// Limits on what a definition may ask for, far above any real network, low enough that no shape,
// parameter or cost count of a layer can overflow unnoticed (docs/counting.md).
constexpr int64_t kMaxChannels = int64_t{1} << 20;  // num_output of a convolution or classifier
constexpr int64_t kMaxWindow = int64_t{1} << 10;    // kernel, stride and pad, per axis
using Attrs = std::map<std::string, AttrValue>;

// A missing, unknown or ill-typed attribute. The graph builder adds the file and layer id.
class AttrError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string attr_to_string(const AttrValue& value);

// Per-axis integers for a layer with 1..3 spatial axes, depth first (d, h, w); a 2D op uses (h, w).
struct AxisInts {
  std::array<int64_t, 3> v{1, 1, 1};
  int rank = 0;
};

class AttrReader {
 public:
  // `segments` resolves the temporal expressions 'N' and 'N/k' that ECO Full uses for kernel_d.
  AttrReader(const Attrs& attrs, int64_t segments);

  bool has(const std::string& name) const { return attrs_.count(name) != 0; }
  int64_t get_int(const std::string& name);
  // get_int, and an AttrError unless min <= value <= max.
  int64_t get_int_in(const std::string& name, int64_t min, int64_t max);
  double get_number(const std::string& name);
  std::string get_string(const std::string& name);
  bool get_bool(const std::string& name);
  // Marks an attribute as understood but without effect at inference (e.g. BN's `frozen`).
  void ignore(const std::string& name);

  // Reads a per-axis attribute given either as one value for all axes (`scalar_name`, e.g.
  // "kernel_size" or "pad") or as one value per axis (`axis_prefix` + "_d"/"_h"/"_w").
  // Without either, returns `fallback` on every axis, or throws if `fallback` is empty.
  AxisInts get_axes(const std::string& scalar_name, const std::string& axis_prefix, int rank,
                    std::optional<int64_t> fallback);

  // Throws for every attribute nobody read.
  void finish() const;

 private:
  const AttrValue& find(const std::string& name);
  int64_t to_int(const std::string& name, const AttrValue& value) const;

  const Attrs& attrs_;
  int64_t segments_;
  std::set<std::string> used_;
};

}  // namespace ecocpu
