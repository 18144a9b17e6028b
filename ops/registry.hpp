#pragma once
// The op names a definition file may use, and the factory for each.
#include <memory>
#include <string>
#include <vector>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

// Builds the op named `type` (e.g. "Conv3d") from its attributes. Throws AttrError for an unknown
// type or bad attributes, including attributes the op does not understand.
std::unique_ptr<Op> create_op(const std::string& type, const Attrs& attrs, int64_t segments);

std::vector<std::string> known_op_types();

}  // namespace ecocpu
