#pragma once
// NumPy .npy files of float32 (format versions 1-3, little-endian, C order): the input clips and
// the saved logits of `ecocpu run`.
#include <string>

#include "tensor/tensor.hpp"

namespace ecocpu {

// Throws FileError "<path>: <cause>" for anything but a little-endian, C-order float32 array of
// 1 to 5 dimensions.
Tensor read_npy(const std::string& path);

// Writes atomically: a temporary file beside `path`, renamed over it once complete, so a failure
// never leaves a half-written file. Throws FileError.
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace ecocpu
