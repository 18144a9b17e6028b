#include "tensor/scratch.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

namespace ecocpu {

void advise_huge_pages(const void* data, int64_t bytes) {
  if (bytes < 2 * kHugePageBytes) return;
  // Only the huge pages wholly inside: khugepaged fills a page's unwritten rest with zeros, which
  // would be memory the buffer never held.
  const auto begin = reinterpret_cast<std::uintptr_t>(data), end = begin + static_cast<std::uintptr_t>(bytes);
  const auto page = static_cast<std::uintptr_t>(kHugePageBytes);
  const std::uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last <= first) return;
  madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  // The ends on ordinary pages even where malloc hands out memory a freed buffer had advised
  // (the advice stays with the mapping, not the allocation).
  const auto small = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const std::uintptr_t head = begin / small * small, tail = (end + small - 1) / small * small;
  if (first > head) madvise(reinterpret_cast<void*>(head), first - head, MADV_NOHUGEPAGE);
  if (tail > last) madvise(reinterpret_cast<void*>(last), tail - last, MADV_NOHUGEPAGE);
}

namespace {

// At least one float, rounded up to whole 64-byte lines, freed with std::free. With huge pages it
// starts on one and its whole huge pages are advised; the rest of its last one is not taken (an
// arena of 34.6 MiB would hold 36), so its tail stays on ordinary pages.
float* aligned_floats(int64_t floats, Pages pages = Pages::ordinary) {
  if (floats > (std::numeric_limits<int64_t>::max() - kHugePageBytes) / 4) throw std::bad_alloc();
  const int64_t bytes = std::max<int64_t>(floats, 1) * 4, rounded = (bytes + 63) / 64 * 64;
  const bool huge = pages == Pages::huge && bytes >= 2 * kHugePageBytes;
  void* data = nullptr;
  if (posix_memalign(&data, static_cast<std::size_t>(huge ? kHugePageBytes : 64), static_cast<std::size_t>(rounded)) != 0) {
    throw std::bad_alloc();
  }
  if (huge) advise_huge_pages(data, rounded);
  return static_cast<float*>(data);
}

std::atomic<int64_t> held_bytes{0}, peak_bytes{0};

void count_held(int64_t delta) {
  const int64_t now = held_bytes.fetch_add(delta) + delta;
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

int64_t scratch_bytes() { return held_bytes.load(); }
int64_t scratch_peak_bytes() { return peak_bytes.load(); }

std::shared_ptr<float> shared_floats(int64_t floats, Pages pages) {
  return std::shared_ptr<float>(aligned_floats(floats, pages), std::free);
}

std::shared_ptr<void> shared_zeroed_bytes(int64_t bytes) {
  const int64_t floats = (std::max<int64_t>(bytes, 1) + 3) / 4;
  std::shared_ptr<void> memory(aligned_floats(floats), std::free);
  constexpr int64_t kChunk = 1 << 16;  // whole pages for each thread
  auto* data = static_cast<char*>(memory.get());
  const int64_t size = (floats * 4 + 63) / 64 * 64, chunks = (size + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    std::memset(data + c * kChunk, 0, static_cast<std::size_t>(std::min(kChunk, size - c * kChunk)));
  }
  return memory;
}

ScratchBuffer::~ScratchBuffer() { release(); }

void ScratchBuffer::release() {
  std::free(data_);
  data_ = nullptr;
  count_held(-size_ * 4);
  size_ = 0;
}

float* ScratchBuffer::reserve(int64_t floats) {
  if (size_ < floats) {
    release();  // a failed allocation below leaves an empty buffer, not a freed one
    data_ = aligned_floats(floats, Pages::huge);
    size_ = floats;
    count_held(size_ * 4);
  }
  return data_;
}

}  // namespace ecocpu
