#pragma once
// The fast execution plan: the graph as steps over values that carry their shape, element type
// and layout. make_plan starts from one step per node and applies the fusion rules, each a small
// rewrite of the steps that leaves a plan the executor (and run_plan_reference) can run:
//  - fold_batchnorm: a BatchNorm reading only a convolution is folded into its weights and bias;
//  - residual: an Eltwise sum reading only a convolution, whose other operand is computed before,
//    is added in the epilogue; a BatchNorm reading only that sum becomes its scale and shift;
//  - relu: a ReLU reading only the result is applied in the epilogue;
//  - pool_after: a pooling reading only the result runs a few images at a time right after the
//    convolution (conv1's max pooling a band of rows at a time), so the full-size convolution
//    output never exists (ECO's conv1 and conv2 outputs are 4x their pooled size);
//  - input_batchnorm: a BatchNorm (and ReLU) read only by a Winograd or tap GEMM convolution is
//    applied as that convolution makes its channels-last input copy;
//  - pool_before: a size-keeping average pooling read only by a 1x1 convolution runs after its
//    product;
//  - concat_slices: a Concat's convolution inputs are written into its channel slices;
//  - channels_last: a convolution whose result only Winograd or tap GEMM convolutions read
//    (directly or through ECO's To3D view) writes it in their padded channels-last layout;
//  - shared_copy: convolutions reading one value through one channels-last layout read one copy,
//    made by a step of its own;
//  - pointwise_channels_last: a value that only pointwise convolutions read (the inception
//    modules' inputs) is written channels-last, a Concat's as its inputs' channel slices, and read
//    in place by the tap GEMM's pointwise kernel;
//  - bf16_activations: a channels-last value whose every reader rounds it to bf16 anyway (pointwise
//    convolutions with bf16 products, max poolings) is stored as bf16 by its writers.
// Nodes no rule covers run their own fast kernels. Values whose lives do not overlap share the
// memory of one activation arena.
#include <atomic>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "graph/executor.hpp"
#include "graph/ir.hpp"
#include "graph/weights.hpp"
#include "ops/conv/conv_fast.hpp"
#include "tensor/workspace.hpp"

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
  pointwise_channels_last,  // values only pointwise convolutions read are written channels-last
  bf16_activations,  // values every reader rounds to bf16 are stored as bf16
  channels_last_residual,  // with channels_last: also values read as a residual or through an input BatchNorm
  memory_order,     // the steps reordered so that fewer buffers are in use at once (a smaller arena)
};
std::vector<Fusion> all_fusions();
std::string fusion_name(Fusion f);
std::optional<Fusion> parse_fusion(const std::string& name);
// "relu,pool_after" or "all"; throws std::invalid_argument naming an unknown rule and the known ones.
std::set<Fusion> parse_fusion_list(const std::string& list);

struct PlanOptions {
  bool reference = false;  // true: every node runs its reference kernel, one step per node
  bool winograd = true;    // false: GEMM algorithms only
  // bf16: Winograd and tap GEMM products in bf16 where the CPU has the kernel (fast::prepare_conv)
  fast::Precision precision = fast::Precision::fp32;
  std::set<Fusion> disabled;

  bool fuses(Fusion f) const { return !reference && !disabled.count(f); }
};

// The element type of a value's buffer: f32, or bf16 (the upper half of a float, rounded to
// nearest even: ops/gemm/bf16.hpp), which only pointwise convolutions with bf16 products and
// poolings read (bf16_activations).
enum class DType { f32, bf16 };
std::string dtype_name(DType t);

// How a value's buffer holds it. The graph's shape stays the value's logical shape; the layout
// says where each element is, and every step states the layouts it reads and writes
// (check_plan), so no step reinterprets a buffer the plan does not describe.
struct ValueLayout {
  enum class Kind {
    planes,         // dense N, C, (D,) H, W
    channels_last,  // the padded channels-last copy `padded` that a Winograd or tap GEMM
                    // convolution works from (zeros around each image), one per image
    clip_frames,    // a 2D value whose N*T images are the frames of 3D channels-last copies
                    // (`padded`, T = `frames`): what ECO's 2D-to-3D view then reads as is
    channel_slice,  // planes inside the buffer of a Concat's output (`of`), from channel `channel`
  };
  Kind kind = Kind::planes;
  fast::PaddedInput padded;  // channels_last, clip_frames
  int64_t frames = 0;        // clip_frames
  int of = -1;               // channel_slice
  int64_t channel = 0;       // channel_slice

  static ValueLayout channels_last_of(const fast::PaddedInput& padded, int64_t frames = 0);
  static ValueLayout slice_of(int value, int64_t channel);
  // "planes", "cl" (channels-last), "frames" (of a channels-last clip), "slice".
  std::string name() const;
  // Where a 2D reader of clip_frames finds its first image: after the clip's leading padding in time.
  int64_t first_frame_offset() const;
};

// A value as the plan holds it: the graph's values, with the same indices, then the values the
// plan adds (a channels-last copy that several convolutions share).
struct PlanValue {
  std::string name;
  Shape shape;  // logical, as in the graph
  DType dtype = DType::f32;
  ValueLayout layout;
  // Floats of the buffer it needs of its own: its layout's size, 0 for a channel slice; a bf16
  // value, half as many (rounded up).
  int64_t floats() const;
};

struct PlanStep {
  enum class Kind {
    node,              // one graph node, by its op's fast or reference kernel
    conv,              // a convolution and what the fusion rules gave it
    assemble,          // a Concat some of whose inputs were written into its slices: copies the rest
    view,              // ECO's 2D-to-3D view of a value already written as clip frames: no work
    to_channels_last,  // the channels-last copy of a value that several convolutions read (conv.problem: the first's)
    pool,              // a pooling node between channels-last values (pointwise_channels_last)
  };
  Kind kind = Kind::node;
  int node = -1;                // the graph node it runs (the convolution for a conv step); -1 for a copy
  std::vector<int> absorbed;    // nodes whose work this step also does
  std::vector<int> inputs;      // plan values read (conv input, residual)
  int output = -1;              // plan value written
  bool reference = false;       // a node step: run the reference kernel (else the fast one)
  // Conv steps:
  fast::PreparedConv conv;  // weights packed, BatchNorm folded in
  Tensor fold_scale;        // per output channel: a folded BatchNorm's scale, applied to the weight rows at preparation
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
  // What its kernels take as scratch (its region of the plan's arena) on the thread count the plan
  // was made for.
  ScratchSize scratch;

  bool is_conv() const { return kind == Kind::conv; }
  std::string label(const Graph& graph) const;      // "res3b_2+res3b+res3b_bn+res3b_relu"
  std::string algo_name(const Graph& graph) const;  // "im2col_gemm", "separable", "reference"
  std::vector<int> nodes() const;                   // node and absorbed, in graph order
};

// One buffer of a plan's activation arena: `floats` floats at `offset` (floats from the arena's
// start), in use from step `first` to step `last`, both included. A value's own buffer (`value`),
// or a step's temporary (value -1: a convolution's output before its pooling, or the scratch its
// kernels take).
struct ArenaBuffer {
  int64_t offset = 0, floats = 0;
  int first = 0, last = 0;
  int value = -1;
};

// The memory of a plan's passes: one arena, each buffer placed from the steps that write and read
// it, so that buffers in use at the same step never overlap and others share memory (the arena is
// about the most the steps hold at once, not the sum of all values). The kernels' scratch is a
// buffer of its step too (its workspace, the size step_scratch gives on `threads` threads), so it
// shares the memory of the activations that do not exist at that step. It is allocated and
// page-faulted by the first pass and reused by every later one; a pass on another thread count
// places it again first. The graph's inputs are the caller's and its outputs are not in it: each
// pass returns them in buffers of their own.
class ActivationArena {
 public:
  std::vector<ArenaBuffer> buffers;
  std::vector<int> value_buffer;                  // per plan value: its buffer, or -1 (none of its own)
  std::vector<std::vector<int>> step_temporaries; // per step: its temporaries' buffers
  std::vector<ScratchSize> step_scratch;          // per step: its kernels' scratch on `threads` threads
  std::vector<int> step_workspace;                // per step: the buffer that scratch is in, or -1
  int threads = 0;
  int64_t floats = 0;

  int64_t bytes() const { return floats * 4; }
  // The largest step's scratch, the kernels' workspace (inside the arena).
  int64_t workspace_bytes() const;
  // The arena's memory, allocated on the first call and after the arena grew.
  float* base();

  // Held by run_plan for a whole forward pass: the arena (and so the plan) serves one pass at a
  // time. A second pass that starts meanwhile, from another thread, throws std::logic_error.
  class Lease {
   public:
    explicit Lease(ActivationArena& arena);
    ~Lease() { arena_.in_use_.store(false); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    ActivationArena& arena_;
  };

 private:
  std::shared_ptr<float> memory_;
  int64_t allocated_ = 0;
  std::atomic<bool> in_use_{false};
};

struct ExecutionPlan {
  const Graph* graph = nullptr;
  std::vector<PlanValue> values;  // indexed like the graph's, then the plan's own
  std::vector<PlanStep> steps;
  std::shared_ptr<ActivationArena> activations = std::make_shared<ActivationArena>();

  // "planes>cl": the layout of the step's input (its first) and of its output.
  std::string layouts(const PlanStep& step) const;
};

// What the plan's prepared convolutions hold: packed or transformed weights (float or bf16) and
// their per-channel bias, scale and shift. Copies of the plan share them.
int64_t prepared_weight_bytes(const ExecutionPlan& plan);

// Throws std::logic_error naming the step and the value if the plan is not one the executor can
// run: a value read before it is written or written twice, a graph node run twice or never, or a
// layout a step cannot read or write. make_plan checks every plan it returns.
void check_plan(const ExecutionPlan& plan);

// The plan as `ecocpu plan` prints it, one row per step: what runs (the nodes it covers), how,
// through which layouts, and where its result goes.
struct PlanRow {
  std::string step;     // PlanStep::label
  std::string algo;     // PlanStep::algo_name
  std::string layouts;  // ExecutionPlan::layouts
  std::string output;   // the output value and its shape, "... into <concat> at channel c" for a slice
  int64_t output_bytes = 0;  // the buffer its output value needs: 0 for a slice or a view
  int64_t scratch_bytes = 0; // what its kernels take as scratch (inside the plan's arena)
  std::string dtype;    // the output's element type
  std::string notes;    // what else the step does: "pools after (pool1)", "adds res3a_2", ...
};
std::vector<PlanRow> plan_rows(const ExecutionPlan& plan);

// make_plan that frees the weights a prepared convolution has copied (its weight and bias, folded
// BatchNorm parameters) as soon as it is prepared, so the originals and their prepared copies
// never all exist at once (the peak memory of loading). run_plan never reads them.
ExecutionPlan make_plan_releasing(const Graph& graph, WeightStore& weights, const PlanOptions& options = {});

// Throws WeightError if the weights do not fit the graph.
ExecutionPlan make_plan(const Graph& graph, const WeightStore& weights, const PlanOptions& options = {});

// The plan's steps in order, each step's nodes through their reference kernels, every value as
// planes: what each rewrite must keep runnable (every node's inputs computed before its step, every
// node run once). Needs the weights the plan was made from (not released).
Tensor run_plan_reference(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input);
std::vector<Tensor> run_plan_reference_outputs(const ExecutionPlan& plan, const WeightStore& weights,
                                               std::span<const Tensor> inputs);

// Called after each step with its index and output. The output is a view of the plan's arena,
// valid during the call only (a later step may write over it): clone() what is to be kept.
using StepObserver = std::function<void(int step, const Tensor& output)>;

// The scratch memory a step's kernels take on `threads` threads (what make_plan stores in
// PlanStep::scratch for the thread count it runs on).
ScratchSize step_scratch(const ExecutionPlan& plan, const PlanStep& step, int threads);

// One forward pass. Plans made separately (make_plan twice) can run at the same time on different
// threads: each has its own arena, and the prepared weights are read only. One plan (or copies
// of it, which share its arena) cannot: its arena serves one pass at a time, and a second
// concurrent call throws std::logic_error instead of corrupting the first. A pass on another
// thread count than the plan was made for (omp_set_num_threads in between) first places the
// arena again.

Tensor run_plan(const ExecutionPlan& plan, const WeightStore& weights, const Tensor& input,
                const StepObserver& observer = {});
// The same for a graph with several inputs and outputs (the parts of a split model, graph/split.hpp):
// the inputs in the order of Graph::inputs, the outputs returned in the order of Graph::outputs.
// An output's buffer is the caller's until it drops it; the next pass does not write into it.
std::vector<Tensor> run_plan_outputs(const ExecutionPlan& plan, const WeightStore& weights,
                                     std::span<const Tensor> inputs, const StepObserver& observer = {});

}  // namespace ecocpu
