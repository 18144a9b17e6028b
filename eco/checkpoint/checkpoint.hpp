#pragma once
// ECO checkpoints as users hold them: a training checkpoint dict ({'epoch', 'arch', 'state_dict',
// 'best_prec1', ...}) or a bare state_dict, with or without DataParallel's "module." prefix, the
// classifier as TSN's `new_fc.*` or as `base_model.fc_final.*`. Parameters are matched to a graph
// by their canonical name "<layer id>.<param>".
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eco/checkpoint/torch_file.hpp"
#include "graph/ir.hpp"
#include "graph/weights.hpp"

namespace ecocpu {

struct CheckpointEntry {
  std::string name;       // as stored, e.g. "module.base_model.conv1_7x7_s2.weight"
  std::string canonical;  // "conv1_7x7_s2.weight"
  const TensorRef* tensor;
};

struct EcoCheckpoint {
  TorchFile file;
  std::optional<int64_t> epoch;
  std::optional<std::string> arch;
  std::optional<double> best_prec1;
  std::vector<CheckpointEntry> entries;  // the state_dict's tensors, in file order
};

// Throws FileError "<path>: <cause>".
EcoCheckpoint read_checkpoint(const std::string& path);
EcoCheckpoint read_checkpoint(TorchFile file);

// Without DataParallel's "module." and TSN's "base_model." prefixes.
std::string canonical_name(const std::string& stored);

// The classifier a state_dict carries: layer "new_fc" (TSN, dropout > 0) or the definition's own
// last layer (dropout 0: "fc_final" in ECO, "fc8" in C3DRes18), and its number of outputs.
// Throws FileError when there is neither.
struct ClassifierInfo {
  std::string layer;
  int64_t classes = 0;
};
ClassifierInfo find_classifier(const EcoCheckpoint& checkpoint, const std::string& last_layer);

// Every tensor the graph needs, as float32. Every missing, unexpected, mis-shaped or non-float
// tensor is reported in one FileError, with shapes; BatchNorm's num_batches_tracked is ignored.
WeightStore load_weights(const EcoCheckpoint& checkpoint, const Graph& graph);

}  // namespace ecocpu
