#pragma once
// Max / average pooling, 2D ("Pooling") and 3D ("Pooling3d"), always in ceil mode with padded
// cells counted in averages, as upstream ECO builds them.
#include <memory>

#include "ops/attrs.hpp"
#include "ops/op.hpp"
#include "ops/pool/reference/pool_reference.hpp"
#include "ops/window.hpp"

namespace ecocpu {

class Pool final : public Op {
 public:
  Pool(reference::PoolMode mode, const Window& window);
  // Attributes: mode (max | ave), kernel_size|kernel_*, pad|pad_*, stride|stride_*.
  static std::unique_ptr<Op> create(AttrReader& attrs, int spatial_rank);

  OpKind kind() const override { return OpKind::Pool; }
  std::string_view type_name() const override;
  Shape output_shape(Shapes inputs) const override;
  Cost compute_cost(Shapes inputs, const Shape& output) const override;
  void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
  void run_fast(TensorRefs inputs, TensorRefs params, Tensor& output) const override;
  ScratchSize fast_scratch(Shapes inputs, const Shape& output, int threads) const override;
  std::string_view fast_algo() const override { return "separable"; }
  std::string describe() const override;

  reference::PoolMode mode() const { return mode_; }
  const Window& window() const { return window_; }
  // The kernels' description of pooling `in` into `output` (N, C, spatial...), e.g. for a caller
  // that holds the input in another layout.
  reference::PoolProblem problem(const Shape& in, const Shape& output) const;

 private:
  reference::PoolMode mode_;
  Window window_;
};

}  // namespace ecocpu
