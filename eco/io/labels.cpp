#include "eco/io/labels.hpp"

#include "eco/io/files.hpp"

namespace ecocpu {

std::vector<std::string> parse_labels(const std::string& text) {
  std::vector<std::string> labels;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(std::move(line));
    start = end + 1;
  }
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  return labels;
}

std::vector<std::string> read_labels(const std::string& path, int64_t classes) {
  std::vector<std::string> labels = parse_labels(read_text_file(path, kMaxLabelsFile, "labels file"));
  if (static_cast<int64_t>(labels.size()) != classes) {
    throw FileError(path + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(classes) +
                    " classes");
  }
  return labels;
}

}  // namespace ecocpu
