// YAML model definitions (`--model-def`): the loader, the model rules of every arch, the graph
// builder, the cost counter and the memory estimate. The network is never run.
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include "eco/model.hpp"
#include "graph/counter.hpp"
#include "graph/executor.hpp"
#include "graph/yaml_loader.hpp"
#include "interesting.hpp"
#include "refusal.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using namespace ecocpu;
using namespace ecocpu::fuzz;

void build_and_count(const ModelDefinition& def, const std::string& arch, int64_t segments, double dropout,
                     int64_t image_size) {
  ModelConfig config;
  config.arch = arch;
  config.segments = segments;
  config.classes = 10;
  config.dropout = dropout;
  config.image_size = image_size;
  try {
    const Graph graph = build_model(def, config);
    (void)count_costs(graph);
    (void)estimated_run_bytes(graph);
  } catch (const std::exception& e) {
    report_refusal(e);
  }
}

// Spans of numbers (with a sign, a fraction and an exponent) in the text, not the digits of
// layer names such as conv1_7x7_s2: renaming layers only breaks references.
std::vector<std::pair<std::size_t, std::size_t>> numbers_in(const std::string& text) {
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (std::size_t i = 0; i < text.size();) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    if (i > 0 && (std::isalpha(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_')) {
      while (i < text.size() && std::isalnum(static_cast<unsigned char>(text[i]))) ++i;  // part of a name
      continue;
    }
    const std::size_t start = i > 0 && text[i - 1] == '-' ? i - 1 : i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) ||
                               std::string_view(".eE+-").find(text[i]) != std::string_view::npos)) {
      ++i;
    }
    spans.emplace_back(start, i - start);
  }
  return spans;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ModelDefinition def;
  try {
    def = load_definition_text(text, "fuzz.yaml");
  } catch (const std::exception& e) {
    report_refusal(e);
    return 0;
  }
  // Options from the input's length, so that a crash reproduces from the file alone.
  const int64_t segments = size % 2 ? 4 : 8;
  const double dropout = size % 3 ? 0.5 : 0.0;
  build_and_count(def, "ECO", segments, dropout, 224);
  build_and_count(def, "ECOfull", segments, dropout, 224);
  build_and_count(def, "C3DRes18", segments, dropout, 112);
  return 0;
}

// Replaces one number of the text (a kernel size, a stride, num_output, 'N/4') with an
// interesting one; the YAML stays valid, so the change reaches the builder.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng rng(seed);
  std::string text(reinterpret_cast<const char*>(data), size);
  const auto spans = numbers_in(text);
  if (spans.empty() || rng.one_in(3)) return LLVMFuzzerMutate(data, size, max_size);
  const auto [at, length] = spans[rng.below(spans.size())];
  text.replace(at, length, rng.pick(kInterestingNumberTexts));
  if (text.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, text.data(), text.size());
  return text.size();
}
