#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <limits>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/checkpoint/pickle.hpp"
#include "eco/checkpoint/torch_file.hpp"
#include "eco/io/npy.hpp"
#include "oracles.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using test::contains;
using namespace std::string_literals;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

PyRef unpickle(const std::string& data, PickleArena& arena) {
  ByteReader r(reinterpret_cast<const uint8_t*>(data.data()), data.size(), "test.pkl");
  PersistentLoader none = [&](const PyObject&, PickleArena&) -> PyRef { r.fail("no persistent ids"); };
  return read_pickle(r, none, arena);
}

std::string unpickle_error(const std::string& data) {
  PickleArena arena(kPickleBudgetBase);
  return test::error_of<FileError>([&] { unpickle(data, arena); });
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string le32(uint32_t v) { return bytes({int(v & 255), int(v >> 8 & 255), int(v >> 16 & 255), int(v >> 24)}); }
std::string le16(uint16_t v) { return bytes({v & 255, v >> 8}); }

// A zip archive of stored entries, as torch.save writes them (without data alignment padding).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, directory;
  for (const auto& [name, data] : entries) {
    const auto offset = static_cast<uint32_t>(out.size());
    const auto size = static_cast<uint32_t>(data.size());
    const std::string fixed = le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(size) + le32(size);
    out += le32(0x04034b50) + le16(20) + fixed + le16(static_cast<uint16_t>(name.size())) + le16(0) + name + data;
    directory += le32(0x02014b50) + le16(20) + le16(20) + fixed + le16(static_cast<uint16_t>(name.size())) +
                 le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + name;
  }
  const auto dir_offset = static_cast<uint32_t>(out.size());
  const auto n = static_cast<uint16_t>(entries.size());
  return out + directory + le32(0x06054b50) + le16(0) + le16(0) + le16(n) + le16(n) +
         le32(static_cast<uint32_t>(directory.size())) + le32(dir_offset) + le16(0);
}

// data.pkl for {'w': tensor of storage '0', offset 1, size (2, 2), stride (2, 1)}, protocol 2.
std::string tensor_pickle(const std::string& storage_type) {
  return "\x80\x02}q\x00X\x01\x00\x00\x00wq\x01" "ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03"
         "ctorch\n"s + storage_type + "\nq\x04X\x01\x00\x00\x00" "0q\x05X\x03\x00\x00\x00" "cpuq\x06K\x05tq\x07QK\x01K\x02K\x02\x86q\x08"
         "K\x02K\x01\x86q\x09\x89" "ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cRq\x0ds."s;
}

std::string str_op(const std::string& s) { return "X" + le32(static_cast<uint32_t>(s.size())) + s; }
// LONG1 of eight bytes: any int64.
std::string long_op(int64_t v) {
  std::string s = "\x8a\x08"s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
  return s;
}

// {'w': _rebuild_tensor_v2(persistent id (pid_items), offset, size, stride, False, OrderedDict())},
// each argument given as the pickle opcodes that push it.
std::string one_tensor_pickle(const std::string& pid_items, const std::string& offset, const std::string& size,
                              const std::string& stride) {
  return "\x80\x02}"s + str_op("w") + "ctorch._utils\n_rebuild_tensor_v2\n(" + "(" + pid_items + "tQ" + offset +
         size + stride + "\x89" + "ccollections\nOrderedDict\n)RtRs.";
}

std::string storage_pid(const std::string& view_ops = "") {
  return str_op("storage") + "ctorch\nFloatStorage\n" + str_op("0") + str_op("cpu") + "K\x04" + view_ops;
}

// A legacy (pre-1.6) torch.save file around `object_pickle`, with storage '0' of four floats.
std::string legacy_file(const std::string& object_pickle) {
  const std::string magic = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."s;
  const std::string protocol = "\x80\x02M\xe9\x03."s;
  const std::string sys_info = "\x80\x02}"s + str_op("little_endian") + "\x88s.";
  const std::string keys = "\x80\x02]"s + str_op("0") + "a.";
  return magic + protocol + sys_info + object_pickle + keys + le32(4) + le32(0) + std::string(16, '\0');
}

}  // namespace

TEST_CASE("pickle: containers, numbers, strings and memo references") {
  PickleArena arena(kPickleBudgetBase);
  // {'a': 1, 'b': 3.5, 'c': [-2, 'x', b'\x01'], 'd': (None, True)} with a memo reference to 'x'.
  std::string p = "\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "bG@\x0c\x00\x00\x00\x00\x00\x00"
                  "X\x01\x00\x00\x00" "c]q\x01(J\xfe\xff\xff\xffX\x01\x00\x00\x00xq\x02" "C\x01\x01" "e"
                  "X\x01\x00\x00\x00" "dN\x88\x86h\x02\x85\x86u."s;
  PyRef root = unpickle(p, arena);
  REQUIRE(root->type == PyType::Dict);
  CHECK(root->get("a")->integer == 1);
  CHECK(root->get("b")->real == 3.5);
  const PyObject* c = root->get("c");
  REQUIRE(c->items.size() == 3);
  CHECK(c->items[0]->integer == -2);
  CHECK(c->items[1]->text == "x");
  CHECK(c->items[2]->type == PyType::Bytes);
  const PyObject* d = root->get("d");
  REQUIRE(d->type == PyType::Tuple);
  CHECK(d->items[0]->items[0]->type == PyType::None);
  CHECK(d->items[0]->items[1]->boolean);
  CHECK(d->items[1]->items[0] == c->items[1]);  // the memo hands back the same object
  // LONG1 beyond 64 bits stays as bytes (the legacy magic number).
  PyRef big = unpickle(bytes({0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'}), arena);
  CHECK(big->type == PyType::BigInt);
  PyRef negative = unpickle(bytes({0x80, 2, 0x8a, 1, 0xff, '.'}), arena);
  CHECK(negative->integer == -1);
}

TEST_CASE("pickle: a list that contains itself neither leaks nor recurses") {
  PickleArena arena(kPickleBudgetBase);
  PyRef root = unpickle("\x80\x02]q\x00h\x00" "a."s, arena);
  REQUIRE(root->items.size() == 1);
  CHECK(root->items[0] == root);
}

TEST_CASE("pickle: globals outside the allow-list are refused when named") {
  for (const char* global : {"cos\nsystem\n", "cposix\nsystem\n", "c__builtin__\neval\n",
                             "cbuiltins\nexec\n", "ctorch.nn.modules.conv\nConv2d\n",
                             "csubprocess\nPopen\n"}) {
    CAPTURE(global);
    std::string p = std::string("\x80\x02") + global + "X\x02\x00\x00\x00ls\x85R."s;
    std::string msg = unpickle_error(p);
    CHECK(contains(msg, "test.pkl: refused: the pickle names '"));
  }
  // STACK_GLOBAL (protocol 4) is checked the same way.
  std::string p4 = "\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93."s;
  CHECK(contains(unpickle_error(p4), "refused: the pickle names 'os.system'"));
  // An allowed global may only be called with the arguments it expects.
  CHECK(contains(unpickle_error("\x80\x02" "c_codecs\nencode\nX\x01\x00\x00\x00" "aX\x04\x00\x00\x00utf8\x86R."s),
                 "unexpected _codecs.encode"));
}

TEST_CASE("pickle: malformed input is an error, never a crash") {
  const std::string cases[] = {
      "\x80\x02" "a."s,                              // APPEND with an empty stack
      "\x80\x02\xff."s,                           // unknown opcode
      "\x80\x02X\x10\x00\x00\x00" "ab"s,             // string longer than the data
      "\x80\x02h\x05."s,                          // memo entry never set
      "\x80\x02K\x01K\x02."s,                     // two values left at STOP
      "\x80\x02(K\x01"s,                          // no STOP
      "\x80\x02K\x01s."s,                         // SETITEM on an int
      "\x80\x02u."s,                              // SETITEMS without MARK
      "",
  };
  for (const auto& p : cases) {
    CAPTURE(p);
    std::string msg = unpickle_error(p);
    CHECK(msg.starts_with("test.pkl: "));
  }
}

TEST_CASE("torch file: a zip checkpoint with a strided float16 tensor and a float32 view") {
  const std::string dir = "ecocpu_test_zip";
  std::filesystem::create_directories(dir);
  // Storage '0' holds 5 elements; the tensor starts at element 1: [[1, 2], [3, 4]].
  auto halves = bytes({0x00, 0x00, 0x00, 0x3c, 0x00, 0x40, 0x00, 0x42, 0x00, 0x44});  // 0 1 2 3 4
  write_file(dir + "/half.pth", make_zip({{"archive/data.pkl", tensor_pickle("HalfStorage")},
                                          {"archive/data/0", halves}}));
  TorchFile f = TorchFile::open(dir + "/half.pth");
  CHECK(std::string(f.format()) == "zip");
  const PyObject* w = f.root().get("w");
  REQUIRE(w != nullptr);
  REQUIRE(w->type == PyType::Tensor);
  CHECK(tensor_dtype(*w->tensor) == "float16");
  Tensor t = f.to_float32(*w->tensor, "w");
  CHECK(t.shape() == Shape{2, 2});
  CHECK(t.data()[0] == 1.0f);
  CHECK(t.data()[3] == 4.0f);

  std::string floats(20, '\0');
  for (int i = 0; i < 5; ++i) {
    float v = static_cast<float>(i) * 0.5f;
    std::memcpy(floats.data() + 4 * i, &v, 4);
  }
  write_file(dir + "/float.pth", make_zip({{"archive/data.pkl", tensor_pickle("FloatStorage")},
                                           {"archive/data/0", floats}}));
  TorchFile g = TorchFile::open(dir + "/float.pth");
  Tensor u = g.to_float32(*g.root().get("w")->tensor, "w");
  CHECK(u.data()[0] == 0.5f);
  CHECK(u.data()[3] == 2.0f);

  // A storage too small for the window, a missing storage, an integer tensor.
  write_file(dir + "/short.pth", make_zip({{"archive/data.pkl", tensor_pickle("FloatStorage")},
                                           {"archive/data/0", floats.substr(0, 8)}}));
  CHECK(contains(test::error_of<FileError>([&] { TorchFile::open(dir + "/short.pth"); }),
                 "holds fewer bytes than its 5 elements"));
  write_file(dir + "/missing.pth", make_zip({{"archive/data.pkl", tensor_pickle("FloatStorage")}}));
  CHECK(contains(test::error_of<FileError>([&] { TorchFile::open(dir + "/missing.pth"); }),
                 "storage '0' is missing from the archive"));
  write_file(dir + "/long.pth", make_zip({{"archive/data.pkl", tensor_pickle("LongStorage")},
                                          {"archive/data/0", std::string(40, '\0')}}));
  TorchFile h = TorchFile::open(dir + "/long.pth");
  CHECK(contains(test::error_of<FileError>([&] { h.to_float32(*h.root().get("w")->tensor, "w"); }),
                 "tensor 'w' is int64, not floating point"));
  write_file(dir + "/nopkl.pth", make_zip({{"archive/other", "x"}}));
  CHECK(contains(test::error_of<FileError>([&] { TorchFile::open(dir + "/nopkl.pth"); }),
                 "zip archive without data.pkl"));
  write_file(dir + "/junk.pth", "hello");
  CHECK(contains(test::error_of<FileError>([&] { TorchFile::open(dir + "/junk.pth"); }),
                 "junk.pth: not a PyTorch checkpoint"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoint: canonical names drop DataParallel's and TSN's prefixes") {
  CHECK(canonical_name("module.base_model.conv1_7x7_s2.weight") == "conv1_7x7_s2.weight");
  CHECK(canonical_name("base_model.res3a_bn.running_var") == "res3a_bn.running_var");
  CHECK(canonical_name("module.new_fc.bias") == "new_fc.bias");
  CHECK(canonical_name("new_fc.weight") == "new_fc.weight");
}

TEST_CASE("npy: round trip, and every malformed file named with its cause") {
  const std::string path = "ecocpu_test.npy";
  for (Shape shape : {Shape{7}, Shape{1, 400}, Shape{2, 3, 1, 4, 5}}) {
    Tensor t = test::random_tensor(shape, 3);
    write_npy(path, t);
    Tensor back = read_npy(path);
    CHECK(back.shape() == shape);
    for (int64_t i = 0; i < t.numel(); ++i) CHECK(back.data()[i] == t.data()[i]);
  }
  auto header = [](const std::string& dict, std::size_t data_bytes) {
    std::string h = dict;
    h += std::string(64 - (10 + h.size() + 1) % 64, ' ') + "\n";
    const std::string length = h.size() > 0xFFFF ? "\x02\x00"s + le32(static_cast<uint32_t>(h.size()))
                                                 : "\x01\x00"s + le16(static_cast<uint16_t>(h.size()));
    return "\x93NUMPY"s + length + h + std::string(data_bytes, '\0');
  };
  struct Case {
    std::string content, expect;
  };
  const Case cases[] = {
      {"not numpy at all", "not a .npy file"},
      {header("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16), "'<f8', expected float32"},
      {header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "Fortran order"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8), "holds 8 data bytes"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4), "a scalar"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1), }", 4), "more than 5"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 4),
       "more elements than any file can hold"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000000000000,), }", 4),
       "does not fit a 64-bit integer"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", 8), "unexpected key 'extra'"},
      {header("{'descr': '<f4', 'shape': (2,)}", 8), "no 'fortran_order'"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8), "expected ',' or '}'"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8), "tuple of whole numbers"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" + std::string(70000, ' '), 8),
       "more than the 65535"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 0) + "\x00\x00\x00\x00\x00\x00\xc0\x7f"s,
       "element 1 is NaN"},
      {header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 0) + "\x00\x00\x80\x7f\x00\x00\x00\x00"s,
       "element 0 is infinite"},
  };
  for (const auto& c : cases) {
    write_file(path, c.content);
    std::string msg = test::error_of<FileError>([&] { read_npy(path); });
    CAPTURE(msg);
    CHECK(msg.starts_with(path + ": "));
    CHECK(contains(msg, c.expect));
  }
  std::remove(path.c_str());
  CHECK(contains(test::error_of<FileError>([] { write_npy("no/such/dir/out.npy", Tensor(Shape{1})); }),
                 "no/such/dir/out.npy: cannot write"));
}

TEST_CASE("torch file: sizes, strides, offsets and views that overflow are refused before any read") {
  const std::string dir = "ecocpu_test_overflow";
  std::filesystem::create_directories(dir);
  const std::string floats(16, '\0');
  struct Case {
    std::string name, size, stride, offset;
  };
  const int64_t big = int64_t{1} << 62;
  const Case cases[] = {
      {"last offset wraps", "K\x03\x85", long_op(big) + "\x85", "K\x00"s},
      {"sum of reaches wraps", "K\x02K\x02\x86", long_op(big) + long_op(big) + "\x86", "K\x00"s},
      {"element count wraps", long_op(big) + long_op(8) + "\x86", "K\x00K\x00\x86"s, "K\x00"s},
      {"reach past the storage", "K\x02\x85", long_op(big) + "\x85", "K\x00"s},
      {"offset past the storage", "K\x01\x85", "K\x01\x85", long_op(INT64_MAX)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir + "/t.pth";
    write_file(path, make_zip({{"archive/data.pkl", one_tensor_pickle(storage_pid(), c.offset, c.size, c.stride)},
                               {"archive/data/0", floats}}));
    TorchFile f = TorchFile::open(path);
    const std::string msg = test::error_of<FileError>([&] { f.to_float32(*f.root().get("w")->tensor, "w"); });
    CHECK(msg.starts_with(path + ": tensor 'w' "));
    CHECK((contains(msg, "reaches outside its storage") || contains(msg, "more elements than") ||
           contains(msg, "negative size or stride")));
  }
  // PyTorch never writes a negative size or stride: refused as the tensor is rebuilt.
  write_file(dir + "/neg.pth", make_zip({{"archive/data.pkl", one_tensor_pickle(storage_pid(), "K\x01"s, "K\x02\x85"s,
                                                                               long_op(-1) + "\x85")},
                                         {"archive/data/0", floats}}));
  CHECK(contains(test::error_of<FileError>([&] { TorchFile::open(dir + "/neg.pth"); }),
                 "neg.pth: malformed checkpoint: a tensor has a negative size or stride"));
  // A legacy view (storage '0', from element 2^63 - 1, 4 elements): offset + size wraps around.
  const std::string view = str_op("v") + long_op(INT64_MAX) + "K\x04\x87";
  write_file(dir + "/view.pth", legacy_file(one_tensor_pickle(storage_pid(view), "K\x00"s, "K\x01\x85", "K\x01\x85")));
  CHECK(contains(test::error_of<FileError>([&] { TorchFile::open(dir + "/view.pth"); }),
                 "storage view 'v' lies outside storage '0'"));
  // The same file with a view inside the storage loads.
  const std::string inside = str_op("v") + "K\x01K\x02\x87";
  write_file(dir + "/view.pth", legacy_file(one_tensor_pickle(storage_pid(inside), "K\x00"s, "K\x02\x85", "K\x01\x85")));
  TorchFile ok = TorchFile::open(dir + "/view.pth");
  CHECK(ok.to_float32(*ok.root().get("w")->tensor, "w").shape() == Shape{2});
  std::filesystem::remove_all(dir);
}

TEST_CASE("torch file: non-finite weights are an error naming the tensor and element") {
  const std::string dir = "ecocpu_test_nonfinite";
  std::filesystem::create_directories(dir);
  std::string floats(16, '\0');
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(floats.data() + 8, &nan, 4);
  write_file(dir + "/nan.pth", make_zip({{"archive/data.pkl", one_tensor_pickle(storage_pid(), "K\x00"s, "K\x04\x85", "K\x01\x85")},
                                         {"archive/data/0", floats}}));
  TorchFile f = TorchFile::open(dir + "/nan.pth");
  CHECK(contains(test::error_of<FileError>([&] { f.to_float32(*f.root().get("w")->tensor, "w"); }),
                 "tensor 'w' holds NaN at element 2"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("pickle: memory is bounded by the arena's budget") {
  // A list referenced from the memo and appended to itself 300000 times: 5 bytes of pickle ask
  // for ~2.4 MB of container slots, over a 1 MB budget.
  std::string p = "\x80\x02]q\x00("s;
  for (int i = 0; i < 300000; ++i) p += "h\x00"s;
  p += "e.";
  PickleArena small(1 << 20);
  const std::string msg = test::error_of<FileError>([&] { unpickle(p, small); });
  CHECK(contains(msg, "test.pkl: unpacking the pickle needs more than 1 MB"));
  PickleArena enough(PickleArena::budget_for(p.size()));
  CHECK(unpickle(p, enough)->items.size() == 300000);
  CHECK(enough.used() > 300000 * sizeof(PyRef));
}

TEST_CASE("torch file: every input the fuzzers once crashed on is refused, under this build's sanitizers too") {
  // tests/fuzz_regressions/ holds them (scripts/fuzz.sh replays them through the clang-built
  // targets); here the same files go through the g++ sanitizer build: each has a tensor 'w' that
  // must be refused with a FileError, at open or at conversion, without a crash or an allocation
  // of its claimed size.
  int files = 0;
  for (const char* target : {"fuzz_checkpoint_zip", "fuzz_checkpoint_legacy"}) {
    const std::filesystem::path dir = std::filesystem::path(ECOCPU_SOURCE_DIR) / "tests/fuzz_regressions" / target;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".pth") continue;
      CAPTURE(entry.path().string());
      ++files;
      CHECK_THROWS_AS(
          [&] {
            TorchFile f = TorchFile::open(entry.path().string());
            const PyObject* w = f.root().get("w");
            REQUIRE(w != nullptr);
            f.to_float32(*w->tensor, "w");
          }(),
          FileError);
    }
  }
  CHECK(files >= 8);
}
