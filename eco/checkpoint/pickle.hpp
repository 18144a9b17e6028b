#pragma once
// A restricted pickle reader for PyTorch checkpoints. It understands the opcodes of protocols 0-5
// that checkpoints use, and resolves only a fixed list of globals (OrderedDict, PyTorch's tensor
// and parameter rebuild functions, its storage types, torch.Size, numpy scalars) into inert data.
// Any other global -- os.system, builtins.eval, a pickled nn.Module class -- is refused when it is
// named, before anything could call it. Nothing is ever executed: "calling" an allowed global is
// a C++ function building a value.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "eco/io/mapped_file.hpp"

namespace ecocpu {

struct PyObject;
// Objects live in a PickleArena and refer to each other by plain pointers: a pickle can build
// cycles (a list appended to itself) or deep nesting, which owning pointers would leak or free
// recursively.
using PyRef = PyObject*;

// A storage named by a persistent id: ('storage', torch.<T>Storage, key, location, numel).
struct StorageRef {
  std::string key;
  std::string type_name;  // e.g. "FloatStorage"
  std::string location;   // e.g. "cpu", "cuda:0"
  int64_t numel = 0;
};

// A tensor rebuilt by torch._utils._rebuild_tensor(_v2): a strided window of a storage.
struct TensorRef {
  std::shared_ptr<StorageRef> storage;
  int64_t offset = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;
};

enum class PyType {
  None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict,
  Global,    // an allowed callable or type, `text` = "module.name"
  Storage,   // a persistent storage reference
  Tensor,
  Opaque,    // inert data we do not interpret (e.g. an unusual numpy scalar), `text` says what
};

struct PyObject {
  PyType type = PyType::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;  // Str, Bytes, BigInt (little-endian bytes), Global, Opaque
  std::vector<PyRef> items;                       // Tuple, List
  std::vector<std::pair<PyRef, PyRef>> entries;   // Dict, in insertion order
  std::shared_ptr<StorageRef> storage;
  std::shared_ptr<TensorRef> tensor;

  // The value stored under a string key of a Dict, or null.
  const PyObject* get(const std::string& key) const;
  std::string type_name() const;  // for error messages: "dict", "tensor", ...
};

// Thrown when unpacking a pickle would take more memory than its arena's budget.
class PickleBudgetExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The objects of one file's pickles, with a memory budget: a pickle of a few bytes per opcode can
// ask for far more memory than it is long (memo references, repeated containers), so every object
// and every container slot is charged, and going over the budget stops the load.
class PickleArena {
 public:
  // A budget for pickles read from `source_bytes` bytes: kPickleBudgetBase plus
  // kPickleBudgetPerByte per byte (docs/checkpoints.md).
  static std::size_t budget_for(std::size_t source_bytes);
  explicit PickleArena(std::size_t budget) : budget_(budget) {}

  PyRef make(PyType type) {
    charge(sizeof(PyObject));
    objects_.emplace_back();
    objects_.back().type = type;
    return &objects_.back();
  }
  // Throws PickleBudgetExceeded when `bytes` more would go over the budget.
  void charge(std::size_t bytes);
  std::size_t used() const { return used_; }
  std::size_t budget() const { return budget_; }

 private:
  std::deque<PyObject> objects_;  // stable addresses
  std::size_t budget_;
  std::size_t used_ = 0;
};

constexpr std::size_t kPickleBudgetBase = std::size_t{64} << 20;
constexpr std::size_t kPickleBudgetPerByte = 32;

// Resolves a persistent id (the tuple BINPERSID pops) to a value, typically a Storage.
using PersistentLoader = std::function<PyRef(const PyObject& pid, PickleArena& arena)>;

// Reads one pickle (up to STOP) from `in` into `arena`. Throws FileError
// "<source>: <cause>".
PyRef read_pickle(ByteReader& in, const PersistentLoader& persistent_load, PickleArena& arena);

}  // namespace ecocpu
