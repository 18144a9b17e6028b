#include "eco/io/labels.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "eco/io/files.hpp"

namespace ecocpu {

namespace {

// "12 Basketball" -> (12, "Basketball"); nullopt for a line that is not a number, blanks and a name.
std::optional<std::pair<int64_t, std::string>> numbered_label(const std::string& line) {
  std::size_t digits = 0;
  while (digits < line.size() && digits < 9 && line[digits] >= '0' && line[digits] <= '9') ++digits;
  std::size_t name = digits;
  while (name < line.size() && (line[name] == ' ' || line[name] == '\t')) ++name;
  if (digits == 0 || name == digits || name == line.size()) return std::nullopt;
  return std::make_pair(std::stoll(line.substr(0, digits)), line.substr(name));
}

// Upstream's classInd.txt numbers its classes from 1 ("1 ApplyEyeMakeup"); 0-based numbering is
// taken too. Only a file whose every line is numbered, each number once, 1..K or 0..K-1, is read
// that way: a plain list whose names start with digits stays a plain list.
std::optional<std::vector<std::string>> numbered_labels(const std::vector<std::string>& lines) {
  std::vector<std::pair<int64_t, std::string>> numbered;
  int64_t lowest = INT64_MAX;
  for (const auto& line : lines) {
    auto entry = numbered_label(line);
    if (!entry) return std::nullopt;
    lowest = std::min(lowest, entry->first);
    numbered.push_back(std::move(*entry));
  }
  if (numbered.empty() || (lowest != 0 && lowest != 1)) return std::nullopt;
  std::vector<std::string> labels(numbered.size());
  std::vector<bool> seen(numbered.size(), false);
  for (auto& [number, name] : numbered) {
    const int64_t index = number - lowest;
    if (index >= static_cast<int64_t>(labels.size()) || seen[index]) return std::nullopt;
    seen[index] = true;
    labels[index] = std::move(name);
  }
  return labels;
}

}  // namespace

std::vector<std::string> parse_labels(const std::string& text) {
  std::vector<std::string> labels = text_lines(text);
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  if (auto numbered = numbered_labels(labels)) return *numbered;
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
