#include "eco/checkpoint/torch_file.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "eco/checkpoint/zip_archive.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

StorageDtype storage_dtype(const std::string& type_name) {
  static const std::map<std::string, StorageDtype> table = {
      {"FloatStorage", {"float32", 4}},  {"HalfStorage", {"float16", 2}},
      {"DoubleStorage", {"float64", 8}}, {"BFloat16Storage", {"bfloat16", 2}},
      {"LongStorage", {"int64", 8}},     {"IntStorage", {"int32", 4}},
      {"ShortStorage", {"int16", 2}},    {"CharStorage", {"int8", 1}},
      {"ByteStorage", {"uint8", 1}},     {"BoolStorage", {"bool", 1}},
      {"UntypedStorage", {"uint8", 1}},
  };
  auto it = table.find(type_name);
  return it == table.end() ? StorageDtype{} : it->second;
}

std::string tensor_dtype(const TensorRef& tensor) {
  return storage_dtype(tensor.storage->type_name).name;
}

namespace {

// The legacy format's first pickle: 0x1950a86a20f9469cfc6c, little-endian.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr int64_t kLegacyProtocol = 1001;

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: renormalise
    exponent = 113;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Converts `count` elements at `src` (any alignment), `step` elements apart, to float32: one
// dtype switch per call, so a gather pays it once a row, not once an element.
void convert_to_float(const uint8_t* src, const std::string& dtype, int64_t count, int64_t step, float* dst) {
  const auto each = [&](int size, auto convert) {
    for (int64_t i = 0; i < count; ++i) dst[i] = convert(src + i * step * size);
  };
  if (dtype == "float32" && step == 1) {
    std::memcpy(dst, src, static_cast<std::size_t>(count) * 4);
  } else if (dtype == "float32") {
    each(4, [](const uint8_t* p) { float f; std::memcpy(&f, p, 4); return f; });
  } else if (dtype == "float64") {
    each(8, [](const uint8_t* p) { double d; std::memcpy(&d, p, 8); return static_cast<float>(d); });
  } else if (dtype == "float16") {
    each(2, [](const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return half_to_float(h); });
  } else {  // bfloat16: the high half of a float32
    each(2, [](const uint8_t* p) {
      uint16_t h;
      std::memcpy(&h, p, 2);
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      return std::bit_cast<float>(bits);
    });
  }
}

// Weights are numbers a network can use: the first NaN or infinity is an error naming its place.
template <typename Fail>
void check_finite(const Tensor& t, const Fail& fail) {
  if (const int64_t i = first_non_finite(t.data(), t.numel()); i >= 0) {
    fail(std::string("holds ") + (std::isnan(t.data()[i]) ? "NaN" : "an infinity") + " at element " + std::to_string(i));
  }
}

// ('storage', torch.<T>Storage, key, location, numel[, view_metadata]).
StorageRef parse_storage_pid(const PyObject& pid, ByteReader& r) {
  if (pid.type != PyType::Tuple || pid.items.size() < 5 || pid.items[0]->type != PyType::Str ||
      pid.items[0]->text != "storage") {
    r.fail("malformed checkpoint: unexpected persistent id");
  }
  const PyObject& type = *pid.items[1];
  const PyObject& key = *pid.items[2];
  const PyObject& location = *pid.items[3];
  const PyObject& numel = *pid.items[4];
  if (type.type != PyType::Global || !type.text.starts_with("torch.") ||
      key.type != PyType::Str || location.type != PyType::Str || numel.type != PyType::Int ||
      numel.integer < 0) {
    r.fail("malformed checkpoint: bad storage reference");
  }
  StorageRef s;
  s.type_name = type.text.substr(6);
  if (storage_dtype(s.type_name).element_size == 0) r.fail("unknown storage type " + type.text);
  s.key = key.text;
  s.location = location.text;
  s.numel = numel.integer;
  return s;
}

}  // namespace

std::optional<int64_t> tensor_numel(const TensorRef& tensor) { return product_checked(tensor.shape); }

TorchFile TorchFile::open(const std::string& path) { return read(MappedFile::open(path)); }

TorchFile TorchFile::read(std::shared_ptr<const MappedFile> file) {
  TorchFile f;
  f.file_ = std::move(file);
  const std::string& path = f.file_->path();
  if (ZipArchive::looks_like_zip(*f.file_)) {
    f.zip_ = true;
    f.read_zip();
  } else {
    f.read_legacy();
  }
  if (f.root_ == nullptr) throw FileError(path + ": the checkpoint holds nothing");
  return f;
}

void TorchFile::read_zip() {
  ZipArchive zip(*file_);
  const ZipEntry* pkl = nullptr;
  for (const auto& e : zip.entries()) {
    if (e.name.ends_with("data.pkl") && (e.name == "data.pkl" || e.name.ends_with("/data.pkl"))) {
      pkl = &e;
      break;
    }
  }
  if (!pkl) throw FileError(path() + ": zip archive without data.pkl: not a PyTorch checkpoint");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - 8);  // "archive/"
  if (const ZipEntry* order = zip.find(prefix + "byteorder")) {
    std::string text(reinterpret_cast<const char*>(zip.data(*order)), order->size);
    if (text != "little") throw FileError(path() + ": big-endian checkpoints are not supported");
  }

  ByteReader r(zip.data(*pkl), pkl->size, path());
  arena_ = std::make_shared<PickleArena>(PickleArena::budget_for(pkl->size));
  PersistentLoader loader = [&](const PyObject& pid, PickleArena& arena) {
    StorageRef s = parse_storage_pid(pid, r);
    const ZipEntry* entry = zip.find(prefix + "data/" + s.key);
    if (!entry) r.fail("storage '" + s.key + "' is missing from the archive");
    const int elsize = storage_dtype(s.type_name).element_size;
    if (entry->size / static_cast<uint64_t>(elsize) < static_cast<uint64_t>(s.numel)) {
      r.fail("storage '" + s.key + "' holds fewer bytes than its " + std::to_string(s.numel) + " elements");
    }
    storages_[s.key] = {zip.data(*entry), s.numel};
    PyRef o = arena.make(PyType::Storage);
    o->storage = std::make_shared<StorageRef>(std::move(s));
    return o;
  };
  root_ = read_pickle(r, loader, *arena_);
}

void TorchFile::read_legacy() {
  ByteReader r(file_->data(), file_->size(), path());
  arena_ = std::make_shared<PickleArena>(PickleArena::budget_for(file_->size()));
  if (file_->size() < 2 || file_->data()[0] != 0x80) {
    r.fail("not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save file)");
  }
  PersistentLoader no_ids = [&](const PyObject&, PickleArena&) -> PyRef {
    r.fail("malformed checkpoint: persistent id outside the object pickle");
  };
  PyRef magic = read_pickle(r, no_ids, *arena_);
  if (magic->type != PyType::BigInt || magic->text != kLegacyMagic) {
    r.fail("not a PyTorch checkpoint (bad magic number)");
  }
  PyRef protocol = read_pickle(r, no_ids, *arena_);
  if (protocol->type != PyType::Int || protocol->integer != kLegacyProtocol) {
    r.fail("unsupported legacy checkpoint protocol");
  }
  PyRef sys_info = read_pickle(r, no_ids, *arena_);
  if (const PyObject* little = sys_info->get("little_endian"); little && !little->boolean) {
    r.fail("big-endian checkpoints are not supported");
  }

  std::map<std::string, StorageRef> roots;  // by key
  struct View {
    std::shared_ptr<StorageRef> ref;  // what the tensors hold; its numel is the view's size
    std::string root;                 // the storage whose data it shows
    int64_t offset = 0;               // in elements of the root
  };
  std::vector<View> views;
  PersistentLoader loader = [&](const PyObject& pid, PickleArena& arena) {
    StorageRef s = parse_storage_pid(pid, r);
    auto ref = std::make_shared<StorageRef>(s);
    if (pid.items.size() > 5 && pid.items[5]->type == PyType::Tuple) {
      // A view of root storage `key`: (view_key, element offset, view size).
      const auto& view = pid.items[5]->items;
      if (view.size() != 3 || view[0]->type != PyType::Str || view[1]->type != PyType::Int ||
          view[2]->type != PyType::Int) {
        r.fail("malformed checkpoint: bad storage view");
      }
      ref->key = view[0]->text;
      ref->numel = view[2]->integer;
      views.push_back({ref, s.key, view[1]->integer});
      s.numel = -1;  // the root's size comes with its data
    }
    auto [it, fresh] = roots.emplace(s.key, s);
    if (!fresh && it->second.type_name != s.type_name) r.fail("storage '" + s.key + "' has two types");
    PyRef o = arena.make(PyType::Storage);
    o->storage = ref;
    return o;
  };
  root_ = read_pickle(r, loader, *arena_);

  PyRef keys = read_pickle(r, no_ids, *arena_);
  if (keys->type != PyType::List) r.fail("malformed checkpoint: the storage key list is a " + keys->type_name());
  for (PyRef key : keys->items) {
    if (key->type != PyType::Str) r.fail("malformed checkpoint: a storage key is a " + key->type_name());
    auto it = roots.find(key->text);
    if (it == roots.end()) r.fail("storage '" + key->text + "' has data but no tensor uses it");
    const uint64_t numel = r.u64("a storage size");
    const auto elsize = static_cast<uint64_t>(storage_dtype(it->second.type_name).element_size);
    if (numel > r.remaining() / elsize) r.fail("truncated: storage '" + key->text + "' runs past the end of the file");
    storages_[key->text] = {r.take(static_cast<std::size_t>(numel * elsize), "storage data"),
                            static_cast<int64_t>(numel)};
  }
  // Views point into their root storage: rewrite them as (root data + offset).
  for (auto& [ref, root, offset] : views) {
    auto it = storages_.find(root);
    if (it == storages_.end()) r.fail("storage '" + root + "' has no data");
    const auto elsize = storage_dtype(ref->type_name).element_size;
    const auto end = add_checked(offset, ref->numel);
    if (offset < 0 || ref->numel < 0 || !end || *end > it->second.numel) {
      r.fail("storage view '" + ref->key + "' lies outside storage '" + root + "'");
    }
    ref->key = root + "@" + std::to_string(offset) + ":" + std::to_string(ref->numel);
    storages_[ref->key] = {it->second.data + offset * elsize, ref->numel};
  }
}

const TorchFile::StorageBytes& TorchFile::bytes_of(const StorageRef& storage,
                                                   const std::string& name) const {
  auto it = storages_.find(storage.key);
  if (it == storages_.end()) {
    throw FileError(path() + ": tensor '" + name + "' uses storage '" + storage.key + "', which has no data");
  }
  return it->second;
}

Tensor TorchFile::to_float32(const TensorRef& t, const std::string& name) const {
  const std::string dtype = tensor_dtype(t);
  if (dtype != "float32" && dtype != "float16" && dtype != "float64" && dtype != "bfloat16") {
    throw FileError(path() + ": tensor '" + name + "' is " + dtype + ", not floating point");
  }
  if (t.shape.size() > static_cast<std::size_t>(Shape::kMaxRank)) {
    throw FileError(path() + ": tensor '" + name + "' has more than 5 dimensions");
  }
  const StorageBytes& bytes = bytes_of(*t.storage, name);
  const auto fail = [&](const std::string& cause) {
    throw FileError(path() + ": tensor '" + name + "' " + cause);
  };
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] < 0 || t.stride[i] < 0) fail("has a negative size or stride");
  }
  const std::optional<int64_t> numel = tensor_numel(t);
  if (!numel) fail("has more elements than a 64-bit count holds");
  // The highest element index the window reads, checked: a stride chosen to wrap around would
  // otherwise land inside the storage.
  std::optional<int64_t> last = t.offset;
  bool contiguous = true;
  int64_t expected_stride = 1;  // at most numel, so it cannot overflow
  for (std::size_t i = t.shape.size(); i-- > 0 && *numel > 0;) {
    if (t.shape[i] > 1 && t.stride[i] != expected_stride) contiguous = false;
    expected_stride *= t.shape[i];
    const auto reach = mul_checked(t.shape[i] - 1, t.stride[i]);
    last = last && reach ? add_checked(*last, *reach) : std::nullopt;
  }
  if (t.offset < 0 || t.offset > bytes.numel || (*numel > 0 && (!last || *last >= bytes.numel))) {
    fail("reaches outside its storage");
  }
  // A stride of 0 (an expanded tensor) lets a few stored elements stand for any number: such a
  // tensor could ask for any amount of memory and work. A state_dict's tensors never are.
  if (*numel > bytes.numel) {
    fail("has " + std::to_string(*numel) + " elements but its storage " + std::to_string(bytes.numel) +
         " (an expanded tensor: save it with .contiguous())");
  }
  const Shape shape(t.shape.begin(), t.shape.end());
  const int elsize = storage_dtype(t.storage->type_name).element_size;
  const uint8_t* base = bytes.data + t.offset * elsize;
  if (dtype == "float32" && contiguous && reinterpret_cast<std::uintptr_t>(base) % alignof(float) == 0) {
    const auto bytes_viewed = static_cast<std::size_t>(*numel) * sizeof(float);
    Tensor view = Tensor::borrowed(MappedFile::range_owner(file_, base, bytes_viewed), reinterpret_cast<const float*>(base), shape);
    check_finite(view, fail);
    return view;
  }
  Tensor out(shape);
  if (contiguous) {
    convert_to_float(base, dtype, *numel, 1, out.data());
    check_finite(out, fail);
    return out;
  }
  // Row by row along the last axis; the other axes advance like an odometer.
  const std::size_t rank = t.shape.size();
  const int64_t row = t.shape[rank - 1];
  std::vector<int64_t> index(rank - 1, 0);
  for (int64_t n = 0; n < *numel; n += row) {
    int64_t element = 0;
    for (std::size_t i = 0; i + 1 < rank; ++i) element += index[i] * t.stride[i];
    convert_to_float(base + element * elsize, dtype, row, t.stride[rank - 1], out.data() + n);
    for (std::size_t i = index.size(); i-- > 0;) {
      if (++index[i] < t.shape[i]) break;
      index[i] = 0;
    }
  }
  check_finite(out, fail);
  return out;
}

}  // namespace ecocpu
