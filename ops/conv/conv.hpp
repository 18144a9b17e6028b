#pragma once
// Convolution, 2D ("Convolution") and 3D ("Conv3d"), with a bias unless `bias_term: false` (as
// Caffe spells it; upstream's C3DRes18 builds its 3D convolutions without one).
#include <memory>

#include "ops/attrs.hpp"
#include "ops/conv/reference/conv_reference.hpp"
#include "ops/op.hpp"
#include "ops/window.hpp"

namespace ecocpu {

class Conv final : public Op {
 public:
  Conv(int64_t out_channels, const Window& window, bool has_bias = true);
  // Attributes: num_output, kernel_size|kernel_*, pad|pad_*, stride|stride_*, bias_term.
  static std::unique_ptr<Op> create(AttrReader& attrs, int spatial_rank);

  OpKind kind() const override { return OpKind::Conv; }
  std::string_view type_name() const override;
  Shape output_shape(Shapes inputs) const override;
  std::vector<ParamSpec> params(Shapes inputs) const override;
  Cost compute_cost(Shapes inputs, const Shape& output) const override;
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
  std::string describe() const override;

  int64_t out_channels() const { return out_channels_; }
  // The kernel-level description of this convolution between tensors of these shapes.
  reference::ConvProblem problem(const Shape& in, const Shape& out) const;
  const Window& window() const { return window_; }
  bool has_bias() const { return has_bias_; }

 private:
  int64_t out_channels_;
  Window window_;
  bool has_bias_;
};

}  // namespace ecocpu
