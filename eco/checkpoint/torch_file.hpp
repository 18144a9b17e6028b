#pragma once
// A PyTorch checkpoint file, either format torch.save writes:
//  - zip (PyTorch >= 1.6): <prefix>/data.pkl plus one stored entry <prefix>/data/<key> per storage;
//  - legacy (before 1.6, e.g. the released ECO models from PyTorch 0.4.1): magic number, protocol
//    version and system info pickles, the object pickle, the storage key list, then each storage
//    as an 8-byte element count followed by its raw bytes.
// The file is memory-mapped; storages may be tagged with any location (cpu, cuda:0, ...) and all
// are read on the CPU.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eco/io/mapped_file.hpp"
#include "eco/checkpoint/pickle.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu {

// dtype of a storage type name: "FloatStorage" -> {"float32", 4}.
struct StorageDtype {
  std::string name;
  int element_size = 0;
};
StorageDtype storage_dtype(const std::string& type_name);

class TorchFile {
 public:
  // Throws FileError "<path>: <cause>" for anything unreadable, malformed or refused.
  static TorchFile open(const std::string& path);
  // The same from a file already in memory (tests and fuzzers).
  static TorchFile read(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const char* format() const { return zip_ ? "zip" : "legacy"; }
  const PyObject& root() const { return *root_; }

  // The tensor as float32, contiguous: a view into the mapped file where the data is float32,
  // contiguous and aligned, else a converted copy (float16, bfloat16, float64, strided views).
  // Throws for integer tensors, windows outside their storage (every size, stride and offset is
  // checked, overflow included, before a byte is read) and non-finite values.
  Tensor to_float32(const TensorRef& tensor, const std::string& name) const;

 private:
  struct StorageBytes {
    const uint8_t* data = nullptr;
    int64_t numel = 0;
  };
  void read_zip();
  void read_legacy();
  const StorageBytes& bytes_of(const StorageRef& storage, const std::string& name) const;

  std::shared_ptr<const MappedFile> file_;
  std::shared_ptr<PickleArena> arena_;
  PyRef root_ = nullptr;
  bool zip_ = false;
  std::map<std::string, StorageBytes> storages_;
};

// "float32 (64, 3, 7, 7)" style description helpers for listings.
std::string tensor_dtype(const TensorRef& tensor);

// The element count of a tensor's shape, or nullopt when it overflows.
std::optional<int64_t> tensor_numel(const TensorRef& tensor);

}  // namespace ecocpu
