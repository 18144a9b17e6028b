#pragma once
// Turns a ModelDefinition into the IR for one configuration: resolves names (with rebinding),
// builds each op from its attributes, inserts the 2D-to-3D transition and infers every shape. It
// knows no model: rules such as ECO Lite's pooling or TSN's classifier are rewrites of the
// definition made before (eco/model.hpp). Any problem is a DefinitionError naming the source, the
// layer and the cause.
#include <string>

#include "graph/definition.hpp"
#include "graph/ir.hpp"

namespace ecocpu {

struct BuildOptions {
  int64_t segments = 16;  // frames per clip; also the value of 'N' in attributes
  int64_t clips = 1;      // batch size in clips of `segments` frames
  int64_t image_size = 224;
};

Graph build_graph(const ModelDefinition& def, const BuildOptions& options);

// A node's output shape from its inputs' shapes in `graph`, with its parameters and cost filled in.
// Throws ShapeError (or OverflowError) when the inputs cannot feed it.
Shape infer_node(const Graph& graph, Node& node);

}  // namespace ecocpu
