#pragma once
// Concatenation along the channel axis; every other dimension must agree.
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

class Concat final : public Op {
 public:
  static std::unique_ptr<Op> create(AttrReader& attrs);

  OpKind kind() const override { return OpKind::Concat; }
  std::string_view type_name() const override { return "Concat"; }
  bool takes_many_inputs() const override { return true; }
  Shape output_shape(Shapes inputs) const override;
  Cost compute_cost(Shapes, const Shape&) const override { return {}; }
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
};

}  // namespace ecocpu
