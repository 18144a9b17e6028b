#include "tensor/workspace.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ecocpu {

namespace {

thread_local Workspace* bound = nullptr;

std::byte* bytes_of(float* p) { return reinterpret_cast<std::byte*>(p); }

// What a call asks for is a ScratchLayout's bytes, or rounded up to whole lines like them.
void check_size(int64_t bytes, const char* what) {
  if (bytes < 0 || bytes % kWorkspaceAlignment != 0) {
    throw std::logic_error(std::string("workspace: ") + what + " must be a non-negative multiple of 64 bytes");
  }
}

// A fixed workspace holds whole 64-byte lines: what a size asks for beyond the last one is left out.
int64_t whole_lines(int64_t bytes) { return bytes / kWorkspaceAlignment * kWorkspaceAlignment; }

}  // namespace

ScratchSize max_size(const ScratchSize& a, const ScratchSize& b) {
  return {std::max(a.threads, b.threads), std::max(a.shared, b.shared), std::max(a.per_thread, b.per_thread)};
}

Workspace::Workspace(const ScratchSize& size)
    : grows_(false),
      shared_size_(whole_lines(size.shared)),
      slab_size_(whole_lines(size.per_thread)),
      slab_count_(size.threads) {
  if (size.threads < 1 || size.shared < 0 || size.per_thread < 0) {
    throw std::logic_error("workspace: at least one thread, and no negative size");
  }
  const int64_t bytes = shared_size_ + slab_count_ * slab_size_;
  if (bytes > 0) shared_ = bytes_of(arena_.reserve(bytes / 4));
  slabs_ = shared_ ? shared_ + shared_size_ : nullptr;
}

Workspace::Workspace(const ScratchSize& size, std::byte* memory)
    : grows_(false),
      shared_(memory),
      shared_size_(whole_lines(size.shared)),
      slab_size_(whole_lines(size.per_thread)),
      slab_count_(size.threads) {
  if (size.threads < 1 || size.shared < 0 || size.per_thread < 0) {
    throw std::logic_error("workspace: at least one thread, and no negative size");
  }
  slabs_ = memory ? memory + shared_size_ : nullptr;
}

std::byte* Workspace::shared_bytes(const char* kernel, int64_t bytes) {
  check_size(bytes, "a shared zone");
  if (bytes <= shared_size_) return shared_;
  if (!grows_) {
    throw std::logic_error(std::string(kernel) + " needs " + std::to_string(bytes) +
                           " shared scratch bytes; the workspace was planned with " + std::to_string(shared_size_));
  }
  shared_ = bytes_of(shared_zone_.reserve(bytes / 4));
  shared_size_ = bytes;
  return shared_;
}

Slabs Workspace::slabs(const char* kernel, int threads, int64_t per_thread) {
  check_size(per_thread, "a slab");
  if (threads <= slab_count_ && per_thread <= slab_size_) return {slabs_, slab_size_};
  if (!grows_) {
    throw std::logic_error(std::string(kernel) + " needs " + std::to_string(threads) + " threads x " +
                           std::to_string(per_thread) + " scratch bytes; the workspace was planned with " +
                           std::to_string(slab_count_) + " x " + std::to_string(slab_size_));
  }
  // Growing: the old slabs go first (no call holds them: claims are not nested), then the new.
  slab_count_ = std::max(slab_count_, threads);
  slab_size_ = std::max(slab_size_, per_thread);
  slabs_ = bytes_of(arena_.reserve(slab_count_ * slab_size_ / 4));
  return {slabs_, slab_size_};
}

Workspace& current_workspace() {
  if (bound) return *bound;
  thread_local Workspace fallback;
  return fallback;
}

WorkspaceScope::WorkspaceScope(Workspace& workspace) : previous_(bound) { bound = &workspace; }

WorkspaceScope::~WorkspaceScope() { bound = previous_; }

}  // namespace ecocpu
