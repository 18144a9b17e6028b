#pragma once
// Inference BatchNorm ("BN" on 4-D, "BN3d" on 5-D), eps 1e-5. Learnable weight and bias; the
// running mean and variance are state, not parameters.
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

class BatchNorm final : public Op {
 public:
  explicit BatchNorm(int spatial_rank) : spatial_rank_(spatial_rank) {}
  // Attributes: `frozen` (training-only, accepted and ignored).
  static std::unique_ptr<Op> create(AttrReader& attrs, int spatial_rank);

  OpKind kind() const override { return OpKind::BatchNorm; }
  std::string_view type_name() const override { return spatial_rank_ == 3 ? "BN3d" : "BN"; }
  Shape output_shape(Shapes inputs) const override;
  std::vector<ParamSpec> params(Shapes inputs) const override;
  Cost compute_cost(Shapes inputs, const Shape& output) const override;
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;

 private:
  int spatial_rank_;
};

}  // namespace ecocpu
