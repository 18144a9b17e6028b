// The activation arena: when each buffer is in use, and where it lies.
#include <algorithm>
#include <climits>
#include <stdexcept>

#include "graph/plan/rules.hpp"
#include "tensor/scratch.hpp"
#include "tensor/workspace.hpp"

namespace ecocpu {

float* ActivationArena::base() {
  if (!memory_ || allocated_ < floats) {
    memory_.reset();  // the old arena goes before the new one is made
    memory_ = shared_floats(floats, Pages::huge);
    allocated_ = floats;
  }
  return memory_.get();
}

int64_t ActivationArena::workspace_bytes() const {
  int64_t largest = 0;
  for (const ScratchSize& s : step_scratch) largest = std::max(largest, s.bytes());
  return largest;
}

ActivationArena::Lease::Lease(ActivationArena& arena) : arena_(arena) {
  if (arena_.in_use_.exchange(true)) {
    throw std::logic_error("this plan is already running a forward pass on another thread; prepare one plan per thread");
  }
}

namespace plan_rules {

namespace {

// Whole 64-byte lines (the workspace's rounding), so every buffer starts aligned for the kernels'
// vectors; at least one line.
int64_t whole_lines(int64_t floats) { return workspace_round(std::max<int64_t>(floats, 1) * 4) / 4; }

// The value whose buffer step `s` writes into: its own, its Concat's for a slice, its input's
// holder for a view (-1 when that is the graph's input).
int holder_written(const ExecutionPlan& plan, const PlanStep& s, const std::vector<int>& holder) {
  if (s.kind == PlanStep::Kind::view) return holder[s.inputs[0]];
  const ValueLayout& layout = plan.values[s.output].layout;
  return layout.kind == ValueLayout::Kind::channel_slice ? layout.of : s.output;
}

// Each value's buffer in use from the first step writing into it to the last step reading it,
// or a value held in it (a slice of a Concat, the view of a clip).
std::vector<ArenaBuffer> value_buffers(const ExecutionPlan& plan, std::vector<int>& value_buffer) {
  const Graph& g = *plan.graph;
  const std::size_t n = plan.values.size();
  std::vector<int> holder(n, -1), first(n, INT_MAX), last(n, -1);
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const PlanStep& s = plan.steps[i];
    for (int v : s.inputs) {
      if (holder[v] >= 0) last[holder[v]] = std::max(last[holder[v]], i);
    }
    const int h = holder_written(plan, s, holder);
    holder[s.output] = h;
    if (h >= 0) {
      first[h] = std::min(first[h], i);
      last[h] = std::max(last[h], i);
    }
  }
  std::vector<ArenaBuffer> buffers;
  value_buffer.assign(n, -1);
  for (std::size_t v = 0; v < n; ++v) {
    const int value = static_cast<int>(v);
    if (holder[v] != value || g.is_output(value) || plan.values[v].floats() <= 0) continue;
    value_buffer[v] = static_cast<int>(buffers.size());
    buffers.push_back({0, whole_lines(plan.values[v].floats()), first[v], last[v], value});
  }
  return buffers;
}

bool in_use_together(const ArenaBuffer& a, const ArenaBuffer& b) { return a.first <= b.last && b.first <= a.last; }

// Largest first, each at the lowest offset clear of every placed buffer in use at the same time.
int64_t place(std::vector<ArenaBuffer>& buffers) {
  std::vector<std::size_t> order(buffers.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return buffers[a].floats > buffers[b].floats; });
  std::vector<const ArenaBuffer*> placed;
  int64_t total = 0;
  for (std::size_t i : order) {
    ArenaBuffer& b = buffers[i];
    std::vector<const ArenaBuffer*> clash;
    for (const ArenaBuffer* p : placed) {
      if (in_use_together(*p, b)) clash.push_back(p);
    }
    std::sort(clash.begin(), clash.end(), [](const ArenaBuffer* x, const ArenaBuffer* y) { return x->offset < y->offset; });
    int64_t offset = 0;
    for (const ArenaBuffer* p : clash) {
      if (offset + b.floats <= p->offset) break;
      offset = std::max(offset, p->offset + p->floats);
    }
    b.offset = offset;
    total = std::max(total, offset + b.floats);
    placed.push_back(&b);
  }
  return total;
}

}  // namespace

void plan_activations(const ExecutionPlan& plan, int threads, ActivationArena& arena) {
  const int steps = static_cast<int>(plan.steps.size());
  arena.buffers = value_buffers(plan, arena.value_buffer);
  arena.step_temporaries.assign(steps, {});
  arena.step_scratch.assign(steps, {});
  arena.step_workspace.assign(steps, -1);
  arena.threads = threads;
  const auto add = [&](int step, int64_t floats) {
    arena.buffers.push_back({0, whole_lines(floats), step, step, -1});
    return static_cast<int>(arena.buffers.size()) - 1;
  };
  for (int i = 0; i < steps; ++i) {
    for (int64_t floats : step_temporary_floats(plan, plan.steps[i], threads)) arena.step_temporaries[i].push_back(add(i, floats));
    arena.step_scratch[i] = step_scratch(plan, plan.steps[i], threads);
    if (arena.step_scratch[i].bytes() > 0) arena.step_workspace[i] = add(i, (arena.step_scratch[i].bytes() + 3) / 4);
  }
  arena.floats = place(arena.buffers);
}

}  // namespace plan_rules

}  // namespace ecocpu
