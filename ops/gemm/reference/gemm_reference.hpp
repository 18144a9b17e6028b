#pragma once
#include "ops/gemm/gemm.hpp"

namespace ecocpu::reference {

// The plain triple loop every SGEMM variant is tested against (double accumulation, so its own
// rounding error is far below the kernels').
void sgemm(const GemmShape& shape, const GemmEpilogue& epilogue = {});

}  // namespace ecocpu::reference
