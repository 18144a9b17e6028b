// memory_order: the plan's steps in an order that holds fewer buffers at once (rules.hpp).
#include <algorithm>
#include <climits>
#include <numeric>

#include "graph/plan/rules.hpp"

namespace ecocpu::plan_rules {

namespace {

// What an order holds: the most in use at one step (the arena's size, where placement is tight),
// then the sum over the steps (which tells apart orders of the same peak: buffers freed earlier).
struct Held {
  int64_t peak = 0, sum = 0;
  bool operator<(const Held& o) const { return peak != o.peak ? peak < o.peak : sum < o.sum; }
};

// `position`: each step's place in the order. `live`: scratch of steps + 1 counters.
Held held(const std::vector<BufferUse>& uses, const std::vector<int>& position, std::vector<int64_t>& live) {
  std::fill(live.begin(), live.end(), 0);
  for (const BufferUse& u : uses) {
    int first = INT_MAX, last = -1;
    for (int s : u.steps) {
      first = std::min(first, position[s]);
      last = std::max(last, position[s]);
    }
    live[first] += u.floats;  // in use from `first` to `last`, as differences
    live[last + 1] -= u.floats;
  }
  Held h;
  int64_t now = 0;
  for (std::size_t t = 0; t + 1 < live.size(); ++t) {
    now += live[t];
    h.peak = std::max(h.peak, now);
    h.sum += now;
  }
  return h;
}

// The positions after the step at `from` moves to `to`, the steps between shifting by one.
void moved(const std::vector<int>& order, int from, int to, std::vector<int>& position) {
  for (int t = 0; t < static_cast<int>(order.size()); ++t) {
    int p = t;
    if (t == from) p = to;
    else if (from < to && t > from && t <= to) p = t - 1;
    else if (to < from && t >= to && t < from) p = t + 1;
    position[order[t]] = p;
  }
}

}  // namespace

int64_t memory_order(ExecutionPlan& plan, int threads, int64_t work_budget) {
  const int n = static_cast<int>(plan.steps.size());
  const std::vector<BufferUse> uses = buffer_uses(plan, threads);
  // One trial order's cost: placing every step, then every buffer's steps and the running sum.
  int64_t trial_cost = 2 * static_cast<int64_t>(n) + 1;
  for (const BufferUse& u : uses) trial_cost += static_cast<int64_t>(u.steps.size()) + 1;
  int64_t work = trial_cost;
  const StepUses values(plan);
  std::vector<std::vector<int>> before(n), after(n);  // the steps writing a step's inputs, and reading its output
  for (int i = 0; i < n; ++i) {
    for (int v : plan.steps[i].inputs) {
      if (const int w = values.writer[v]; w >= 0) before[i].push_back(w);
    }
    after[i] = values.readers[plan.steps[i].output];
  }
  std::vector<int> order(n), position(n), trial(n);
  std::iota(order.begin(), order.end(), 0);
  std::iota(position.begin(), position.end(), 0);
  std::vector<int64_t> live(static_cast<std::size_t>(n) + 1);
  Held now = held(uses, position, live);
  // Each round takes the move that lowers the memory most; every move lowers it, so the rounds end.
  // A round weighs O(n^2) orders of O(n) each: on a wide graph of thousands of steps (a definition
  // is hostile input) the search stops at its work budget with the best move found so far, every
  // order on the way valid.
  for (int round = 0; round < 4 * n && work < work_budget; ++round) {
    Held best = now;
    int best_step = -1, best_to = -1;
    for (int x = 0; x < n; ++x) {
      int lo = 0, hi = n - 1;  // between its inputs' writers and its output's readers
      for (int w : before[x]) lo = std::max(lo, position[w] + 1);
      for (int r : after[x]) hi = std::min(hi, position[r] - 1);
      for (int to = lo; to <= hi && work < work_budget; ++to) {
        if (to == position[x]) continue;
        moved(order, position[x], to, trial);
        const Held h = held(uses, trial, live);
        work += trial_cost;
        if (h < best) {
          best = h;
          best_step = x;
          best_to = to;
        }
      }
    }
    if (best_step < 0) break;
    moved(order, position[best_step], best_to, position);
    for (int s = 0; s < n; ++s) order[position[s]] = s;
    now = best;
  }
  std::vector<PlanStep> steps;
  steps.reserve(plan.steps.size());
  for (int t = 0; t < n; ++t) steps.push_back(std::move(plan.steps[order[t]]));
  plan.steps = std::move(steps);
  return work;
}

}  // namespace ecocpu::plan_rules
