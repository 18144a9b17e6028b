// ecocpu inspect: a checkpoint's tensors and metadata, without building a model.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/report.hpp"
#include "tensor/checked.hpp"

namespace ecocpu::cli {

int cmd_inspect(const std::vector<std::string>& argv) {
  Args args("inspect", {{"json", "", "print the listing as JSON"}}, "FILE");
  if (!parse_or_help(args, argv,
                     "Lists a PyTorch checkpoint's tensors (name, dtype, shape, location) and its\n"
                     "metadata (epoch, arch, best_prec1) without building a model."))
    return 0;
  if (args.positional().size() != 1) throw UsageError("ecocpu inspect: give one checkpoint FILE");
  EcoCheckpoint c = read_checkpoint(args.positional()[0]);
  int64_t elements = 0;
  for (const auto& e : c.entries) {
    const auto n = tensor_numel(*e.tensor);
    const auto sum = n ? add_checked(elements, *n) : std::nullopt;
    if (!sum) throw FileError(c.file.path() + ": tensor '" + e.name + "' has more elements than a 64-bit count holds");
    elements = *sum;
  }
  std::ostringstream out;
  if (args.has("json")) {
    out << "{\"file\": " << json_quote(c.file.path()) << ", \"format\": \"" << c.file.format() << "\"";
    if (c.epoch) out << ", \"epoch\": " << *c.epoch;
    if (c.arch) out << ", \"arch\": " << json_quote(*c.arch);
    if (c.best_prec1) out << ", \"best_prec1\": " << json_number(*c.best_prec1);
    out << ", \"elements\": " << elements << ", \"tensors\": [";
    for (std::size_t i = 0; i < c.entries.size(); ++i) {
      const auto& t = *c.entries[i].tensor;
      out << (i ? ", " : "") << "{\"name\": " << json_quote(c.entries[i].name) << ", \"dtype\": "
          << json_quote(tensor_dtype(t)) << ", \"shape\": [";
      for (std::size_t d = 0; d < t.shape.size(); ++d) out << (d ? ", " : "") << t.shape[d];
      out << "], \"location\": " << json_quote(t.storage->location) << "}";
    }
    out << "]}\n";
  } else {
    out << "file: " << c.file.path() << " (" << c.file.format() << " format)\n";
    if (c.epoch) out << "epoch: " << *c.epoch << "\n";
    if (c.arch) out << "arch: " << *c.arch << "\n";
    if (c.best_prec1) out << "best_prec1: " << *c.best_prec1 << "\n";
    out << "tensors: " << c.entries.size() << ", elements: " << with_commas(elements) << "\n\n";
    for (const auto& e : c.entries) {
      std::string shape = "(";
      for (std::size_t d = 0; d < e.tensor->shape.size(); ++d) {
        shape += (d ? ", " : "") + std::to_string(e.tensor->shape[d]);
      }
      shape += ")";
      char line[512];
      std::snprintf(line, sizeof line, "%-60s %-9s %-24s %s\n", e.name.c_str(),
                    tensor_dtype(*e.tensor).c_str(), shape.c_str(), e.tensor->storage->location.c_str());
      out << line;
    }
  }
  std::cout << out.str();
  return 0;
}

}  // namespace ecocpu::cli
