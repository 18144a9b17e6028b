#pragma once
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

class ReLU final : public Op {
 public:
  static std::unique_ptr<Op> create(AttrReader& attrs);

  OpKind kind() const override { return OpKind::ReLU; }
  std::string_view type_name() const override { return "ReLU"; }
  Shape output_shape(Shapes inputs) const override { return inputs[0]; }
  Cost compute_cost(Shapes inputs, const Shape& output) const override;
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
};

}  // namespace ecocpu
