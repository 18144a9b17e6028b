#pragma once
// NumPy .npy files of float32 (format versions 1-3, little-endian, C order): the input clips and
// the saved logits of `ecocpu run`.
#include <cstdint>
#include <string>

#include "eco/io/mapped_file.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu {

// numpy writes headers of a few hundred bytes; anything longer is not an array we read.
constexpr uint32_t kMaxNpyHeader = 65535;

// Throws FileError "<path>: <cause>" for anything but a little-endian, C-order float32 array of
// 1 to 5 dimensions holding finite values (the first NaN or infinity is named by its index).
Tensor read_npy(const std::string& path);
Tensor parse_npy(const MappedFile& file);

// Writes atomically: a temporary file beside `path`, renamed over it once complete, so a failure
// never leaves a half-written file. Throws FileError.
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace ecocpu
