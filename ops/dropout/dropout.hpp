#pragma once
// Dropout is the identity at inference; it stays in the graph so ids and reports match the
// definition (and thop, which lists it with zero cost).
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"

namespace ecocpu {

class Dropout final : public Op {
 public:
  explicit Dropout(double ratio) : ratio_(ratio) {}
  // Attributes: dropout_ratio in [0, 1).
  static std::unique_ptr<Op> create(AttrReader& attrs);

  OpKind kind() const override { return OpKind::Dropout; }
  std::string_view type_name() const override { return "Dropout"; }
  Shape output_shape(Shapes inputs) const override { return inputs[0]; }
  Cost compute_cost(Shapes, const Shape&) const override { return {}; }
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
  std::string describe() const override;

 private:
  double ratio_;
};

}  // namespace ecocpu
