// The command-line parser: option matching, `--name=value`, repeated and missing values, and the
// strict number, list and choice readers, with the options and ranges the commands use. The
// input is the argument vector, one argument per NUL-separated piece.
#include <cstdint>
#include <string>
#include <vector>

#include "eco/cli/args.hpp"
#include "refusal.hpp"

namespace {

using ecocpu::cli::Args;
using ecocpu::cli::OptionSpec;

// As eco/cli/common.cpp's model_options and the run/bench options (common.cpp is not linked: it
// pulls in the whole CLI). The ranges are those of common.hpp.
std::vector<OptionSpec> option_specs() {
  return {
      {"arch", "A", ""},          {"segments", "N[,N...]", ""}, {"classes", "K", ""},
      {"dropout", "P", ""},       {"model-def", "FILE", ""},    {"weights", "FILE", ""},
      {"random-weights", "", ""}, {"seed", "S", ""},            {"topk", "K", ""},
      {"labels", "FILE", ""},     {"json", "", ""},             {"engine", "E", ""},
      {"threads", "N", ""},       {"iters", "K", ""},           {"max-memory", "MB", ""},
  };
}

std::vector<std::string> split_at_nul(const uint8_t* data, size_t size) {
  if (size == 0) return {};
  std::vector<std::string> argv(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      argv.emplace_back();
    } else {
      argv.back() += static_cast<char>(data[i]);
    }
  }
  return argv;
}

// Each reader on its own, so that one refused value does not hide the others.
template <typename Read>
void attempt(const Read& read) {
  try {
    (void)read();
  } catch (const std::exception& e) {
    ecocpu::fuzz::report_refusal(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kMaxSegments = 1024, kMaxClasses = 1000000, kMB = 1 << 20;
  // `flops` takes no positional argument, `run` takes the clip: the input's parity picks one.
  Args args(size % 2 ? "run" : "flops", option_specs(), size % 2 ? "INPUT.npy" : "");
  try {
    args.parse(split_at_nul(data, size));
  } catch (const std::exception& e) {
    ecocpu::fuzz::report_refusal(e);
    return 0;
  }
  attempt([&] { return args.get_int_list("segments", 16, 1, kMaxSegments); });
  attempt([&] { return args.get_int("segments", 16, 1, kMaxSegments); });
  attempt([&] { return args.get_int("classes", 400, 1, kMaxClasses); });
  attempt([&] { return args.get_int("seed", 1, 0, INT64_MAX); });
  attempt([&] { return args.get_int("max-memory", 0, 1, INT64_MAX / kMB); });
  attempt([&] { return args.get_double("dropout", 0.5, 0.0, 1.0); });
  attempt([&] { return args.get_choice("arch", "ECO", {"ECO", "ECOfull"}); });
  attempt([&] { return args.get_choice("engine", "fast", {"fast", "reference"}); });
  attempt([&] { return args.get(std::string("model-def"), ""); });
  attempt([&] { return args.usage(); });
  (void)args.positional();
  (void)args.help_requested();
  return 0;
}
