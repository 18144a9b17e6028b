#pragma once
// The fast kernels' working memory, planned. A kernel call takes two zones of one workspace:
// `shared` memory its whole team uses (the channels-last copy of its input, or GEMM panels the
// threads fill together) and one slab per thread (thread = omp_get_thread_num() in the team of
// the call), which it carves into the named regions it needs (ScratchLayout, Region). The zones are
// apart so that a copy made by one call (channels_last_input) survives the next (the convolution
// that reads it, whose own scratch is in the slabs). Every kernel that takes scratch offers a size
// function beside it that lays out the same regions, so a plan can place each step's workspace in
// its arena before it runs (graph/plan.hpp), and a second plan's lets a second pass run at the
// same time on another thread without sharing any memory.
//
// A plan binds each step's workspace for that step (WorkspaceScope); a kernel reads current_workspace() once,
// at its entry, on the calling thread (its parallel regions run on other OS threads, which do not
// see the caller's binding) and indexes the slabs by thread inside. A fixed workspace never grows:
// a call that needs more than it holds throws std::logic_error naming the kernel and both sizes,
// which is what keeps the size functions honest. A kernel called outside any scope (tests,
// benchmarks) gets its calling thread's own workspace, which grows as the old buffers did.
#include <cstddef>
#include <cstdint>

#include "tensor/scratch.hpp"

namespace ecocpu {

// Every region starts on a 64-byte line: aligned vector loads, and no two threads' regions share
// a cache line.
constexpr int64_t kWorkspaceAlignment = 64;
constexpr int64_t workspace_round(int64_t bytes) {
  return (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

// `count` T's at `offset` bytes from the start of a slab or of the shared zone.
template <class T>
struct Region {
  int64_t offset = 0, count = 0;
};

// The regions of one slab (or of the shared zone), one after another in the order added. A
// kernel's size function and the kernel build the same layout, so what it reports is what it uses.
class ScratchLayout {
 public:
  template <class T>
  Region<T> add(int64_t count) {
    const Region<T> r{bytes_, count};
    bytes_ += workspace_round(count * static_cast<int64_t>(sizeof(T)));
    return r;
  }
  int64_t bytes() const { return bytes_; }

 private:
  int64_t bytes_ = 0;
};

// What a kernel call needs, or what a workspace holds: `shared` bytes once and `per_thread` bytes
// in each of `threads` slabs.
struct ScratchSize {
  int threads = 1;
  int64_t shared = 0;
  int64_t per_thread = 0;
  int64_t bytes() const { return shared + threads * per_thread; }
};

// Enough for either: a workspace of this size serves both calls (a plan's steps run one by one).
ScratchSize max_size(const ScratchSize& a, const ScratchSize& b);

// One call's shared zone, carved by a ScratchLayout.
class Zone {
 public:
  Zone() = default;
  explicit Zone(std::byte* base) : base_(base) {}
  template <class T>
  T* at(Region<T> r) const {
    return reinterpret_cast<T*>(base_ + r.offset);
  }

 private:
  std::byte* base_ = nullptr;
};

// One call's slabs: thread t's region is pointer arithmetic on the call's base.
class Slabs {
 public:
  Slabs() = default;
  Slabs(std::byte* base, int64_t stride) : base_(base), stride_(stride) {}
  template <class T>
  T* at(int thread, Region<T> r) const {
    return reinterpret_cast<T*>(base_ + thread * stride_ + r.offset);
  }

 private:
  std::byte* base_ = nullptr;
  int64_t stride_ = 0;
};

class Workspace {
 public:
  // Empty, and grows when a call needs more: the fallback of kernels run outside a plan.
  Workspace() = default;
  // Fixed: `size.shared` bytes and `size.threads` slabs of `size.per_thread` bytes (each rounded
  // down to whole 64-byte lines), allocated now as one 64-byte aligned arena; it never grows.
  explicit Workspace(const ScratchSize& size);
  // Fixed, over `memory` (64-byte aligned, at least size.bytes() rounded down to whole lines per
  // zone), which the caller owns and keeps while the workspace is in use: a plan's step carved
  // from its activation arena.
  Workspace(const ScratchSize& size, std::byte* memory);
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // The shared zone for one call, `count` T's from its start. It stays valid until the next
  // call's shared zone is taken (channels_last_input's copy is read by the convolution after it).
  template <class T>
  T* shared(const char* kernel, int64_t count) {
    return reinterpret_cast<T*>(shared_bytes(kernel, workspace_round(count * static_cast<int64_t>(sizeof(T)))));
  }
  // The same, for a shared zone carved into regions (a ScratchLayout's bytes()).
  Zone shared_zone(const char* kernel, int64_t bytes) { return Zone(shared_bytes(kernel, bytes)); }
  // `threads` slabs of `per_thread` bytes for one call (a ScratchLayout's bytes()).
  Slabs slabs(const char* kernel, int threads, int64_t per_thread);

  bool grows() const { return grows_; }
  // What it holds now.
  ScratchSize capacity() const { return {slab_count_, shared_size_, slab_size_}; }

 private:
  std::byte* shared_bytes(const char* kernel, int64_t bytes);

  bool grows_ = true;
  // Fixed: `arena_` holds the shared zone, then the slabs. Growing: `arena_` holds the slabs and
  // `shared_zone_` the shared zone, so that either grows without moving the other.
  ScratchBuffer arena_, shared_zone_;
  std::byte* shared_ = nullptr;
  std::byte* slabs_ = nullptr;
  int64_t shared_size_ = 0, slab_size_ = 0;
  int slab_count_ = 0;
};

// The workspace bound on the calling thread, else the calling thread's growing fallback. Kernels
// call it at their entry, never inside a parallel region.
Workspace& current_workspace();

// Binds a workspace on the calling thread for the scope's life (one forward pass), restoring the
// previous binding after.
class WorkspaceScope {
 public:
  explicit WorkspaceScope(Workspace& workspace);
  ~WorkspaceScope();
  WorkspaceScope(const WorkspaceScope&) = delete;
  WorkspaceScope& operator=(const WorkspaceScope&) = delete;

 private:
  Workspace* previous_;
};

}  // namespace ecocpu
