#pragma once
// The 2D-to-3D transition of ECO: the trunk's (N*T, C, H, W) output viewed as (N, T, C, H, W) and
// transposed to (N, C, T, H, W). The graph builder inserts it wherever a 3D op reads a 4-D value;
// it has no spelling of its own in the definition files.
#include <memory>

#include "ops/op.hpp"

namespace ecocpu {

class To3D final : public Op {
 public:
  explicit To3D(int64_t segments) : segments_(segments) {}

  OpKind kind() const override { return OpKind::To3D; }
  std::string_view type_name() const override { return "To3D"; }
  Shape output_shape(Shapes inputs) const override;
  Cost compute_cost(Shapes, const Shape&) const override { return {}; }
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
  std::string describe() const override { return "T=" + std::to_string(segments_); }

 private:
  int64_t segments_;
};

}  // namespace ecocpu
