#pragma once
// The body both checkpoint targets share: what `ecocpu inspect` and `ecocpu run --weights` do with
// a file, from bytes in memory. Every tensor reachable from the root is converted, which is more than the
// CLI does (`run` converts only tensors of the model's exact shapes): TorchFile::to_float32 is a
// public entry point that promises to check any window, so any window is tried. Then the
// state_dict is matched against a small ECO Lite graph, as `run` does.
#include <exception>
#include <unordered_set>
#include <vector>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/definitions.hpp"
#include "eco/model.hpp"
#include "refusal.hpp"

namespace ecocpu::fuzz {

// Every tensor reachable from the root, each once. Pickles can build cycles and deep nesting, so
// the walk is iterative with a visited set, and bounded: a few thousand objects is plenty for
// the inputs the fuzzer makes, and the unpickler's own limits are tested by read().
inline std::vector<const TensorRef*> reachable_tensors(const PyObject& root) {
  constexpr std::size_t kMaxVisits = 10000;
  std::vector<const TensorRef*> tensors;
  std::unordered_set<const PyObject*> seen;
  std::vector<const PyObject*> todo{&root};
  while (!todo.empty() && seen.size() < kMaxVisits) {
    const PyObject* o = todo.back();
    todo.pop_back();
    if (!seen.insert(o).second) continue;
    if (o->type == PyType::Tensor && o->tensor) tensors.push_back(o->tensor.get());
    for (const PyObject* item : o->items) todo.push_back(item);
    for (const auto& [k, v] : o->entries) {
      todo.push_back(k);
      todo.push_back(v);
    }
  }
  return tensors;
}

// Built once: ECO Lite at 4 segments is the smallest model a checkpoint is checked against.
inline const Graph& small_eco_graph() {
  static const Graph graph = [] {
    ModelConfig config;
    config.arch = "ECO";
    config.segments = 4;
    config.classes = 10;
    return build_model(eco_lite_definition(), config);
  }();
  return graph;
}

inline void fuzz_checkpoint_bytes(const uint8_t* data, std::size_t size) {
  try {
    TorchFile file = TorchFile::read(MappedFile::from_bytes("fuzz.pth", std::vector<uint8_t>(data, data + size)));
    for (const TensorRef* t : reachable_tensors(file.root())) {
      try {
        (void)tensor_dtype(*t);
        (void)tensor_numel(*t);
        (void)file.to_float32(*t, "t");
      } catch (const std::exception& e) {
        report_refusal(e);  // one bad tensor does not stop the others being read
      }
    }
    EcoCheckpoint checkpoint = read_checkpoint(std::move(file));
    try {
      (void)find_classifier(checkpoint, "fc_final");
    } catch (const std::exception& e) {
      report_refusal(e);
    }
    (void)load_weights(checkpoint, small_eco_graph());
  } catch (const std::exception& e) {
    report_refusal(e);
  }
}

}  // namespace ecocpu::fuzz
