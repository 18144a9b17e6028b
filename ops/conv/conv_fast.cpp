#include "ops/conv/conv_fast.hpp"

namespace ecocpu::fast {

PreparedConv prepare_conv(const reference::ConvProblem& p, ConvAlgo algo, const float* weight) {
  PreparedConv c;
  c.problem = p;
  c.algo = algo;
  if (algo == ConvAlgo::Winograd) {
    c.winograd = winograd_transform_weights(p, weight);
  } else {
    c.gemm_weight = pack_conv_weights(p, weight);
  }
  return c;
}

void run_conv(const PreparedConv& c, const float* in, const ConvEpilogue& epilogue, float* out) {
  if (c.algo == ConvAlgo::Winograd) {
    conv_winograd(c.problem, c.winograd, in, epilogue, out);
  } else {
    conv_gemm(c.problem, c.algo, in, c.gemm_weight, epilogue, out);
  }
}

}  // namespace ecocpu::fast
