#include "ops/concat/concat.hpp"

#include "ops/concat/reference/concat_reference.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

std::unique_ptr<Op> Concat::create(AttrReader& /*attrs*/) { return std::make_unique<Concat>(); }

Shape Concat::output_shape(Shapes inputs) const {
  Shape out = inputs[0];
  if (out.rank() < 2) throw ShapeError("Concat needs inputs with a channel axis, got " + out.str());
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const Shape& s = inputs[i];
    bool compatible = s.rank() == out.rank();
    for (int a = 0; compatible && a < s.rank(); ++a) compatible = a == 1 || s[a] == out[a];
    if (!compatible) {
      throw ShapeError("Concat inputs " + inputs[0].str() + " and " + s.str() +
                       " differ outside the channel axis");
    }
    auto channels = add_checked(out[1], s[1]);
    if (!channels) throw ShapeError("Concat's channel count overflows");
    out[1] = *channels;
  }
  return out;
}

void Concat::run_reference(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  std::vector<const float*> data;
  std::vector<int64_t> channels;
  for (const Tensor* t : inputs) {
    data.push_back(t->data());
    channels.push_back(t->dim(1));
  }
  reference::concat_channels(output.dim(0), output.shape().numel_from(2), data, channels,
                             output.data());
}

}  // namespace ecocpu
