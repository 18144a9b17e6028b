#pragma once
// Element-wise sum of same-shaped inputs (Caffe's Eltwise SUM; ECO's residual connections).
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

class Eltwise final : public Op {
 public:
  // Attributes: `operation` may be given as SUM (Caffe's default and ECO's only use).
  static std::unique_ptr<Op> create(AttrReader& attrs);

  OpKind kind() const override { return OpKind::Eltwise; }
  std::string_view type_name() const override { return "Eltwise"; }
  bool takes_many_inputs() const override { return true; }
  Shape output_shape(Shapes inputs) const override;
  Cost compute_cost(Shapes inputs, const Shape& output) const override;
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
};

}  // namespace ecocpu
