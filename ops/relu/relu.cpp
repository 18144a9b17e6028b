#include "ops/relu/relu.hpp"

#include "ops/relu/reference/relu_reference.hpp"

namespace ecocpu {

std::unique_ptr<Op> ReLU::create(AttrReader& /*attrs*/) { return std::make_unique<ReLU>(); }

Cost ReLU::compute_cost(Shapes /*inputs*/, const Shape& output) const {
  Cost c;
  c.flops = output.numel();  // one comparison per element; thop counts nothing
  return c;
}

void ReLU::run_reference(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  reference::relu(output.numel(), inputs[0]->data(), output.data());
}

}  // namespace ecocpu
