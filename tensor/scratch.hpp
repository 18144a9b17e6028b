#pragma once
// A block of working memory that only grows, so a forward pass after the first allocates (and
// page-faults) nothing: what every Workspace (tensor/workspace.hpp) is made of. Kernels take their
// scratch from a Workspace, not from buffers of their own.
#include <cstdint>
#include <memory>

namespace ecocpu {

// Which pages a buffer asks the kernel for. `huge`: a buffer of kHugePageBytes * 2 or more is
// aligned to 2 MB and its whole 2 MB pages are advised as transparent huge pages
// (MADV_HUGEPAGE; where the kernel has them off, it gets ordinary pages): memory a forward pass
// sweeps again and again (the activation arena, the workspaces) then misses the TLB 512 times
// less. Packed weights are written on ordinary pages (in a VM a fresh huge page costs its first
// touch far more, docs/performance.md, which plan preparation would pay) and advised afterwards
// (advise_huge_pages).
enum class Pages { ordinary, huge };
inline constexpr int64_t kHugePageBytes = int64_t{2} << 20;

// Advises the whole 2 MB pages inside a buffer of 2 * kHugePageBytes or more as transparent huge
// pages (MADV_HUGEPAGE). Before the buffer is first written, its first touch takes huge pages
// (Pages::huge); after, the kernel's khugepaged moves them onto huge pages in the background
// (16 MB every 10 s by default), without the slow first touch of fresh huge pages: packed
// weights, which every pass streams, once written. The buffer's contents and the memory it holds
// stay as they are; without transparent huge pages nothing happens.
void advise_huge_pages(const void* data, int64_t bytes);

// `floats` floats, 64-byte aligned (2 MB with Pages::huge, when that applies), owned by the
// returned pointer (packed weights, shared by the plans that copy a prepared layer); throws
// std::bad_alloc.
std::shared_ptr<float> shared_floats(int64_t floats, Pages pages = Pages::ordinary);
// `bytes` bytes (at least 64), 64-byte aligned, zeroed by every thread of an OpenMP team at once:
// the first touch of a large buffer is its page faults, which are then taken on every core instead
// of one (packed weights: most of plan preparation).
std::shared_ptr<void> shared_zeroed_bytes(int64_t bytes);

// Its memory asks for huge pages (Pages::huge).
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer();

  // At least `floats` floats, 64-byte aligned; contents are not kept when it grows.
  float* reserve(int64_t floats);

 private:
  void release();

  float* data_ = nullptr;
  int64_t size_ = 0;
};

// What every ScratchBuffer of every thread holds, in bytes (so every live workspace's arena, a
// plan's and the growing ones of threads that ran kernels outside a plan): now, and the most at
// any time since the process started. The kernels' working memory is not in a plan's buffers, so
// `bench` reports it beside them.
int64_t scratch_bytes();
int64_t scratch_peak_bytes();

}  // namespace ecocpu
