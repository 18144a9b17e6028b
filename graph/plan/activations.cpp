// The activation arena: when each buffer is in use, and where it lies.
#include <algorithm>
#include <numeric>
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

// The steps using each value's buffer: writing into it, or reading a value held in it (a slice of
// a Concat, the view of a clip); empty for a value held elsewhere (-1: the graph's input).
std::vector<std::vector<int>> value_users(const ExecutionPlan& plan) {
  const std::size_t n = plan.values.size();
  std::vector<int> holder(n, -1);
  std::vector<std::vector<int>> users(n);
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    const PlanStep& s = plan.steps[i];
    for (int v : s.inputs) {
      if (holder[v] >= 0) users[holder[v]].push_back(i);
    }
    const int h = holder_written(plan, s, holder);
    holder[s.output] = h;
    if (h >= 0) users[h].push_back(i);
  }
  for (std::size_t v = 0; v < n; ++v) {
    if (holder[v] != static_cast<int>(v)) users[v].clear();
  }
  return users;
}

bool in_use_together(const ArenaBuffer& a, const ArenaBuffer& b) { return a.first <= b.last && b.first <= a.last; }

// Buffers in `order`, each at the lowest offset clear of every placed buffer in use at the same
// time; returns the size they take.
int64_t place_in_order(std::vector<ArenaBuffer>& buffers, const std::vector<std::size_t>& order) {
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

// The smallest of two placements: largest buffers first, and longest-lived first (ties: larger).
// Neither always wins: largest-first leaves gaps a long-lived buffer then straddles.
int64_t place(std::vector<ArenaBuffer>& buffers) {
  std::vector<std::size_t> largest(buffers.size());
  std::iota(largest.begin(), largest.end(), 0);
  std::vector<std::size_t> longest = largest;
  std::stable_sort(largest.begin(), largest.end(), [&](std::size_t a, std::size_t b) { return buffers[a].floats > buffers[b].floats; });
  const auto span = [&](std::size_t i) { return buffers[i].last - buffers[i].first; };
  std::stable_sort(longest.begin(), longest.end(), [&](std::size_t a, std::size_t b) {
    return span(a) != span(b) ? span(a) > span(b) : buffers[a].floats > buffers[b].floats;
  });
  std::vector<ArenaBuffer> by_span = buffers;
  const int64_t a = place_in_order(buffers, largest), b = place_in_order(by_span, longest);
  if (b < a) buffers = std::move(by_span);
  return std::min(a, b);
}

}  // namespace

std::vector<BufferUse> buffer_uses(const ExecutionPlan& plan, int threads) {
  const Graph& g = *plan.graph;
  const std::vector<std::vector<int>> users = value_users(plan);
  std::vector<BufferUse> uses;
  for (std::size_t v = 0; v < users.size(); ++v) {
    const int value = static_cast<int>(v);
    if (users[v].empty() || g.is_output(value) || plan.values[v].floats() <= 0) continue;
    uses.push_back({whole_lines(plan.values[v].floats()), users[v], value});
  }
  for (int i = 0; i < static_cast<int>(plan.steps.size()); ++i) {
    for (int64_t floats : step_temporary_floats(plan, plan.steps[i], threads)) uses.push_back({whole_lines(floats), {i}});
    const ScratchSize scratch = step_scratch(plan, plan.steps[i], threads);
    if (scratch.bytes() > 0) uses.push_back({whole_lines((scratch.bytes() + 3) / 4), {i}, -1, scratch});
  }
  return uses;
}

void plan_activations(const ExecutionPlan& plan, int threads, ActivationArena& arena) {
  const int steps = static_cast<int>(plan.steps.size());
  arena.buffers.clear();
  arena.value_buffer.assign(plan.values.size(), -1);
  arena.step_temporaries.assign(steps, {});
  arena.step_scratch.assign(steps, {threads, 0, 0});
  arena.step_workspace.assign(steps, -1);
  arena.threads = threads;
  for (const BufferUse& use : buffer_uses(plan, threads)) {
    const int b = static_cast<int>(arena.buffers.size()), step = use.steps.front();
    const auto [first, last] = std::minmax_element(use.steps.begin(), use.steps.end());
    arena.buffers.push_back({0, use.floats, *first, *last, use.value});
    if (use.value >= 0) {
      arena.value_buffer[use.value] = b;
    } else if (use.scratch.bytes() > 0) {
      arena.step_scratch[step] = use.scratch;
      arena.step_workspace[step] = b;
    } else {
      arena.step_temporaries[step].push_back(b);
    }
  }
  arena.floats = place(arena.buffers);
}

}  // namespace plan_rules

}  // namespace ecocpu
