#include "ops/op.hpp"

#include "tensor/checked.hpp"

namespace ecocpu {

Cost& Cost::operator+=(const Cost& other) {
  params = checked_add(params, other.params, "the parameter count");
  macs = checked_add(macs, other.macs, "the MAC count");
  flops = checked_add(flops, other.flops, "the FLOP count");
  thop = checked_add(thop, other.thop, "the thop count");
  return *this;
}

int64_t learnable_params(const std::vector<ParamSpec>& specs) {
  int64_t n = 0;
  for (const auto& p : specs) {
    if (p.learnable) n = checked_add(n, p.shape.numel(), "the parameter count");
  }
  return n;
}

Cost layer_cost(const Op& op, Shapes inputs, const Shape& output) {
  Cost c = op.compute_cost(inputs, output);
  c.params = learnable_params(op.params(inputs));
  return c;
}

}  // namespace ecocpu
