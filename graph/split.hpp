#pragma once
// A model cut where its per-frame 2D part ends, for online recognition (eco/stream): a frame's 2D
// features are computed once and kept while the frame stays in the working memory, and only the
// 3D part runs on the whole memory at each update.
//
// The features are the values the model's To3D transitions read (ECO Lite: inception-3c's map; ECO
// Full: that map and the 2D branch's pooled 1024-d vector). `frames` holds every node they depend
// on and runs on any batch of frames, each frame on its own; `clip` holds the rest and takes the
// features of a clip's frames, stacked in time order, as the model would have computed them.
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.hpp"
#include "graph/weights.hpp"

namespace ecocpu {

struct SplitModel {
  Graph frames;  // input (batch, 3, S, S); outputs: the features, (batch, ...) each
  Graph clip;    // inputs: the features of the model's frames, (clips * segments, ...) each; output: the model's
  std::vector<std::string> features;  // their names, in the order of frames.outputs and clip.inputs
};

// Throws DefinitionError "<source>: <cause>" for a model that has no To3D transition or whose 3D
// part reads a 2D value other than through one (so a frame's work would depend on other frames),
// and for a batch below 1 or one whose shapes overflow.
SplitModel split_at_frames(const Graph& model, int64_t batch);

// The tensors of `all` that `part`'s nodes read (shared, not copied), so that each part's plan gets
// exactly its own weights.
WeightStore part_weights(const Graph& part, const WeightStore& all);

}  // namespace ecocpu
