#include "ops/op.hpp"

namespace ecocpu {

Cost& Cost::operator+=(const Cost& other) {
  params += other.params;
  macs += other.macs;
  flops += other.flops;
  thop += other.thop;
  return *this;
}

int64_t learnable_params(const std::vector<ParamSpec>& specs) {
  int64_t n = 0;
  for (const auto& p : specs) {
    if (p.learnable) n += p.shape.numel();
  }
  return n;
}

Cost layer_cost(const Op& op, Shapes inputs, const Shape& output) {
  Cost c = op.compute_cost(inputs, output);
  c.params = learnable_params(op.params(inputs));
  return c;
}

}  // namespace ecocpu
