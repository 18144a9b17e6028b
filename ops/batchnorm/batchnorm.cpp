#include "ops/batchnorm/batchnorm.hpp"

#include "ops/batchnorm/reference/batchnorm_reference.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

std::unique_ptr<Op> BatchNorm::create(AttrReader& attrs, int spatial_rank) {
  attrs.ignore("frozen");
  return std::make_unique<BatchNorm>(spatial_rank);
}

Shape BatchNorm::output_shape(Shapes inputs) const {
  require_rank(inputs[0], spatial_rank_ + 2, std::string(type_name()));
  return inputs[0];
}

std::vector<ParamSpec> BatchNorm::params(Shapes inputs) const {
  Shape c{inputs[0][1]};
  return {{"weight", c, true},
          {"bias", c, true},
          {"running_mean", c, false},
          {"running_var", c, false}};
}

Cost BatchNorm::compute_cost(Shapes inputs, const Shape& /*output*/) const {
  Cost c;
  c.macs = inputs[0].numel();  // folded to one scale-and-shift per element
  c.flops = checked_mul(2, c.macs, "the FLOP count");
  // thop 0.1.1: 2 per element for the normalisation, doubled for the affine weight and bias.
  c.thop = checked_mul(4, c.macs, "the thop count");
  return c;
}

void BatchNorm::run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const {
  const Tensor& in = *inputs[0];
  reference::batchnorm(in.dim(0), in.dim(1), in.shape().numel_from(2), in.data(), params[0]->data(),
                       params[1]->data(), params[2]->data(), params[3]->data(), output.data());
}

}  // namespace ecocpu
