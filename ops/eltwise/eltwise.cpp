#include "ops/eltwise/eltwise.hpp"

#include "ops/eltwise/reference/eltwise_reference.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

std::unique_ptr<Op> Eltwise::create(AttrReader& attrs) {
  if (attrs.has("operation")) {
    std::string op = attrs.get_string("operation");
    if (op != "SUM" && op != "sum") {
      throw AttrError("Eltwise operation '" + op + "' is not supported (only SUM)");
    }
  }
  return std::make_unique<Eltwise>();
}

Shape Eltwise::output_shape(Shapes inputs) const {
  if (inputs.size() < 2) throw ShapeError("Eltwise needs at least two inputs");
  for (const Shape& s : inputs) {
    if (s != inputs[0]) {
      throw ShapeError("Eltwise inputs differ in shape: " + inputs[0].str() + " and " + s.str());
    }
  }
  return inputs[0];
}

Cost Eltwise::compute_cost(Shapes inputs, const Shape& output) const {
  Cost c;
  c.flops = checked_mul(output.numel(), static_cast<int64_t>(inputs.size() - 1), "the FLOP count");  // thop counts none
  return c;
}

void Eltwise::run_reference(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  std::vector<const float*> data;
  for (const Tensor* t : inputs) data.push_back(t->data());
  reference::eltwise_sum(output.numel(), data, output.data());
}

}  // namespace ecocpu
