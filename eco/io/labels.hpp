#pragma once
// Class-name files for --labels: one name per line (Kinetics' category lists), or upstream's
// classInd.txt form, "<number> <name>" numbered from 1 (UCF101, HMDB51).
#include <cstddef>
#include <string>
#include <vector>

namespace ecocpu {

constexpr std::size_t kMaxLabelsFile = 64 << 20;

// The names in `text`, one a line (a trailing '\r' dropped, trailing empty lines ignored), or, when
// every line is "<number> <name>" with the numbers 1..K (or 0..K-1) once each, the names by number.
std::vector<std::string> parse_labels(const std::string& text);

// Reads `path` (a regular file of at most kMaxLabelsFile bytes) and checks it names `classes`
// classes. Throws FileError "<path>: <cause>".
std::vector<std::string> read_labels(const std::string& path, int64_t classes);

}  // namespace ecocpu
