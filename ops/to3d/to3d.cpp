#include "ops/to3d/to3d.hpp"

#include "ops/to3d/reference/to3d_reference.hpp"

namespace ecocpu {

Shape To3D::output_shape(Shapes inputs) const {
  const Shape& in = inputs[0];
  require_rank(in, 4, "the 2D-to-3D transition");
  if (segments_ < 1 || in[0] % segments_ != 0) {
    throw ShapeError("a batch of " + std::to_string(in[0]) + " frames is not a whole number of " +
                     std::to_string(segments_) + "-segment clips");
  }
  return Shape{in[0] / segments_, in[1], segments_, in[2], in[3]};
}

void To3D::run_reference(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  const Tensor& in = *inputs[0];
  reference::frames_to_volume(output.dim(0), segments_, in.dim(1), in.dim(2) * in.dim(3),
                              in.data(), output.data());
}

}  // namespace ecocpu
