#pragma once
// Turns a ModelDefinition into the IR for one configuration: resolves names (with rebinding),
// builds each op from its attributes, inserts the 2D-to-3D transition, applies ECO's model rules
// and the TSN classifier, and infers every shape. Any problem is a DefinitionError naming the
// source, the layer and the cause.
#include <string>

#include "graph/definition.hpp"
#include "graph/ir.hpp"

namespace ecocpu {

struct BuildOptions {
  // "ECO" applies ECO Lite's rule: the temporal kernel of the Pooling3d layer `global_pool` is
  // segments / 4.
  std::string arch;
  int64_t segments = 16;
  // Classifier outputs; 0 keeps the definition's num_output.
  int64_t classes = 0;
  // TSN wrapper: with dropout > 0 the last InnerProduct becomes a Dropout and `new_fc` follows;
  // with 0 the last InnerProduct is kept with `classes` outputs.
  double dropout = 0.5;
  int64_t clips = 1;  // batch size in clips of `segments` frames
  int64_t image_size = 224;
};

Graph build_graph(const ModelDefinition& def, const BuildOptions& options);

}  // namespace ecocpu
