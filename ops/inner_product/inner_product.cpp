#include "ops/inner_product/inner_product.hpp"

#include "ops/inner_product/reference/inner_product_reference.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

std::unique_ptr<Op> InnerProduct::create(AttrReader& attrs) {
  int64_t n = attrs.get_int_in("num_output", 1, kMaxChannels);
  return std::make_unique<InnerProduct>(n);
}

Shape InnerProduct::output_shape(Shapes inputs) const {
  const Shape& in = inputs[0];
  if (in.rank() < 2) throw ShapeError("InnerProduct needs a batch and a feature axis, got " + in.str());
  if (in.numel_from(1) != in[1]) {
    throw ShapeError("InnerProduct input " + in.str() + " flattens to " +
                     std::to_string(in.numel_from(1)) + " features but the layer takes " +
                     std::to_string(in[1]) + " (every axis after the channels must be 1)");
  }
  return Shape{in[0], out_features_};
}

std::vector<ParamSpec> InnerProduct::params(Shapes inputs) const {
  return {{"weight", Shape{out_features_, inputs[0][1]}, true},
          {"bias", Shape{out_features_}, true}};
}

Cost InnerProduct::compute_cost(Shapes inputs, const Shape& output) const {
  Cost c;
  c.macs = checked_mul(inputs[0][1], output.numel(), "the MAC count");
  c.flops = checked_add(checked_mul(2, c.macs, "the FLOP count"), output.numel(), "the FLOP count");
  c.thop = c.macs;
  return c;
}

void InnerProduct::run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const {
  const Tensor& in = *inputs[0];
  reference::inner_product(in.dim(0), in.dim(1), out_features_, in.data(), params[0]->data(),
                           params[1]->data(), output.data());
}

}  // namespace ecocpu
