#pragma once
// The fast execution plan: the graph rewritten into steps, with convolutions running as GEMMs
// that absorb what follows them when nothing else needs the intermediate values:
//  - a BatchNorm reading only the convolution is folded into its weights and bias at plan time;
//  - an Eltwise sum reading only the convolution, whose other operand is already computed, is
//    added in the GEMM epilogue (a residual); a BatchNorm reading only that sum becomes the
//    epilogue's per-channel scale and shift;
//  - a ReLU reading only the result is applied in the epilogue;
//  - a pooling reading only the result runs a few images at a time right after the convolution
//    (a 2D tap GEMM convolution's max pooling, conv1's, a band of each image's rows at a time),
//    so the full-size convolution output never exists (ECO's conv1 and conv2 outputs are 4x their
//    pooled size) and the pooling reads cache-warm data;
//  - a BatchNorm (and ReLU) read only by a Winograd or tap GEMM convolution is applied as that
//    convolution makes its channels-last input copy;
//  - an average pooling (size kept) read only by a 1x1 convolution runs after its product;
//  - a Concat's conv inputs are written into its channel slices;
//  - a Winograd, tap GEMM or 1x1 convolution whose result only Winograd or tap GEMM convolutions
//    read (directly or through ECO's To3D view) writes it in their padded channels-last layout,
//    sparing them the copy (the value then holds that layout, not planes); several readers must
//    share the layout, or be 2D readers of a 3D reader's frames.
// Other ops run their reference kernels. Buffers are freed after their last reader.
#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graph/executor.hpp"
#include "graph/ir.hpp"
#include "graph/weights.hpp"
#include "ops/conv/conv_fast.hpp"

namespace ecocpu {

// The fast plan's fusion rules, each of which can be switched off (`--no-fuse RULE`,
// ECOCPU_NO_FUSE): the nodes it would merge then run as steps of their own, or the value it would
// hand over is copied as usual. The names are those of fusion_name().
enum class Fusion {
  fold_batchnorm,   // a BatchNorm reading only a convolution, folded into its weights and bias
  residual,         // an Eltwise sum in the GEMM epilogue, and a BatchNorm after it as scale and shift
  relu,             // a ReLU reading only the result, in the epilogue
  pool_after,       // a pooling reading only the result, run right after the convolution, in bands
  input_batchnorm,  // a BatchNorm (+ ReLU) applied while a Winograd or tap GEMM conv copies its input
  pool_before,      // a size-keeping average pooling before a 1x1 convolution, run after its product
  concat_slices,    // convolutions write their outputs into their Concat's channel slices
  channels_last,    // a convolution writes its output as the next ones' channels-last input copy
  shared_copy,      // convolutions reading one input through one layout share its copy
};
std::vector<Fusion> all_fusions();
std::string fusion_name(Fusion f);
std::optional<Fusion> parse_fusion(const std::string& name);
// "relu,pool_after" or "all"; throws std::invalid_argument naming an unknown rule and the known ones.
std::set<Fusion> parse_fusion_list(const std::string& list);

struct PlanOptions {
  bool reference = false;  // true: every node runs its reference kernel, one step per node
  bool winograd = true;    // false: GEMM algorithms only
  std::set<Fusion> disabled;

  bool fuses(Fusion f) const { return !reference && !disabled.count(f); }
};

struct PlanStep {
  int node = -1;                // the graph node this step runs (the conv for a fused step)
  std::vector<int> absorbed;    // nodes whose work this step also does
  std::vector<int> inputs;      // values read (conv input, residual)
  int output = -1;              // value written
  bool reference = false;       // run the node's reference kernel (else its fast one)
  // Fused convolutions only:
  bool is_conv = false;
  fast::PreparedConv conv;  // BatchNorm folded into its weights
  Tensor bias, scale, shift;
  int residual = -1;
  bool relu = false;
  int pool = -1;        // the absorbed pooling node, if any
  // A BatchNorm (and the ReLU after it) that only this convolution reads, as in ResNet's
  // res3a_bn -> res3a_relu -> res3b_1: applied per channel while the step makes its channels-last
  // input copy, so neither runs as a step of its own; inputs[0] is then the BatchNorm's input.
  Tensor in_scale, in_shift;
  bool in_relu = false;
  // An average pooling that keeps the size and that only this 1x1 convolution reads (the
  // inception modules' pool -> pool_proj): both are linear and act on different axes, so the
  // pooling runs after the product, on Cout channels instead of Cin (32-128 instead of
  // 192-1056), followed by the epilogue; inputs[0] is then the pooling's input.
  int input_pool = -1;
  Shape conv_shape;     // the convolution's own output (before any pooling)
  // Concat without copies: a conv step whose output only a Concat reads writes it straight into
  // its channel slice of the Concat's output (value slice_of, from channel slice_channel on), and
  // the Concat step copies only the inputs not so written (in_place, one flag per input).
  int slice_of = -1;
  int64_t slice_channel = 0;
  std::vector<bool> in_place;
  // Channels-last hand-over: a Winograd, tap GEMM or 1x1 step whose output only one Winograd or
  // tap GEMM step reads (as its input) writes it as that step's padded channels-last input copy
  // (out_layout, in a buffer of that size), and the reader takes it as is (in_channels_last)
  // instead of copying.
  // Through ECO's To3D the hand-over writes frame by frame (out_frames = T) and the To3D step
  // only passes the buffer on (alias_input).
  bool out_channels_last = false;
  fast::PaddedInput out_layout;
  int64_t out_frames = 0;
  bool in_channels_last = false;
  bool alias_input = false;
  // A value can be handed over to several such readers when they all read it through one layout,
  // or when one reads it through the To3D view and the others, 2D, through that layout's frames
  // (ECO Full's inception_3c_double_3x3_1 feeds res3a_2 and inception_3c_double_3x3_2): such a 2D
  // reader starts in_offset floats into the buffer, at its first frame.
  int64_t in_offset = 0;
  // Convolutions reading the same input through the same channels-last layout (res4a_1 and
  // res4a_down) share one copy of it: the executor makes it for the first step with the same
  // shared_copy number, the others read it (and the last one lets it go).
  int shared_copy = -1;

  bool assembles_in_place() const;  // a Concat some of whose inputs were written in place
  // Floats of the buffer the step takes for its output: a channels-last hand-over's padded
  // layout, else its value (a Concat assembled in place: the whole Concat); 0 for a slice.
  int64_t output_floats(const Graph& graph) const;

  std::string label(const Graph& graph) const;  // "res3b_2+res3b+res3b_bn+res3b_relu"
  std::string algo_name(const Graph& graph) const;  // "im2col_gemm", "separable", "reference"
  // How its input and output are laid out: "planes>planes", or "cl" for a side handed over
  // channels-last ("planes>cl": it writes the next convolution's copy; a To3D passing one on:
  // "cl>cl"), "shared" for an input read from a channels-last copy shared with other steps.
  std::string layouts() const;
};

// Activation buffers kept between steps and between forward passes: a step's output reuses the
// smallest released buffer that holds it (at most twice its size), so memory is allocated and
// page-faulted once, not on every pass. Buffers are released by liveness: when the last reader
// of a value has run.
class BufferPool {
 public:
  Tensor take(const Shape& shape);
  std::size_t buffers() const { return buffers_.size(); }
  int64_t bytes() const;  // what the buffers hold together

  // Held by run_plan for a whole forward pass: the pool (and so the plan) serves one pass at a
  // time. A second pass that starts meanwhile, from another thread, throws std::logic_error.
  class Lease {
   public:
    explicit Lease(BufferPool& pool);
    ~Lease() { pool_.in_use_.store(false); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    BufferPool& pool_;
  };

 private:
  std::vector<std::shared_ptr<float>> buffers_;
  std::vector<int64_t> sizes_;
  std::atomic<bool> in_use_{false};
};

struct ExecutionPlan {
  const Graph* graph = nullptr;
  std::vector<PlanStep> steps;
  std::shared_ptr<BufferPool> buffers = std::make_shared<BufferPool>();
};

// The plan as `ecocpu plan` prints it, one row per step: what runs (the nodes it covers), how,
// through which layouts, and where its result goes.
struct PlanRow {
  std::string step;     // PlanStep::label
  std::string algo;     // PlanStep::algo_name
  std::string layouts;  // PlanStep::layouts
  std::string output;   // the output value's shape, "(...) into <concat> at channel c" for a slice
  int64_t output_bytes = 0;  // the buffer the step takes for it: 0 for a slice or a pass-through
  std::string notes;    // what else the step does: "pool after", "BN on input copy", "shared copy 0", ...
};
std::vector<PlanRow> plan_rows(const ExecutionPlan& plan);

// make_plan that frees the weights a prepared convolution has copied (its weight and bias, folded
// BatchNorm parameters) as soon as it is prepared, so the originals and their prepared copies
// never all exist at once (the peak memory of loading). run_plan never reads them.
ExecutionPlan make_plan_releasing(const Graph& graph, WeightStore& weights, const PlanOptions& options = {});

// Throws WeightError if the weights do not fit the graph.
ExecutionPlan make_plan(const Graph& graph, const WeightStore& weights, const PlanOptions& options = {});

// Called after each step with its index and output.
using StepObserver = std::function<void(int step, const Tensor& output)>;

// One forward pass. Plans made separately (make_plan twice) can run at the same time on different
// threads: the kernels' scratch memory is per thread and the prepared weights are read only. One
// plan cannot: its buffers serve one pass at a time, and a second concurrent call throws
// std::logic_error instead of corrupting the first.

Tensor run_plan(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input,
                const StepObserver& observer = {});

}  // namespace ecocpu
