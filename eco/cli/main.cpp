// ecocpu: ECO video classification on the CPU, with exact cost counting.
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "eco/cli/args.hpp"
#include "eco/cli/commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: ecocpu <command> [options]\n"
    "\n"
    "commands:\n"
    "  flops        parameters, MACs and FLOPs per layer (thop's convention included)\n"
    "  summary      output shape and parameters per layer, and the memory needed\n"
    "  run          classify a clip with a PyTorch checkpoint (or random weights)\n"
    "  stream       online recognition on a video, a frame folder or raw frames on stdin\n"
    "  inspect      list a PyTorch checkpoint's tensors and metadata\n"
    "  bench        time the forward pass: latency, peak memory, per-layer table\n"
    "  plan         the fast engine's steps after fusion: algorithms, layouts, outputs\n"
    "  definition   print a built-in definition (ECO, ECOfull, C3DRes18) as YAML\n"
    "\n"
    "'ecocpu <command> --help' describes a command's options. With no command, 'ecocpu'\n"
    "is 'ecocpu flops': ECO Lite, 16 segments, 400 classes.\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string command = "flops";
  if (!args.empty() && !args[0].starts_with("-")) {
    command = args[0];
    args.erase(args.begin());
  } else if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << kUsage;
    return 0;
  } else if (!args.empty() && args[0] == "--version") {
    std::cout << "ecocpu 0.1.0\n";
    return 0;
  }
  using Command = int (*)(const std::vector<std::string>&);
  const std::map<std::string, Command> commands = {
      {"flops", ecocpu::cli::cmd_flops},
      {"summary", ecocpu::cli::cmd_summary},
      {"run", ecocpu::cli::cmd_run},
      {"stream", ecocpu::cli::cmd_stream},
      {"definition", ecocpu::cli::cmd_definition},
      {"inspect", ecocpu::cli::cmd_inspect},
      {"bench", ecocpu::cli::cmd_bench},
      {"plan", ecocpu::cli::cmd_plan},
  };
  if (command == "help") {
    std::cout << kUsage;
    return 0;
  }
  auto it = commands.find(command);
  if (it == commands.end()) {
    std::cerr << "ecocpu: unknown command '" << command << "' (see 'ecocpu --help')\n";
    return 2;
  }
  try {
    return it->second(args);
  } catch (const ecocpu::cli::UsageError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "ecocpu " << command << ": out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ecocpu " << command << ": " << e.what() << "\n";
    return 1;
  }
}
