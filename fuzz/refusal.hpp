#pragma once
// Every target catches the project's exceptions: a refused input is the expected outcome, not a
// finding. Set ECOCPU_FUZZ_VERBOSE=1 to print why each input is refused, e.g. to check that the
// seeds get past the parsers.
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace ecocpu::fuzz {

inline void report_refusal(const std::exception& e) {
  static const bool verbose = std::getenv("ECOCPU_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
}

}  // namespace ecocpu::fuzz
