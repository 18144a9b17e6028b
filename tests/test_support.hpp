#pragma once
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

}  // namespace ecocpu::test
