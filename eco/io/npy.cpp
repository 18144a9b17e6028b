#include "eco/io/npy.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <regex>

#include "eco/io/mapped_file.hpp"

namespace ecocpu {

namespace {

const char kMagic[] = "\x93NUMPY";

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
Shape parse_header(const std::string& header, ByteReader& r) {
  static const std::regex descr(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex order(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch m;
  if (!std::regex_search(header, m, descr)) r.fail("not a valid .npy header (no 'descr')");
  if (m[1] != "<f4" && m[1] != "|f4" && m[1] != "=f4") {
    r.fail("the array is '" + m[1].str() + "', expected float32 ('<f4')");
  }
  if (!std::regex_search(header, m, order)) r.fail("not a valid .npy header (no 'fortran_order')");
  if (m[1] == "True") r.fail("the array is in Fortran order; save it in C order");
  if (!std::regex_search(header, m, shape)) r.fail("not a valid .npy header (no 'shape')");
  Shape s;
  const std::string dims = m[1];
  static const std::regex number(R"(\s*(\d+)\s*(,|$))");
  auto begin = std::sregex_iterator(dims.begin(), dims.end(), number);
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    if (s.rank() == Shape::kMaxRank) r.fail("the array has more than 5 dimensions");
    s.push_back(std::stoll((*it)[1]));
  }
  if (s.rank() == 0) r.fail("the array is a scalar; expected 1 to 5 dimensions");
  return s;
}

}  // namespace

Tensor read_npy(const std::string& path) {
  auto file = MappedFile::open(path);
  ByteReader r(file->data(), file->size(), path);
  if (file->size() < 10 || std::memcmp(r.take(6, "the magic"), kMagic, 6) != 0) {
    r.fail("not a .npy file");
  }
  const uint8_t major = r.u8("the version");
  r.u8("the version");
  if (major < 1 || major > 3) r.fail("unsupported .npy version " + std::to_string(major));
  const uint32_t header_len = major == 1 ? r.u16("the header length") : r.u32("the header length");
  const uint8_t* h = r.take(header_len, "the header");
  const Shape shape = parse_header(std::string(reinterpret_cast<const char*>(h), header_len), r);
  const auto bytes = static_cast<std::size_t>(shape.numel()) * sizeof(float);
  if (r.remaining() != bytes) {
    r.fail("holds " + std::to_string(r.remaining()) + " data bytes, the shape " + shape.str() +
           " needs " + std::to_string(bytes));
  }
  const uint8_t* data = r.take(bytes, "the data");
  Tensor out(shape);
  std::memcpy(out.data(), data, bytes);
  return out;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < tensor.rank(); ++i) {
    if (i) header += ", ";
    header += std::to_string(tensor.dim(i));
  }
  header += tensor.rank() == 1 ? ",), }" : "), }";
  // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
  const std::size_t unpadded = 10 + header.size() + 1;
  header += std::string((64 - unpadded % 64) % 64, ' ') + "\n";

  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(temp.c_str(), "wb");
  if (!f) throw FileError(path + ": cannot write: " + std::strerror(errno));
  const uint16_t len = static_cast<uint16_t>(header.size());
  const uint8_t prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(len & 0xFF),
                              static_cast<uint8_t>(len >> 8)};
  const auto bytes = static_cast<std::size_t>(tensor.numel()) * sizeof(float);
  bool ok = std::fwrite(prefix, 1, 10, f) == 10 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(tensor.data(), 1, bytes, f) == bytes;
  const int write_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = ok ? errno : write_errno;
    std::remove(temp.c_str());
    throw FileError(path + ": cannot write: " + std::strerror(err));
  }
}

}  // namespace ecocpu
