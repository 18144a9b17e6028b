#pragma once
// The rewrites make_plan applies, in the order it applies them. Each takes the plan as the
// rules before it left it and leaves one that check_plan accepts and run_plan_reference runs.
// Internal to graph/.
#include "graph/plan.hpp"

namespace ecocpu::plan_rules {

// Who writes and who reads each value, by step index; rebuilt by each rule before it rewrites.
struct StepUses {
  std::vector<std::vector<int>> readers;  // per value
  std::vector<int> writer;                // per value; -1 for the graph input
  explicit StepUses(const ExecutionPlan& plan);
  // The step that alone reads `value`, if it is a node step running an op of `kind` and `value`
  // is not the graph's output; else -1.
  int sole_node_reader(const ExecutionPlan& plan, int value, OpKind kind) const;
  // The node step of `kind` writing `value`, if `value` has no other reader than one step and is
  // not the graph's output; else -1.
  int sole_node_writer(const ExecutionPlan& plan, int value, OpKind kind) const;
};

bool same_layout(const fast::PaddedInput& a, const fast::PaddedInput& b);
// Whether a 2D layout `frame` is what one frame of the 3D layout `clip` holds: the same padded
// plane, so a 2D reader can take the clip's frames as its images.
bool frame_of(const fast::PaddedInput& frame, const fast::PaddedInput& clip);

// The plan before any rule: the graph's values as planes, one step per node, convolutions as conv
// steps with their algorithm chosen and their bias copied, their weights not yet packed.
ExecutionPlan initial_plan(const Graph& g, const WeightStore& w, const PlanOptions& options);

// Fusion rules (fusion_rules.cpp): each merges node steps into a conv step.
void fuse_input_batchnorm(ExecutionPlan& plan, const WeightStore& w, const PlanOptions& options);
void fuse_pool_before(ExecutionPlan& plan);
void fold_batchnorm(ExecutionPlan& plan, const WeightStore& w);
void fuse_residual(ExecutionPlan& plan, const WeightStore& w);
void fuse_relu(ExecutionPlan& plan);
void fuse_pool_after(ExecutionPlan& plan);

// The precision a conv step asks prepare_conv for: the plan's, except that a shallow pointwise
// layer (under 128 input channels: conv2_3x3_reduce) keeps float products. It is bound by its
// memory traffic, not its products, and its rounding, early in the network, costs more logit error
// than its speed is worth (docs/performance.md, issue 19's sixth session).
fast::Precision step_precision(const reference::ConvProblem& p, fast::Precision requested);

// Packs each conv step's weights (its folded BatchNorm applied); with `releasable`, drops every
// parameter the step has copied as soon as it is packed, so the originals and their packed copies
// never all exist at once.
void prepare_convolutions(ExecutionPlan& plan, const WeightStore& w, WeightStore* releasable, fast::Precision precision);

// ValueLayout rules (layout_rules.cpp): each changes where a value is written, not what is computed.
void write_concat_slices(ExecutionPlan& plan);
// A convolution writes its output channels-last when every reader reads it so: as the copy it
// works from (the layout the readers share), and with `extended` also through an input BatchNorm
// or as a residual added to a channels-last output (unpadded when no reader copies it).
void hand_over_channels_last(ExecutionPlan& plan, bool extended);
void share_channels_last_copies(ExecutionPlan& plan);
// Values read only by pointwise convolutions become channels-last (unpadded) where their writer
// can write them so: a convolution, or a Concat (with `slices`) whose inputs convolutions write as
// its channel slices. Their readers move to the tap GEMM, which multiplies them in place. Runs
// before the weights are packed.
void pointwise_channels_last(ExecutionPlan& plan, bool slices);
// Whether conv step s can write its output as an unpadded channels-last value, whole or (`slice`)
// as a Concat's channel slice of one: through its sink, a max pooling after Winograd (pooled
// channels-last; not into a slice), or, with an average pooling before it, from its input
// channels-last (its product is pooled and stored channels-last).
bool writes_unpadded_channels_last(const ExecutionPlan& plan, const PlanStep& s, bool slice);

// Whether conv step s can read `v` as a bf16 value: a tap GEMM convolution with bf16 products
// (fast::reads_bf16_input) reading it as its channels-last input, without an input BatchNorm or a
// pooling after it (a pooling before it, pool_before, runs on its product).
bool reads_bf16_value(const ExecutionPlan& plan, const PlanStep& s, int v);
// Whether step s can store its output as bf16: a pooling step, a shared channels-last copy, or a
// convolution storing through its channels-last sink (adding a channels-last residual there or
// none), its pointwise kernel, or (Winograd's 2D max pooling) its pooled chunks.
bool writes_bf16(const ExecutionPlan& plan, const PlanStep& s);
// bf16_activations: values every reader of which rounds to bf16 anyway become bf16.
void bf16_activations(ExecutionPlan& plan);

// The activation arena (activations.cpp): every value's buffer, every step's temporaries and its
// kernels' scratch on `threads` threads placed by when they are in use, into `arena`. Runs on a
// checked plan, after every rule.
void plan_activations(const ExecutionPlan& plan, int threads, ActivationArena& arena);
// Every buffer the arena places (activations.cpp), as the steps that use it, by index: a value's
// (the steps writing into it and reading a value held in it), a step's temporaries and scratch on
// `threads` threads (that step alone). A buffer is in use from its first user to its last.
struct BufferUse {
  int64_t floats = 0;
  std::vector<int> steps;
  int value = -1;       // the value it holds; -1 for a step's temporary or scratch
  ScratchSize scratch;  // a step's kernel scratch: its size (empty for the others)
};
std::vector<BufferUse> buffer_uses(const ExecutionPlan& plan, int threads);

// memory_order (schedule.cpp): the steps reordered, every value still written before it is read,
// so that the buffers in use at once on `threads` threads are fewer: the arena's size, or failing
// that the memory held summed over the steps, is lowered move by move (a step taken to another
// place between its inputs' writers and its output's readers) while a move lowers it. An
// inception module's branches, in graph order, hold its input and output while the deepest branch
// holds two more values; ordered, the branches reading the input finish before the deepest goes on.
// The search stops once it has spent `work_budget` (steps and buffer uses visited, counted by the
// trial orders it weighs), keeping the best order found; returns the work spent.
constexpr int64_t kMemoryOrderWork = int64_t{1} << 28;
int64_t memory_order(ExecutionPlan& plan, int threads, int64_t work_budget = kMemoryOrderWork);

// The temporary buffers a step's kernels take besides its output (run.cpp) on `threads` threads,
// in floats, in the order the executor uses them.
std::vector<int64_t> step_temporary_floats(const ExecutionPlan& plan, const PlanStep& step, int threads);

}  // namespace ecocpu::plan_rules
