#pragma once
// Fully connected layer. As upstream builds it, its input features are the input's channel count:
// the input is flattened, so every axis after the channels must have size 1.
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

class InnerProduct final : public Op {
 public:
  explicit InnerProduct(int64_t out_features) : out_features_(out_features) {}
  // Attributes: num_output.
  static std::unique_ptr<Op> create(AttrReader& attrs);

  OpKind kind() const override { return OpKind::InnerProduct; }
  std::string_view type_name() const override { return "InnerProduct"; }
  Shape output_shape(Shapes inputs) const override;
  std::vector<ParamSpec> params(Shapes inputs) const override;
  Cost compute_cost(Shapes inputs, const Shape& output) const override;
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
  std::string describe() const override { return std::to_string(out_features_) + " outputs"; }

  int64_t out_features() const { return out_features_; }

 private:
  int64_t out_features_;
};

}  // namespace ecocpu
