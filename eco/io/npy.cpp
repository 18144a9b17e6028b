#include "eco/io/npy.hpp"

#include <cmath>
#include <cstring>
#include <string_view>

#include "eco/io/files.hpp"
#include "eco/io/mapped_file.hpp"
#include "tensor/checked.hpp"

namespace ecocpu {

namespace {

const char kMagic[] = "\x93NUMPY";

// The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
// Parsed by hand, one pass, no recursion: the three keys numpy writes, string, boolean and tuple
// values, nothing else.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, ByteReader& r) : text_(text), r_(r) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    Shape shape;
    bool has_descr = false, has_order = false, has_shape = false;
  };

  Header parse() {
    Header h;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted("a key");
      expect(':');
      if (key == "descr") {
        h.descr = quoted("'descr'");
        h.has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        h.has_order = true;
      } else if (key == "shape") {
        h.shape = shape();
        h.has_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}' after the value of '" + key + "'");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail("text after the closing '}'");
    if (!h.has_descr) fail("no 'descr'");
    if (!h.has_order) fail("no 'fortran_order'");
    if (!h.has_shape) fail("no 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& cause) const { r_.fail("not a valid .npy header: " + cause); }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::string quoted(const char* what) {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(std::string("expected a quoted string for ") + what);
    const std::size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail(std::string("unterminated string in ") + what);
    std::string s(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return s;
  }

  bool boolean() {
    skip_space();
    if (literal("True")) return true;
    if (literal("False")) return false;
    fail("'fortran_order' must be True or False");
  }

  int64_t dimension() {
    const std::size_t start = pos_;
    int64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      auto next = mul_checked(v, 10);
      if (next) next = add_checked(*next, text_[pos_] - '0');
      if (!next) fail("a dimension of 'shape' does not fit a 64-bit integer");
      v = *next;
      ++pos_;
    }
    if (pos_ == start) fail("'shape' must be a tuple of whole numbers");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2's long suffix
    return v;
  }

  Shape shape() {
    expect('(');
    Shape s;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (s.rank() == Shape::kMaxRank) r_.fail("the array has more than 5 dimensions");
      s.push_back(dimension());
      skip_space();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        fail("'shape' must be a tuple of whole numbers");
      }
    }
    ++pos_;
    return s;
  }

  std::string_view text_;
  ByteReader& r_;
  std::size_t pos_ = 0;
};

// The first non-finite value of a clip is an error: NaN or Inf pixels cannot come from a decoded
// frame, and they would give normal-looking logits.
void check_finite(const Tensor& t, ByteReader& r) {
  if (const int64_t i = first_non_finite(t.data(), t.numel()); i >= 0) {
    r.fail("element " + std::to_string(i) + " is " + (std::isnan(t.data()[i]) ? "NaN" : "infinite") +
           "; the array must hold finite numbers");
  }
}

}  // namespace

Tensor parse_npy(const MappedFile& file) {
  ByteReader r(file.data(), file.size(), file.path());
  if (file.size() < 10 || std::memcmp(r.take(6, "the magic"), kMagic, 6) != 0) {
    r.fail("not a .npy file");
  }
  const uint8_t major = r.u8("the version");
  r.u8("the version");
  if (major < 1 || major > 3) r.fail("unsupported .npy version " + std::to_string(major));
  const uint32_t header_len = major == 1 ? r.u16("the header length") : r.u32("the header length");
  if (header_len > kMaxNpyHeader) {
    r.fail("the header is " + std::to_string(header_len) + " bytes, more than the " +
           std::to_string(kMaxNpyHeader) + " a .npy header may have");
  }
  const uint8_t* h = r.take(header_len, "the header");
  const auto header = HeaderParser(std::string_view(reinterpret_cast<const char*>(h), header_len), r).parse();
  if (header.descr != "<f4" && header.descr != "|f4" && header.descr != "=f4") {
    r.fail("the array is '" + header.descr + "', expected float32 ('<f4')");
  }
  if (header.fortran_order) r.fail("the array is in Fortran order; save it in C order");
  const Shape& shape = header.shape;
  if (shape.rank() == 0) r.fail("the array is a scalar; expected 1 to 5 dimensions");
  const auto numel = product_checked(std::span<const int64_t>(shape.begin(), shape.end()));
  const auto bytes = numel ? mul_checked(*numel, sizeof(float)) : std::nullopt;
  if (!bytes) r.fail("the shape " + shape.str() + " has more elements than any file can hold");
  if (r.remaining() != static_cast<uint64_t>(*bytes)) {
    r.fail("holds " + std::to_string(r.remaining()) + " data bytes, the shape " + shape.str() +
           " needs " + std::to_string(*bytes));
  }
  const uint8_t* data = r.take(static_cast<std::size_t>(*bytes), "the data");
  Tensor out(shape);
  std::memcpy(out.data(), data, static_cast<std::size_t>(*bytes));
  check_finite(out, r);
  return out;
}

Tensor read_npy(const std::string& path) { return parse_npy(*MappedFile::open(path)); }

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
  const uint16_t len = static_cast<uint16_t>(header.size());
  const uint8_t prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(len & 0xFF),
                              static_cast<uint8_t>(len >> 8)};
  const auto bytes = static_cast<std::size_t>(tensor.numel()) * sizeof(float);
  write_file_atomically(path, [&](std::FILE* f) {
    return std::fwrite(prefix, 1, 10, f) == 10 && std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
           std::fwrite(tensor.data(), 1, bytes, f) == bytes;
  });
}

}  // namespace ecocpu
