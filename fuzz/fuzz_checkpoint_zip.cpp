// Zip checkpoints (PyTorch >= 1.6): the zip directory, the restricted unpickler, storages and
// tensor windows, float conversion and the match against a model.
#include <algorithm>
#include <cstring>
#include <iterator>

#include "checkpoint_target.hpp"
#include "pickle_ints.hpp"
#include "zip_entries.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using namespace ecocpu::fuzz;

ZipFileEntry* find_pickle(std::vector<ZipFileEntry>& entries) {
  for (auto& e : entries) {
    if (e.name.ends_with("data.pkl")) return &e;
  }
  return nullptr;
}

// Byte-level mutation of one entry only: the archive around it stays valid, so the change reaches
// the unpickler (or the storage checks) instead of failing in the zip directory.
void mutate_entry_bytes(ZipFileEntry& e, std::size_t max_size) {
  if (e.data.empty()) e.data.push_back(0);
  const std::size_t size = e.data.size();
  e.data.resize(std::max(size, std::min(max_size, size * 2 + 64)));
  e.data.resize(LLVMFuzzerMutate(e.data.data(), size, e.data.size()));
}

// A storage entry one element shorter, longer or emptied: its length against the pickle's numel.
void resize_storage(std::vector<ZipFileEntry>& entries, Rng& rng) {
  std::vector<ZipFileEntry*> storages;
  for (auto& e : entries) {
    if (e.name.find("/data/") != std::string::npos) storages.push_back(&e);
  }
  if (storages.empty()) return;
  auto& data = storages[rng.below(storages.size())]->data;
  const std::size_t n = data.size();
  const std::size_t sizes[] = {0, n > 4 ? n - 4 : 0, n + 4, n / 2};
  data.resize(sizes[rng.below(std::size(sizes))]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_checkpoint_bytes(data, size);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng rng(seed);
  auto entries = unpack_zip(data, size);
  ZipFileEntry* pickle = entries ? find_pickle(*entries) : nullptr;
  if (!pickle || rng.one_in(4)) return LLVMFuzzerMutate(data, size, max_size);  // the zip layer too
  switch (rng.below(4)) {
    case 0:
    case 1:
      if (!mutate_pickle_int(pickle->data, 0, 1, rng)) mutate_entry_bytes(*pickle, max_size);
      break;
    case 2: mutate_entry_bytes(*pickle, max_size); break;
    default: resize_storage(*entries, rng); break;
  }
  const std::vector<uint8_t> out = pack_zip(*entries);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
