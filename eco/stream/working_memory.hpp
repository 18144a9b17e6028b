#pragma once
// Which frames the network sees at each update of an online stream: the working memory of N frame
// indices (0-based, ascending), renewed every N new frames. Two schemes:
//  - paper (ECO, online section): the first N frames fill the memory; after that, a random half of
//    the memory and a random half of the N new frames, in time order, become the new memory;
//  - decay (the authors' released live demo): the last five windows of N frames are kept, each
//    thinned evenly to N/2, N/4, ... frames from the newest back, the oldest as many as the one
//    after it (N = 16: [16], [8, 8], [4, 4, 8], [2, 2, 4, 8], [1, 1, 2, 4, 8]), so older history
//    fades. Thinning keeps round(linspace(0, len - 1, k)) of a window's frames (half to even, as
//    numpy's rint), applied to what the window kept before, so a frame once dropped never returns.
// A skipped update (the network fell behind) never reaches the scheme: its frames are lost and the
// memory stays as it was.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace ecocpu::stream {

enum class MemoryKind { paper, decay };
MemoryKind parse_memory_kind(const std::string& name);  // "paper", "decay"; std::invalid_argument otherwise
const char* memory_kind_name(MemoryKind kind);

class WorkingMemory {
 public:
  virtual ~WorkingMemory() = default;
  // The memory after the window [first, first + N) of new frames arrives.
  virtual std::vector<int64_t> update(int64_t first) = 0;
  int64_t size() const { return size_; }

 protected:
  explicit WorkingMemory(int64_t size) : size_(size) {}
  int64_t size_;
};

class PaperMemory final : public WorkingMemory {
 public:
  PaperMemory(int64_t size, uint64_t seed) : WorkingMemory(size), rng_(seed) {}
  std::vector<int64_t> update(int64_t first) override;

 private:
  std::vector<int64_t> random_part(const std::vector<int64_t>& from, int64_t count);
  std::mt19937_64 rng_;  // its output sequence is fixed by the standard, so a seed gives the same memory everywhere
  std::vector<int64_t> memory_;
};

class DecayMemory final : public WorkingMemory {
 public:
  explicit DecayMemory(int64_t size) : WorkingMemory(size) {}
  std::vector<int64_t> update(int64_t first) override;
  static constexpr int kWindows = 5;

 private:
  std::vector<std::vector<int64_t>> windows_;  // oldest first
};

// The memory scheme for N frames. Throws std::invalid_argument for decay with N not a multiple of
// 16 (its thinning halves a window four times) or N < 1.
std::unique_ptr<WorkingMemory> make_working_memory(MemoryKind kind, int64_t size, uint64_t seed);

// How many of each window's frames the decay scheme keeps, oldest window first, with `windows`
// windows held (1 to 5) and memory size N.
std::vector<int64_t> decay_counts(int64_t windows, int64_t size);

// round(linspace(0, len - 1, count)) over `kept`, numpy's rounding (half to even).
std::vector<int64_t> thin_evenly(const std::vector<int64_t>& kept, int64_t count);

}  // namespace ecocpu::stream
