#pragma once
// A small command-line parser: declared options only, strict number parsing, and a one-line
// UsageError for anything else.
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ecocpu::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;        // without dashes, e.g. "segments"
  std::string value_name;  // empty for a flag without a value
  std::string help;
};

class Args {
 public:
  Args(std::string command, std::vector<OptionSpec> specs, std::string positional_help = "");
  // Throws UsageError for unknown options, missing values or repeated options.
  void parse(const std::vector<std::string>& argv);

  bool help_requested() const { return help_; }
  std::string usage() const;  // the --help text

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback) const;
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const std::string& name, double fallback, double min, double max) const;
  std::vector<int64_t> get_int_list(const std::string& name, int64_t fallback, int64_t min,
                                    int64_t max) const;
  std::string get_choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Throws UsageError "ecocpu <command>: <cause> (see 'ecocpu <command> --help')".
  [[noreturn]] void fail(const std::string& cause) const;

 private:
  const OptionSpec* find(const std::string& name) const;

  std::string command_;
  std::vector<OptionSpec> specs_;
  std::string positional_help_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace ecocpu::cli
