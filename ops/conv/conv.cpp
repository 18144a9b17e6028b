#include "ops/conv/conv.hpp"

#include "ops/conv/reference/conv_reference.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

Conv::Conv(int64_t out_channels, const Window& window, bool has_bias)
    : out_channels_(out_channels), window_(window), has_bias_(has_bias) {}

std::unique_ptr<Op> Conv::create(AttrReader& attrs, int spatial_rank) {
  int64_t out_channels = attrs.get_int_in("num_output", 1, kMaxChannels);
  Window window = read_window(attrs, spatial_rank);
  const bool has_bias = attrs.has("bias_term") ? attrs.get_bool("bias_term") : true;
  return std::make_unique<Conv>(out_channels, window, has_bias);
}

std::string_view Conv::type_name() const {
  return window_.spatial_rank == 3 ? "Conv3d" : "Convolution";
}

std::string Conv::describe() const { return window_.describe(); }

Shape Conv::output_shape(Shapes inputs) const {
  const Shape& in = inputs[0];
  require_rank(in, window_.spatial_rank + 2, std::string(type_name()));
  auto out = window_.output_extent(spatial_extent(in), Rounding::Floor);
  return make_feature_shape(in[0], out_channels_, out, window_.spatial_rank);
}

std::vector<ParamSpec> Conv::params(Shapes inputs) const {
  Shape weight{out_channels_, inputs[0][1]};
  for (int a = 3 - window_.spatial_rank; a < 3; ++a) weight.push_back(window_.kernel[a]);
  if (!has_bias_) return {{"weight", weight, true}};
  return {{"weight", weight, true}, {"bias", Shape{out_channels_}, true}};
}

Cost Conv::compute_cost(Shapes inputs, const Shape& output) const {
  Cost c;
  c.macs = checked_mul(checked_mul(output.numel(), inputs[0][1], "the MAC count"), window_.volume(),
                       "the MAC count");
  c.flops = checked_mul(2, c.macs, "the FLOP count");
  if (has_bias_) c.flops = checked_add(c.flops, output.numel(), "the FLOP count");  // bias adds
  c.thop = c.macs;                        // thop: no bias, one op per MAC
  return c;
}

reference::ConvProblem Conv::problem(const Shape& in, const Shape& out) const {
  reference::ConvProblem p;
  p.batch = in[0];
  p.in_channels = in[1];
  p.out_channels = out_channels_;
  p.in_extent = spatial_extent(in);
  p.out_extent = spatial_extent(out);
  p.window = window_;
  return p;
}

void Conv::run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const {
  const reference::ConvProblem p = problem(inputs[0]->shape(), output.shape());
  const float* bias = has_bias_ ? params[1]->data() : nullptr;
  reference::conv(p, inputs[0]->data(), params[0]->data(), bias, output.data());
}

}  // namespace ecocpu
