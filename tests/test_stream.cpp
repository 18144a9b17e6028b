// Online recognition (eco/stream): the working memory schemes, the running prediction, and the 2D
// feature cache against the whole model run on each update's memory.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <numeric>
#include <set>

#include "eco/api/loading.hpp"
#include "eco/random_weights.hpp"
#include "eco/stream/live_stream.hpp"
#include "eco/stream/online_model.hpp"
#include "eco/stream/working_memory.hpp"
#include "oracles.hpp"

using namespace ecocpu;
using namespace ecocpu::stream;

namespace {

std::vector<int64_t> range(int64_t first, int64_t count) {
  std::vector<int64_t> r(static_cast<std::size_t>(count));
  std::iota(r.begin(), r.end(), first);
  return r;
}

int64_t shared_count(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  int64_t n = 0;
  for (int64_t x : a) n += std::count(b.begin(), b.end(), x);
  return n;
}

}  // namespace

TEST_CASE("working memory, paper: the first window, then half the memory and half the new frames, in time order") {
  for (int64_t n : {16, 7, 1}) {
    CAPTURE(n);
    auto memory = make_working_memory(MemoryKind::paper, n, 5);
    std::vector<int64_t> previous = memory->update(0);
    CHECK(previous == range(0, n));
    for (int64_t k = 1; k < 6; ++k) {
      const std::vector<int64_t> now = memory->update(k * n);
      CHECK(static_cast<int64_t>(now.size()) == n);
      CHECK(std::is_sorted(now.begin(), now.end()));
      CHECK(std::set<int64_t>(now.begin(), now.end()).size() == now.size());
      CHECK(shared_count(now, previous) == n / 2);
      CHECK(shared_count(now, range(k * n, n)) == n - n / 2);
      previous = now;
    }
  }
  auto a = make_working_memory(MemoryKind::paper, 16, 1), b = make_working_memory(MemoryKind::paper, 16, 1);
  auto c = make_working_memory(MemoryKind::paper, 16, 2);
  bool differs = false;
  for (int64_t k = 0; k < 4; ++k) {
    const auto x = a->update(16 * k);
    CHECK(x == b->update(16 * k));
    differs = differs || x != c->update(16 * k);
  }
  CHECK(differs);
}

TEST_CASE("working memory, decay: five windows thinned to 1, 1, 2, 4, 8 of 16, each from what it kept before") {
  CHECK(thin_evenly(range(0, 16), 8) == std::vector<int64_t>{0, 2, 4, 6, 9, 11, 13, 15});
  CHECK(thin_evenly({0, 2, 4, 6, 9, 11, 13, 15}, 4) == std::vector<int64_t>{0, 4, 11, 15});
  CHECK(thin_evenly(range(0, 6), 3) == std::vector<int64_t>{0, 2, 5});  // 2.5 rounds to even, as numpy's rint
  CHECK(thin_evenly({7, 9}, 1) == std::vector<int64_t>{7});
  CHECK(decay_counts(1, 16) == std::vector<int64_t>{16});
  CHECK(decay_counts(3, 16) == std::vector<int64_t>{4, 4, 8});
  CHECK(decay_counts(5, 16) == std::vector<int64_t>{1, 1, 2, 4, 8});
  CHECK(decay_counts(5, 32) == std::vector<int64_t>{2, 2, 4, 8, 16});

  auto memory = make_working_memory(MemoryKind::decay, 16, 0);
  CHECK(memory->update(0) == range(0, 16));
  CHECK(memory->update(16) == std::vector<int64_t>{0, 2, 4, 6, 9, 11, 13, 15, 16, 18, 20, 22, 25, 27, 29, 31});
  CHECK(memory->update(32) == std::vector<int64_t>{0, 4, 11, 15, 16, 20, 27, 31, 32, 34, 36, 38, 41, 43, 45, 47});
  std::vector<int64_t> last;
  for (int64_t k = 3; k < 9; ++k) last = memory->update(16 * k);
  CHECK(last.size() == 16u);
  CHECK(last.front() >= 16 * 4);  // only the last five windows remain
  CHECK(std::is_sorted(last.begin(), last.end()));
  CHECK_THROWS_WITH_AS(make_working_memory(MemoryKind::decay, 12, 0), doctest::Contains("not a multiple of 16"),
                       std::invalid_argument);
  CHECK_THROWS_AS(parse_memory_kind("fade"), std::invalid_argument);
}

TEST_CASE("running prediction: the average of probabilities halves toward each update; decay sums logits") {
  const std::vector<float> a{1.0f, 2.0f, 0.5f}, b{3.0f, -1.0f, 0.0f};
  RunningPrediction paper(false), decay(true);
  paper.add(a.data(), 3);
  decay.add(a.data(), 3);
  CHECK(paper.value() == softmax(a.data(), 3));
  paper.add(b.data(), 3);
  decay.add(b.data(), 3);
  const auto pa = softmax(a.data(), 3), pb = softmax(b.data(), 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(paper.value()[i] == doctest::Approx((pa[i] + pb[i]) / 2).epsilon(1e-12));
    CHECK(decay.value()[i] == doctest::Approx(a[i] + b[i]));
  }
  const std::vector<float> summed{4.0f, 1.0f, 0.5f};
  CHECK(decay.probabilities() == softmax(summed.data(), 3));
  CHECK(paper.probabilities() == paper.value());
}

// Each update's logits equal the whole model's on the memory's frames; only frames new to the
// memory go through the 2D part.
TEST_CASE("online model: the feature cache gives the whole model's logits, computing only new frames") {
  for (const char* arch : {"ECO", "ECOfull"}) {
    CAPTURE(arch);
    const Graph g = test::small_eco(arch, 12);  // 4 segments
    const WeightStore w = random_weights(g, 41);
    const ExecutionPlan whole = make_plan(g, w);
    OnlineModel online(g, w, {});
    CHECK(online.batch() == 2);
    const Tensor video = random_input(Shape{12, 3, 224, 224}, 42);  // 12 frames, 3 windows
    const int64_t frame_floats = 3 * 224 * 224;
    auto frame = [&](int64_t i) { return video.data() + i * frame_floats; };
    auto memory = make_working_memory(MemoryKind::paper, 4, 43);
    std::vector<int64_t> previous;
    for (int64_t first = 0; first < 12; first += 4) {
      const std::vector<int64_t> m = memory->update(first);
      std::vector<int64_t> asked;
      const OnlineModel::Update u = online.update(m, [&](int64_t i) {
        asked.push_back(i);
        return frame(i);
      });
      CHECK(u.computed_2d == 4 - shared_count(m, previous));
      CHECK(shared_count(asked, previous) == 0);
      CHECK(online.cached_frames() == 4);
      Tensor clip(g.input_shape());
      for (std::size_t t = 0; t < m.size(); ++t) std::memcpy(clip.data() + t * frame_floats, frame(m[t]), frame_floats * sizeof(float));
      CHECK(test::max_relative_error(u.logits, run_plan(whole, w, clip)) < 1e-4f);
      previous = m;
    }
  }
}

TEST_CASE("realtime pacing: frames follow their timestamps' gaps, each gap kept within 0 to 2 s") {
  Pacer steady;
  CHECK(steady.schedule(0.0) == 0.0);
  CHECK(steady.schedule(0.04) == doctest::Approx(0.04));
  CHECK(steady.schedule(0.08) == doctest::Approx(0.08));
  // A jump of a year ahead costs one 2 s gap; the frames after it follow at their own pace.
  Pacer ahead;
  for (double t : {0.0, 0.04, 3.15e7, 3.15e7 + 0.04, 3.15e7 + 0.08}) ahead.schedule(t);
  CHECK(ahead.schedule(3.15e7 + 0.12) == doctest::Approx(0.04 + kMaxPacingGap + 0.12));
  // A jump back waits for nothing, and the frames after it are paced again at once.
  Pacer back;
  for (double t : {0.0, 10.0, 1.0}) back.schedule(t);
  CHECK(back.schedule(1.04) == doctest::Approx(kMaxPacingGap + 0.04));
  Pacer broken;
  broken.schedule(0.0);
  CHECK(broken.schedule(std::nan("")) == 0.0);
  CHECK(broken.schedule(0.04) == doctest::Approx(0.04));
  CHECK(broken.schedule(std::numeric_limits<double>::infinity()) == doctest::Approx(0.04 + kMaxPacingGap));
}
