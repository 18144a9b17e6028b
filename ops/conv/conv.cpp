#include "ops/conv/conv.hpp"

#include "ops/conv/reference/conv_reference.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

Conv::Conv(int64_t out_channels, const Window& window)
    : out_channels_(out_channels), window_(window) {}

std::unique_ptr<Op> Conv::create(AttrReader& attrs, int spatial_rank) {
  int64_t out_channels = attrs.get_int_in("num_output", 1, kMaxChannels);
  Window window = read_window(attrs, spatial_rank);
  return std::make_unique<Conv>(out_channels, window);
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
  return {{"weight", weight, true}, {"bias", Shape{out_channels_}, true}};
}

Cost Conv::compute_cost(Shapes inputs, const Shape& output) const {
  Cost c;
  c.macs = checked_mul(checked_mul(output.numel(), inputs[0][1], "the MAC count"), window_.volume(),
                       "the MAC count");
  // + one bias add per output
  c.flops = checked_add(checked_mul(2, c.macs, "the FLOP count"), output.numel(), "the FLOP count");
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
  reference::conv(p, inputs[0]->data(), params[0]->data(), params[1]->data(), output.data());
}

}  // namespace ecocpu
