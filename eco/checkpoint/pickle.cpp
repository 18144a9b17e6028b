#include "eco/checkpoint/pickle.hpp"

#include <bit>
#include <charconv>
#include <cstring>
#include <map>
#include <set>

namespace ecocpu {

const PyObject* PyObject::get(const std::string& key) const {
  if (type != PyType::Dict) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k->type == PyType::Str && k->text == key) return v;
  }
  return nullptr;
}

std::string PyObject::type_name() const {
  switch (type) {
    case PyType::None: return "None";
    case PyType::Bool: return "bool";
    case PyType::Int:
    case PyType::BigInt: return "int";
    case PyType::Float: return "float";
    case PyType::Str: return "str";
    case PyType::Bytes: return "bytes";
    case PyType::Tuple: return "tuple";
    case PyType::List: return "list";
    case PyType::Dict: return "dict";
    case PyType::Global: return text;
    case PyType::Storage: return "storage";
    case PyType::Tensor: return "tensor";
    case PyType::Opaque: return text;
  }
  return "?";
}

std::size_t PickleArena::budget_for(std::size_t source_bytes) {
  const std::size_t most = (SIZE_MAX - kPickleBudgetBase) / kPickleBudgetPerByte;
  return kPickleBudgetBase + std::min(source_bytes, most) * kPickleBudgetPerByte;
}

void PickleArena::charge(std::size_t bytes) {
  if (bytes > budget_ - used_) {
    throw PickleBudgetExceeded("unpacking the pickle needs more than " + std::to_string(budget_ >> 20) +
                               " MB of memory, the limit for a file of this size");
  }
  used_ += bytes;
}

namespace {

bool is_storage_type(const std::string& name) {
  static const std::set<std::string> names = {
      "torch.FloatStorage", "torch.HalfStorage",  "torch.DoubleStorage", "torch.BFloat16Storage",
      "torch.LongStorage",  "torch.IntStorage",   "torch.ShortStorage",  "torch.CharStorage",
      "torch.ByteStorage",  "torch.BoolStorage",  "torch.UntypedStorage"};
  return names.count(name) != 0;
}

bool is_allowed_global(const std::string& name) {
  static const std::set<std::string> names = {
      "collections.OrderedDict",
      "torch._utils._rebuild_tensor",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
      "torch.Size",
      "numpy.core.multiarray.scalar",
      "numpy._core.multiarray.scalar",
      "numpy.dtype",
      "_codecs.encode",
  };
  return names.count(name) != 0 || is_storage_type(name);
}

class Unpickler {
 public:
  Unpickler(ByteReader& in, const PersistentLoader& loader, PickleArena& arena)
      : in_(in), loader_(loader), arena_(arena) {}

  PyRef run() {
    try {
      return loop();
    } catch (const PickleBudgetExceeded& e) {
      fail(e.what());
    }
  }

 private:
  PyRef loop() {
    while (true) {
      const std::size_t at = in_.position();
      const uint8_t op = in_.u8("a pickle opcode");
      if (op == '.') {
        if (stack_.size() != 1 || !marks_.empty()) fail("malformed pickle: STOP with a stack of " + std::to_string(stack_.size()));
        return stack_.back();
      }
      step(op, at);
    }
  }

  [[noreturn]] void fail(const std::string& cause) const { in_.fail(cause); }
  // Container slots cost a pointer each (two for a dict entry); text costs its bytes.
  void charge_slots(std::size_t n) { arena_.charge(n * sizeof(PyRef)); }

  PyRef make(PyType type) { return arena_.make(type); }
  PyRef make_int(int64_t v) {
    PyRef o = make(PyType::Int);
    o->integer = v;
    return o;
  }
  PyRef make_text(PyType type, std::string s) {
    arena_.charge(s.size());
    PyRef o = make(type);
    o->text = std::move(s);
    return o;
  }

  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      fail("malformed pickle: stack underflow");
    }
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef& top() {
    if (stack_.empty()) fail("malformed pickle: stack underflow");
    return stack_.back();
  }
  void push(PyRef v) {
    if (stack_.size() > kMaxStack) fail("malformed pickle: stack too deep");
    stack_.push_back(std::move(v));
  }
  void mark() {
    if (marks_.size() > kMaxStack) fail("malformed pickle: too many MARKs");
    marks_.push_back(stack_.size());
  }
  std::vector<PyRef> pop_to_mark() {
    if (marks_.empty()) fail("malformed pickle: no MARK");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }

  std::string read_line(const char* what) {
    std::string s;
    while (true) {
      char c = static_cast<char>(in_.u8(what));
      if (c == '\n') return s;
      s += c;
      if (s.size() > 4096) fail(std::string("malformed pickle: overlong ") + what);
    }
  }
  std::string read_bytes(uint64_t n, const char* what) {
    if (n > in_.remaining()) fail(std::string("truncated while reading ") + what);
    const uint8_t* p = in_.take(static_cast<std::size_t>(n), what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }

  void memo_put(uint64_t index) {
    if (index > kMaxMemo) fail("malformed pickle: memo index too large");
    if (!memo_.count(index)) arena_.charge(kMemoEntryBytes);
    memo_[index] = top();
  }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("malformed pickle: memo entry " + std::to_string(index) + " unset");
    push(it->second);
  }

  PyRef little_endian_int(const std::string& bytes) {
    if (bytes.empty()) return make_int(0);
    if (bytes.size() > 8) return make_text(PyType::BigInt, bytes);
    uint64_t v = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
    if (bytes.size() < 8 && (static_cast<uint8_t>(bytes.back()) & 0x80)) v |= ~uint64_t{0} << (8 * bytes.size());
    return make_int(static_cast<int64_t>(v));
  }

  PyRef global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    if (!is_allowed_global(full)) {
      fail("refused: the pickle names '" + full +
           "', which a checkpoint does not need (only tensors, storages and plain containers are loaded)");
    }
    return make_text(PyType::Global, full);
  }

  void append_to(PyObject& list, std::vector<PyRef> values) {
    if (list.type != PyType::List) fail("malformed pickle: APPEND to a " + list.type_name());
    charge_slots(values.size());
    for (auto& v : values) list.items.push_back(std::move(v));
  }
  void set_items(PyObject& dict, const std::vector<PyRef>& kv) {
    if (dict.type != PyType::Dict) fail("malformed pickle: SETITEM on a " + dict.type_name());
    if (kv.size() % 2) fail("malformed pickle: odd SETITEMS");
    charge_slots(kv.size());
    for (std::size_t i = 0; i < kv.size(); i += 2) dict.entries.emplace_back(kv[i], kv[i + 1]);
  }

  PyRef tuple(std::vector<PyRef> items) {
    charge_slots(items.size());
    PyRef t = make(PyType::Tuple);
    t->items = std::move(items);
    return t;
  }

  static int64_t as_int(const PyObject& o, const char* what, const Unpickler& self) {
    if (o.type != PyType::Int) self.fail(std::string("malformed checkpoint: ") + what + " is a " + o.type_name());
    return o.integer;
  }
  std::vector<int64_t> int_tuple(const PyObject& o, const char* what) const {
    if (o.type != PyType::Tuple && o.type != PyType::List) fail(std::string("malformed checkpoint: ") + what + " is a " + o.type_name());
    std::vector<int64_t> v;
    for (const auto& item : o.items) v.push_back(as_int(*item, what, *this));
    return v;
  }

  PyRef rebuild_tensor(const std::vector<PyRef>& args) {
    if (args.size() < 4) fail("malformed checkpoint: tensor rebuild with " + std::to_string(args.size()) + " arguments");
    if (args[0]->type != PyType::Storage) fail("malformed checkpoint: tensor rebuilt from a " + args[0]->type_name());
    auto t = std::make_shared<TensorRef>();
    t->storage = args[0]->storage;
    t->offset = as_int(*args[1], "a storage offset", *this);
    // Two int64s a dimension, charged: a tensor rebuilt again and again from one long memoized
    // size list would otherwise cost nothing in the pickle and gigabytes here.
    arena_.charge(sizeof(TensorRef) + 2 * sizeof(int64_t) * args[2]->items.size());
    t->shape = int_tuple(*args[2], "a tensor size");
    t->stride = int_tuple(*args[3], "a tensor stride");
    if (t->shape.size() != t->stride.size()) fail("malformed checkpoint: size and stride differ in length");
    for (std::size_t i = 0; i < t->shape.size(); ++i) {
      if (t->shape[i] < 0 || t->stride[i] < 0) fail("malformed checkpoint: a tensor has a negative size or stride");
    }
    PyRef o = make(PyType::Tensor);
    o->tensor = std::move(t);
    return o;
  }

  PyRef numpy_scalar(const std::vector<PyRef>& args) {
    if (args.size() != 2 || args[0]->type != PyType::Opaque || args[1]->type != PyType::Bytes) {
      return make_text(PyType::Opaque, "numpy scalar");
    }
    const std::string& kind = args[0]->text;  // "numpy.dtype:f8"
    const std::string& b = args[1]->text;
    if (kind == "numpy.dtype:f8" && b.size() == 8) {
      auto o = make(PyType::Float);
      std::memcpy(&o->real, b.data(), 8);
      return o;
    }
    if (kind == "numpy.dtype:f4" && b.size() == 4) {
      auto o = make(PyType::Float);
      float f = 0;
      std::memcpy(&f, b.data(), 4);
      o->real = f;
      return o;
    }
    if ((kind == "numpy.dtype:i8" || kind == "numpy.dtype:i4") && (b.size() == 8 || b.size() == 4)) {
      return little_endian_int(b);
    }
    return make_text(PyType::Opaque, "numpy scalar of " + kind);
  }

  // Latin-1 text back to bytes, as Python 3 pickles bytes at protocol 2.
  PyRef codecs_encode(const std::vector<PyRef>& args) {
    if (args.size() != 2 || args[0]->type != PyType::Str || args[1]->type != PyType::Str ||
        args[1]->text != "latin1") {
      fail("malformed pickle: unexpected _codecs.encode call");
    }
    std::string out;
    const std::string& s = args[0]->text;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<uint8_t>(s[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
        out += static_cast<char>(((c & 0x1F) << 6) | (static_cast<uint8_t>(s[++i]) & 0x3F));
      } else {
        fail("malformed pickle: non-latin1 text in _codecs.encode");
      }
    }
    return make_text(PyType::Bytes, out);
  }

  PyRef call(const PyObject& callable, const PyObject& args_obj) {
    if (callable.type != PyType::Global) fail("refused: the pickle calls a " + callable.type_name());
    if (args_obj.type != PyType::Tuple) fail("malformed pickle: call arguments are a " + args_obj.type_name());
    const std::string& f = callable.text;
    const auto& args = args_obj.items;
    if (f == "collections.OrderedDict") {
      auto d = make(PyType::Dict);
      if (!args.empty()) {
        if (args[0]->type != PyType::List) fail("malformed pickle: OrderedDict from a " + args[0]->type_name());
        charge_slots(2 * args[0]->items.size());
        for (const auto& pair : args[0]->items) {
          if (pair->type != PyType::Tuple && pair->type != PyType::List) fail("malformed pickle: OrderedDict item");
          if (pair->items.size() != 2) fail("malformed pickle: OrderedDict item");
          d->entries.emplace_back(pair->items[0], pair->items[1]);
        }
      }
      return d;
    }
    if (f == "torch._utils._rebuild_tensor" || f == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || args[0]->type != PyType::Tensor) fail("malformed checkpoint: parameter without a tensor");
      return args[0];
    }
    if (f == "torch.Size") return args.empty() ? tuple({}) : args[0];
    if (f == "numpy.dtype") {
      if (args.empty() || args[0]->type != PyType::Str) fail("malformed pickle: numpy.dtype arguments");
      return make_text(PyType::Opaque, "numpy.dtype:" + args[0]->text);
    }
    if (f == "numpy.core.multiarray.scalar" || f == "numpy._core.multiarray.scalar") return numpy_scalar(args);
    if (f == "_codecs.encode") return codecs_encode(args);
    fail("refused: the pickle calls '" + f + "'");
  }

  void step(uint8_t op, std::size_t at) {
    switch (op) {
      case 0x80: in_.u8("the protocol"); break;                  // PROTO
      case 0x95: in_.u64("a frame length"); break;              // FRAME
      case '(': mark(); break;                                  // MARK
      case ')': push(make(PyType::Tuple)); break;               // EMPTY_TUPLE
      case ']': push(make(PyType::List)); break;                // EMPTY_LIST
      case '}': push(make(PyType::Dict)); break;                // EMPTY_DICT
      case 'N': push(make(PyType::None)); break;
      case 0x88:
      case 0x89: {                                              // NEWTRUE, NEWFALSE
        auto b = make(PyType::Bool);
        b->boolean = op == 0x88;
        push(b);
        break;
      }
      case 'J': push(make_int(static_cast<int32_t>(in_.u32("an int")))); break;
      case 'K': push(make_int(in_.u8("an int"))); break;
      case 'M': push(make_int(in_.u16("an int"))); break;
      case 0x8a: push(little_endian_int(read_bytes(in_.u8("a long"), "a long"))); break;
      case 0x8b: push(little_endian_int(read_bytes(in_.u32("a long"), "a long"))); break;
      case 'I':
      case 'L': push(text_int(read_line("an int"))); break;
      case 'G': {                                               // BINFLOAT, big-endian
        auto f = make(PyType::Float);
        uint64_t bits = 0;
        const uint8_t* p = in_.take(8, "a float");
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        f->real = std::bit_cast<double>(bits);
        push(f);
        break;
      }
      case 'F': {
        auto f = make(PyType::Float);
        std::string line = read_line("a float");
        auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), f->real);
        if (ec != std::errc()) fail("malformed pickle: bad float '" + line + "'");
        push(f);
        break;
      }
      case 'X': push(make_text(PyType::Str, read_bytes(in_.u32("a string"), "a string"))); break;
      case 0x8c: push(make_text(PyType::Str, read_bytes(in_.u8("a string"), "a string"))); break;
      case 0x8d: push(make_text(PyType::Str, read_bytes(in_.u64("a string"), "a string"))); break;
      case 'T': push(make_text(PyType::Str, read_bytes(in_.u32("a string"), "a string"))); break;
      case 'U': push(make_text(PyType::Str, read_bytes(in_.u8("a string"), "a string"))); break;
      case 'B': push(make_text(PyType::Bytes, read_bytes(in_.u32("bytes"), "bytes"))); break;
      case 'C': push(make_text(PyType::Bytes, read_bytes(in_.u8("bytes"), "bytes"))); break;
      case 0x8e: push(make_text(PyType::Bytes, read_bytes(in_.u64("bytes"), "bytes"))); break;
      case 't': push(tuple(pop_to_mark())); break;              // TUPLE
      case 0x85: { auto a = pop(); push(tuple({a})); break; }
      case 0x86: { auto b = pop(), a = pop(); push(tuple({a, b})); break; }
      case 0x87: { auto c = pop(), b = pop(), a = pop(); push(tuple({a, b, c})); break; }
      case 'l': {                                               // LIST
        auto l = make(PyType::List);
        l->items = pop_to_mark();
        charge_slots(l->items.size());
        push(l);
        break;
      }
      case 'a': { auto v = pop(); append_to(*top(), {v}); break; }
      case 'e': { auto items = pop_to_mark(); append_to(*top(), std::move(items)); break; }
      case 'd': { auto d = make(PyType::Dict); set_items(*d, pop_to_mark()); push(d); break; }
      case 's': { auto v = pop(), k = pop(); set_items(*top(), {k, v}); break; }
      case 'u': { auto kv = pop_to_mark(); set_items(*top(), kv); break; }
      case 0x8f: push(make(PyType::List)); break;               // EMPTY_SET, kept as a list
      case 0x90: { auto items = pop_to_mark(); append_to(*top(), std::move(items)); break; }  // ADDITEMS
      case 'q': memo_put(in_.u8("a memo index")); break;
      case 'r': memo_put(in_.u32("a memo index")); break;
      case 'p': memo_put(text_index(read_line("a memo index"))); break;
      case 0x94: memo_put(memo_.size()); break;                 // MEMOIZE
      case 'h': memo_get(in_.u8("a memo index")); break;
      case 'j': memo_get(in_.u32("a memo index")); break;
      case 'g': memo_get(text_index(read_line("a memo index"))); break;
      case 'c': {                                               // GLOBAL
        std::string module = read_line("a module name");
        push(global(module, read_line("a global name")));
        break;
      }
      case 0x93: {                                              // STACK_GLOBAL
        auto name = pop(), module = pop();
        if (module->type != PyType::Str || name->type != PyType::Str) fail("malformed pickle: STACK_GLOBAL");
        push(global(module->text, name->text));
        break;
      }
      case 'R': { auto args = pop(), f = pop(); push(call(*f, *args)); break; }  // REDUCE
      case 0x81: { auto args = pop(), cls = pop(); push(call(*cls, *args)); break; }  // NEWOBJ
      case 'b': pop(); break;  // BUILD: the state of an allowed object (e.g. _metadata) is not needed
      case 'Q': {                                               // BINPERSID
        auto pid = pop();
        push(loader_(*pid, arena_));
        break;
      }
      case '0': pop(); break;                                   // POP
      case '1': pop_to_mark(); break;                           // POP_MARK
      case '2': push(top()); break;                             // DUP
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("unsupported pickle opcode ") + hex + " at byte " + std::to_string(at));
      }
    }
  }

  PyRef text_int(const std::string& line) {
    std::string digits = line;
    if (!digits.empty() && digits.back() == 'L') digits.pop_back();
    if (digits == "00" || digits == "01") {
      auto b = make(PyType::Bool);
      b->boolean = digits == "01";
      return b;
    }
    int64_t v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || end != digits.data() + digits.size()) fail("malformed pickle: bad int '" + line + "'");
    return make_int(v);
  }
  uint64_t text_index(const std::string& line) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
    if (ec != std::errc() || end != line.data() + line.size()) fail("malformed pickle: bad memo index");
    return v;
  }

  static constexpr std::size_t kMaxStack = 1 << 20;
  static constexpr uint64_t kMaxMemo = 1 << 24;
  static constexpr std::size_t kMemoEntryBytes = 64;  // a std::map node
  ByteReader& in_;
  const PersistentLoader& loader_;
  PickleArena& arena_;
  std::vector<PyRef> stack_;
  std::vector<std::size_t> marks_;
  std::map<uint64_t, PyRef> memo_;
};

}  // namespace

PyRef read_pickle(ByteReader& in, const PersistentLoader& persistent_load, PickleArena& arena) {
  return Unpickler(in, persistent_load, arena).run();
}

}  // namespace ecocpu
