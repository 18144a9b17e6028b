#pragma once
// The layer interface every op implements: its shape rule, its parameters, its cost and its
// reference kernel, all in one place (ops/<op>/<op>.cpp). Fast kernels hang off the same ops later.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/shape.hpp"
#include "tensor/tensor.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu {

enum class OpKind { Conv, BatchNorm, ReLU, Pool, Concat, Eltwise, InnerProduct, Dropout, To3D };

// What one layer costs. `macs` are multiply-accumulates of the main arithmetic; `flops` are every
// floating-point operation (2 per MAC plus bias adds, normalisation, activations, pooling and sums);
// `thop` is what thop 0.1.1 reports for the same module (see docs/counting.md).
struct Cost {
  int64_t params = 0;
  int64_t macs = 0;
  int64_t flops = 0;
  int64_t thop = 0;
  Cost& operator+=(const Cost& other);
};

// A tensor an op needs besides its inputs: learnable ones count as parameters, the others
// (BatchNorm running statistics) are state that ships with the weights.
struct ParamSpec {
  std::string name;
  Shape shape;
  bool learnable = true;
};

using Shapes = std::span<const Shape>;
using TensorRefs = std::span<const Tensor* const>;

class Op {
 public:
  virtual ~Op() = default;
  virtual OpKind kind() const = 0;
  // The definition's spelling: "Convolution", "Conv3d", "BN3d", ...
  virtual std::string_view type_name() const = 0;
  // Throws ShapeError when the inputs cannot feed this op.
  virtual Shape output_shape(Shapes inputs) const = 0;
  virtual std::vector<ParamSpec> params(Shapes /*inputs*/) const { return {}; }
  // macs, flops and thop; `params` is filled in by layer_cost().
  virtual Cost compute_cost(Shapes inputs, const Shape& output) const = 0;
  virtual void run_reference(TensorRefs inputs, TensorRefs params, Tensor& output) const = 0;
  // The fast engine's kernel for this op and its name; the reference kernel unless the op has
  // a faster one. (Convolutions are planned separately: graph/plan.hpp.)
  virtual void run_fast(TensorRefs inputs, TensorRefs params, Tensor& output) const {
    run_reference(inputs, params, output);
  }
  virtual std::string_view fast_algo() const { return "reference"; }
  // The scratch run_fast takes from current_workspace() on `threads` threads, so that a plan can
  // size its workspace before it runs: none, unless the op's fast kernel takes some.
  virtual ScratchSize fast_scratch(Shapes /*inputs*/, const Shape& /*output*/, int threads) const {
    return {threads, 0, 0};
  }
  int64_t fast_scratch_bytes(Shapes inputs, const Shape& output, int threads) const {
    return fast_scratch(inputs, output, threads).bytes();
  }
  // A short human description of the attributes, e.g. "k3x3x3 s2 p1"; empty when there are none.
  virtual std::string describe() const { return {}; }
  // Whether the op needs exactly one input (most) or accepts several (Concat, Eltwise).
  virtual bool takes_many_inputs() const { return false; }
};

// compute_cost() plus the learnable parameter count.
Cost layer_cost(const Op& op, Shapes inputs, const Shape& output);

// Element count of a parameter list, learnable ones only.
int64_t learnable_params(const std::vector<ParamSpec>& specs);

}  // namespace ecocpu
