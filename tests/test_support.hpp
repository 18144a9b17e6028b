#pragma once
#include <filesystem>
#include <functional>
#include <string>

namespace ecocpu::test {

// The message of the exception `f` throws, or "" if it throws none.
template <typename Error>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The upstream definition files some tests compare against (ECOCPU_REFERENCE_DIR, by default
// ../shared/reference). A clone without them skips those tests: their cases carry
// `* doctest::skip(!test::upstream_reference_available())`, and ctest's upstream_reference entry
// reports the skip and its reason.
inline bool upstream_reference_available() {
  const std::filesystem::path dir = ECOCPU_REFERENCE_DIR;
  for (const char* file : {"ECO.yaml", "ECOfull.yaml", "C3DRes18.yaml"}) {
    if (!std::filesystem::is_regular_file(dir / file)) return false;
  }
  return true;
}

}  // namespace ecocpu::test
