// Untrusted-input plumbing: checked arithmetic, regular files only, mapped files, atomic outputs,
// strict JSON.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "eco/io/files.hpp"
#include "eco/io/mapped_file.hpp"
#include "eco/report.hpp"
#include "tensor/checked.hpp"
#include "tensor/shape.hpp"
#include "tensor/tensor.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using test::contains;

TEST_CASE("checked arithmetic: overflow is nullopt or an error naming the quantity") {
  const int64_t max = std::numeric_limits<int64_t>::max();
  CHECK(mul_checked(3, 4) == 12);
  CHECK(!mul_checked(int64_t{1} << 32, int64_t{1} << 31));
  CHECK(mul_checked(-(int64_t{1} << 62), 2) == std::numeric_limits<int64_t>::min());
  CHECK(!add_checked(max, 1));
  const std::vector<int64_t> dims{1 << 20, 1 << 20, 1 << 20, 1 << 10};
  CHECK(!product_checked(dims));
  CHECK(product_checked(std::vector<int64_t>{2, 0, max}) == 0);
  CHECK(contains(test::error_of<OverflowError>([&] { checked_add(max, max, "the FLOP count"); }),
                 "the FLOP count overflows a 64-bit integer"));
  CHECK(contains(test::error_of<ShapeError>([] { Shape{1 << 30, 1 << 30, 1 << 30}.numel(); }),
                 "has more elements than a 64-bit count holds"));
}

TEST_CASE("files: only regular files are opened, and a FIFO never blocks") {
  const std::string dir = "ecocpu_test_files";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string fifo = dir + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(test::error_of<FileError>([&] { open_regular_file(fifo); }) == fifo + ": is a FIFO, not a regular file");
  CHECK(test::error_of<FileError>([&] { read_text_file(fifo, 100, "labels file"); }) ==
        fifo + ": is a FIFO, not a regular file");
  CHECK(test::error_of<FileError>([&] { MappedFile::open(fifo); }) == fifo + ": is a FIFO, not a regular file");
  CHECK(test::error_of<FileError>([&] { open_regular_file(dir); }) == dir + ": is a directory, not a regular file");
  CHECK(test::error_of<FileError>([] { open_regular_file("/dev/null"); }) ==
        "/dev/null: is a device, not a regular file");
  CHECK(contains(test::error_of<FileError>([&] { open_regular_file(dir + "/none"); }), "/none: cannot open: No such"));

  const std::string text = dir + "/labels.txt";
  std::ofstream(text) << "walking\nrunning\n";
  CHECK(read_text_file(text, 16, "labels file") == "walking\nrunning\n");
  CHECK(test::error_of<FileError>([&] { read_text_file(text, 15, "labels file"); }) ==
        text + ": 16 bytes, more than a labels file may hold (15)");
  std::filesystem::remove_all(dir);
}

namespace {

// The resident kilobytes of the mapping that holds `address` (/proc/self/smaps), -1 if none does.
int64_t resident_kb_of_mapping(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &from, &to) == 2 && line.find(' ') > line.find('-')) {
      inside = from <= at && at < to;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::stoll(line.substr(4));
    }
  }
  return -1;
}

}  // namespace

TEST_CASE("files: a tensor viewing a mapped file gives its pages back when released; other views still read them") {
  const std::string path = "ecocpu_test_mapped_pages.bin";
  const int64_t floats = 64 * 1024;  // 256 KB: 64 pages of 4 KB
  {
    std::vector<float> values(static_cast<std::size_t>(floats));
    for (int64_t i = 0; i < floats; ++i) values[static_cast<std::size_t>(i)] = static_cast<float>(i);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(values.data()), floats * 4);
  }
  auto file = MappedFile::open(path);
  const auto* all = reinterpret_cast<const float*>(file->data());
  float sum = 0;
  for (int64_t i = 0; i < floats; ++i) sum += all[i];  // every page resident
  CHECK(sum > 0);
  const int64_t before = resident_kb_of_mapping(all);
  REQUIRE(before >= 256);
  const float* middle = all + 1000;
  const Shape shape{60000};
  Tensor kept = Tensor::borrowed(MappedFile::range_owner(file, middle, 60000 * 4), middle, shape);
  {
    Tensor released = Tensor::borrowed(MappedFile::range_owner(file, middle, 60000 * 4), middle, shape);
  }
  CHECK(resident_kb_of_mapping(all) <= before - 200);  // the whole pages inside the range went back
  bool same = true;
  for (int64_t i = 0; i < 60000; ++i) same = same && kept.data()[i] == static_cast<float>(1000 + i);
  CHECK(same);  // read again from the file
  kept = Tensor();
  file.reset();
  std::filesystem::remove(path);
}

TEST_CASE("files: outputs are written whole or not at all, never over a device or an input") {
  const std::string dir = "ecocpu_test_outputs";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string out = dir + "/out.bin";
  write_file_atomically(out, [](std::FILE* f) { return std::fputs("first", f) >= 0; });
  // A failing writer leaves the old content and no temporary file.
  CHECK_THROWS_AS(write_file_atomically(out, [](std::FILE* f) { std::fputs("half", f); return false; }), FileError);
  std::ifstream in(out);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "first");
  CHECK(std::distance(std::filesystem::directory_iterator(dir), {}) == 1);
  CHECK(contains(test::error_of<FileError>([] { write_file_atomically("/dev/null", [](std::FILE*) { return true; }); }),
                 "/dev/null: cannot write: the target is a device"));
  struct stat st {};
  CHECK((::stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)));

  // The same file under another name (a hard link) counts as the input.
  const std::string link = dir + "/link.bin";
  REQUIRE(::link(out.c_str(), link.c_str()) == 0);
  CHECK(contains(test::error_of<FileError>([&] { check_output_path(link, {dir + "/other", out}); }),
                 "refusing to write the output over an input (" + out + ")"));
  check_output_path(dir + "/new.npy", {out});  // a new file is no input
  CHECK(test::error_of<FileError>([&] { check_output_path(dir + "/none/new.npy", {}); }) ==
        dir + "/none/new.npy: cannot write: " + dir + "/none does not exist");
  CHECK(test::error_of<FileError>([&] { check_output_path(out + "/new.npy", {}); }) ==
        out + "/new.npy: cannot write: " + out + " is not a folder");
  CHECK(contains(test::error_of<FileError>([] { check_output_path("/dev/null", {}); }), "the target is a device"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("json: strings are valid UTF-8, numbers are finite or null") {
  CHECK(json_quote("walk \"fast\"\n") == "\"walk \\\"fast\\\"\\u000a\"");
  CHECK(json_quote("caf\xc3\xa9") == "\"caf\xc3\xa9\"");          // UTF-8 kept
  CHECK(json_quote("caf\xe9") == "\"caf\\ufffd\"");                // Latin-1 byte replaced
  CHECK(json_quote("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate is not UTF-8
  CHECK(json_quote("\xc0\xaf") == "\"\\ufffd\\ufffd\"");            // nor an overlong form
  CHECK(json_quote("\xf0\x9f\x8e\xac") == "\"\xf0\x9f\x8e\xac\"");
  CHECK(json_number(0.25) == "0.25");
  CHECK(json_number(std::nan("")) == "null");
  CHECK(json_number(-std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("first_non_finite: the first NaN or infinity, wherever it falls in a block") {
  std::vector<float> v(10000, 1.5f);
  CHECK(first_non_finite(v.data(), 0) == -1);
  CHECK(first_non_finite(v.data(), static_cast<int64_t>(v.size())) == -1);
  for (int64_t at : {0, 1, 4095, 4096, 4097, 9999}) {
    CAPTURE(at);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
      std::vector<float> w = v;
      w[at] = bad;
      w[9999] = bad;  // a later one is not the first
      CHECK(first_non_finite(w.data(), static_cast<int64_t>(w.size())) == at);
      CHECK(first_non_finite(w.data(), at) == -1);  // outside the range: not seen
    }
  }
  v[7] = std::numeric_limits<float>::max();  // large but finite
  v[8] = std::numeric_limits<float>::denorm_min();
  CHECK(first_non_finite(v.data(), static_cast<int64_t>(v.size())) == -1);
}
