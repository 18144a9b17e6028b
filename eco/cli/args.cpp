#include "eco/cli/args.hpp"

#include <charconv>
#include <sstream>

namespace ecocpu::cli {

Args::Args(std::string command, std::vector<OptionSpec> specs, std::string positional_help)
    : command_(std::move(command)), specs_(std::move(specs)),
      positional_help_(std::move(positional_help)) {}

const OptionSpec* Args::find(const std::string& name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void Args::fail(const std::string& cause) const {
  throw UsageError("ecocpu " + command_ + ": " + cause + " (see 'ecocpu " + command_ + " --help')");
}

void Args::parse(const std::vector<std::string>& argv) {
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      help_ = true;
      continue;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      if (positional_help_.empty()) fail("unexpected argument '" + arg + "'");
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const OptionSpec* spec = find(name);
    if (!spec) fail("unknown option '--" + name + "'");
    if (values_.count(name)) fail("option '--" + name + "' given twice");
    if (spec->value_name.empty()) {
      if (inline_value) fail("option '--" + name + "' takes no value");
      values_[name] = "";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) fail("option '--" + name + "' needs a value");
      value = argv[++i];
    }
    values_[name] = value;
  }
}

std::string Args::usage() const {
  std::ostringstream out;
  out << "usage: ecocpu " << command_ << " [options]"
      << (positional_help_.empty() ? "" : " " + positional_help_) << "\n\noptions:\n";
  for (const auto& s : specs_) {
    std::string left = "  --" + s.name + (s.value_name.empty() ? "" : " " + s.value_name);
    if (left.size() < 26) left += std::string(26 - left.size(), ' ');
    out << left << " " << s.help << "\n";
  }
  out << "  -h, --help                 this text\n";
  return out.str();
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

namespace {

std::optional<int64_t> parse_int(const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

}  // namespace

int64_t Args::get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const {
  auto list = get_int_list(name, fallback, min, max);
  if (list.size() != 1) fail("--" + name + " takes one number, got '" + get(name, "") + "'");
  return list[0];
}

std::vector<int64_t> Args::get_int_list(const std::string& name, int64_t fallback, int64_t min,
                                        int64_t max) const {
  if (!has(name)) return {fallback};
  const std::string text = get(name, "");
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    auto v = parse_int(part);
    if (!v) fail("--" + name + " wants whole numbers, got '" + text + "'");
    if (*v < min || *v > max) {
      fail("--" + name + " must be between " + std::to_string(min) + " and " +
           std::to_string(max) + ", got " + std::to_string(*v));
    }
    out.push_back(*v);
  }
  if (out.empty() || text.back() == ',') fail("--" + name + " wants whole numbers, got '" + text + "'");
  return out;
}

double Args::get_double(const std::string& name, double fallback, double min, double max) const {
  if (!has(name)) return fallback;
  const std::string text = get(name, "");
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    fail("--" + name + " wants a number, got '" + text + "'");
  }
  if (!(v >= min && v <= max)) {
    fail("--" + name + " must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return v;
}

std::string Args::get_choice(const std::string& name, const std::string& fallback,
                             const std::vector<std::string>& choices) const {
  std::string v = get(name, fallback);
  std::string known;
  for (const auto& c : choices) {
    if (c == v) return v;
    known += (known.empty() ? "" : ", ") + c;
  }
  fail("--" + name + " must be one of " + known + ", got '" + v + "'");
}

}  // namespace ecocpu::cli
