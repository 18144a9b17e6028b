// Label files (--labels): line splitting, and the JSON that `run --json` makes of each name, which
// must stay valid whatever bytes a label holds.
#include <cstdint>
#include <string>

#include "eco/io/labels.hpp"
#include "eco/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const std::string& label : ecocpu::parse_labels(text)) {
    const std::string quoted = ecocpu::json_quote(label);
    // A JSON string: quoted, and no raw control character inside.
    if (quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"') __builtin_trap();
    for (char c : quoted) {
      if (static_cast<unsigned char>(c) < 0x20) __builtin_trap();
    }
  }
  return 0;
}
