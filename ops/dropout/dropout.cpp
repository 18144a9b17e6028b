#include "ops/dropout/dropout.hpp"

#include <algorithm>
#include <sstream>

namespace ecocpu {

std::unique_ptr<Op> Dropout::create(AttrReader& attrs) {
  double ratio = attrs.get_number("dropout_ratio");
  if (!(ratio >= 0.0 && ratio < 1.0)) throw AttrError("dropout_ratio must be in [0, 1)");
  return std::make_unique<Dropout>(ratio);
}

std::string Dropout::describe() const {
  std::ostringstream s;
  s << "p=" << ratio_;
  return s.str();
}

void Dropout::run_reference(TensorRefs inputs, TensorRefs /*params*/, Tensor& output) const {
  const Tensor& in = *inputs[0];
  if (in.data() != output.data()) std::copy(in.data(), in.data() + in.numel(), output.data());
}

}  // namespace ecocpu
