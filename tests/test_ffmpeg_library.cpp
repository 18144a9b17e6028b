// FFmpeg's libraries opened on first use instead of linked (eco/video/ffmpeg_library.hpp).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "eco/video/ffmpeg_library.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using ecocpu::test::error_of;

TEST_CASE("video: FFmpeg's libraries are opened by the headers' sonames, and a missing one is named") {
  const auto sonames = video::ffmpeg::sonames();
  REQUIRE(sonames.size() == 4);
  CHECK(std::string(sonames.front()).rfind("libavutil.so.", 0) == 0);
  CHECK(std::string(sonames.back()).rfind("libavformat.so.", 0) == 0);
  const video::ffmpeg::Library library = video::ffmpeg::open_library(sonames);
  int found = 0, functions = 0;
#define COUNT_FOUND(name) ++functions, found += library.name != nullptr;
  ECOCPU_FFMPEG_FUNCTIONS(COUNT_FOUND)
#undef COUNT_FOUND
  CHECK(functions > 40);
  CHECK(found == functions);
  const char* missing[] = {"libavutil.so.0.no-such-version"};
  const std::string not_there = error_of<std::runtime_error>([&] { video::ffmpeg::open_library(missing); });
  CHECK(not_there.find("FFmpeg's libavutil.so.0.no-such-version cannot be loaded (") == 0);
  const char* not_ffmpeg[] = {"libm.so.6"};
  const std::string no_function = error_of<std::runtime_error>([&] { video::ffmpeg::open_library(not_ffmpeg); });
  CHECK(no_function == "FFmpeg's libraries have no av_dict_free");
}
