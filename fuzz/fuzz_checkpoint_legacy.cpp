// Legacy checkpoints (torch.save before PyTorch 1.6, like the released ECO models): five pickles
// back to back, then each storage as an element count and raw bytes. Same checks as the zip
// target; a separate target so that its corpus holds only legacy files and its mutator knows the
// layout.
#include <cstring>

#include "checkpoint_target.hpp"
#include "pickle_ints.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using namespace ecocpu::fuzz;

// The magic number, protocol version and system info come first; mutating them only gets the
// file refused at once, so integer mutations start at the object pickle.
constexpr int kHeaderPickles = 3;

// The first storage's 8-byte element count, which follows the storage key list.
bool mutate_storage_count(Bytes& b, Rng& rng) {
  const PickleScan scan = scan_pickles(b, 0, kHeaderPickles + 2);
  if (scan.pickles != kHeaderPickles + 2 || scan.end + 8 > b.size()) return false;
  uint64_t count = 0;
  for (int i = 0; i < 8; ++i) count |= static_cast<uint64_t>(b[scan.end + i]) << (8 * i);
  const auto v = static_cast<uint64_t>(interesting_int(rng, static_cast<int64_t>(count)));
  for (int i = 0; i < 8; ++i) b[scan.end + i] = static_cast<uint8_t>(v >> (8 * i));
  return true;
}

bool mutate_structure(Bytes& b, Rng& rng) {
  if (rng.one_in(4)) return mutate_storage_count(b, rng);
  const PickleScan header = scan_pickles(b, 0, kHeaderPickles);
  if (header.pickles != kHeaderPickles) return false;
  return mutate_pickle_int(b, header.end, 2, rng);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_checkpoint_bytes(data, size);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng rng(seed);
  if (rng.one_in(2)) return LLVMFuzzerMutate(data, size, max_size);
  Bytes b(data, data + size);
  if (!mutate_structure(b, rng) || b.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, b.data(), b.size());
  return b.size();
}
