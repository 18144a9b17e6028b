#include "ops/pool/pool.hpp"

#include "ops/pool/separable/pool_separable.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

Pool::Pool(reference::PoolMode mode, const Window& window) : mode_(mode), window_(window) {
  for (int a = 0; a < 3; ++a) {
    // PyTorch refuses padding wider than half the window; so do we.
    if (window_.pad[a] * 2 > window_.kernel[a]) {
      throw AttrError("pad " + std::to_string(window_.pad[a]) + " is more than half the kernel " +
                      std::to_string(window_.kernel[a]));
    }
  }
}

std::unique_ptr<Op> Pool::create(AttrReader& attrs, int spatial_rank) {
  std::string mode = attrs.get_string("mode");
  reference::PoolMode m;
  if (mode == "max") {
    m = reference::PoolMode::Max;
  } else if (mode == "ave") {
    m = reference::PoolMode::Average;
  } else {
    throw AttrError("attribute 'mode' must be 'max' or 'ave', got '" + mode + "'");
  }
  return std::make_unique<Pool>(m, read_window(attrs, spatial_rank));
}

std::string_view Pool::type_name() const {
  return window_.spatial_rank == 3 ? "Pooling3d" : "Pooling";
}

std::string Pool::describe() const {
  return (mode_ == reference::PoolMode::Max ? "max " : "ave ") + window_.describe();
}

Shape Pool::output_shape(Shapes inputs) const {
  const Shape& in = inputs[0];
  require_rank(in, window_.spatial_rank + 2, std::string(type_name()));
  auto out = window_.output_extent(spatial_extent(in), Rounding::Ceil);
  return make_feature_shape(in[0], in[1], out, window_.spatial_rank);
}

Cost Pool::compute_cost(Shapes /*inputs*/, const Shape& output) const {
  Cost c;
  if (mode_ == reference::PoolMode::Max) {
    c.flops = checked_mul(output.numel(), window_.volume() - 1, "the FLOP count");  // comparisons; thop counts none
  } else {
    c.flops = checked_mul(output.numel(), window_.volume(), "the FLOP count");  // adds and one divide per output
    c.thop = output.numel();                      // thop: one op per output element
  }
  return c;
}

reference::PoolProblem Pool::problem(const Shape& in, const Shape& output) const {
  reference::PoolProblem p;
  p.planes = in[0] * in[1];
  p.in_extent = spatial_extent(in);
  p.out_extent = spatial_extent(output);
  p.window = window_;
  p.mode = mode_;
  return p;
}

void Pool::run_reference(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  reference::pool(problem(inputs[0]->shape(), output.shape()), inputs[0]->data(), output.data());
}

void Pool::run_fast(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  fast::pool_separable(problem(inputs[0]->shape(), output.shape()), inputs[0]->data(), output.data());
}

ScratchSize Pool::fast_scratch(Shapes inputs, const Shape& output, int threads) const {
  return fast::pool_separable_scratch(problem(inputs[0], output), threads);
}

}  // namespace ecocpu
