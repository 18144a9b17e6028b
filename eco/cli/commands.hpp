#pragma once
#include <string>
#include <vector>

namespace ecocpu::cli {

// Each returns the process exit code; output goes to stdout, one-line errors to stderr.
int cmd_flops(const std::vector<std::string>& args);
int cmd_summary(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_definition(const std::vector<std::string>& args);
int cmd_inspect(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_plan(const std::vector<std::string>& args);
int cmd_stream(const std::vector<std::string>& args);

}  // namespace ecocpu::cli
