#pragma once
// What the video tests share: a temporary folder, the `ffmpeg` command that encodes their clips
// from lavfi's test sources, file bytes, and the checks of their errors.
#include <doctest/doctest.h>
#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "eco/video/image.hpp"

namespace ecocpu::test {

using Bytes = std::vector<uint8_t>;

// A fresh folder under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ecocpu_test_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline const std::string kVp9 = "-c:v libvpx-vp9 -deadline realtime -cpu-used 8";

inline bool have_ffmpeg() { return std::system("command -v ffmpeg >/dev/null 2>&1") == 0; }

// Runs the `ffmpeg` command quietly; messages at `loglevel` and above go to the test's output.
inline void ffmpeg(const std::string& args, const std::string& loglevel = "error") {
  REQUIRE_MESSAGE(have_ffmpeg(), "the video tests need the `ffmpeg` command on PATH (apt-get install ffmpeg)");
  const std::string command = "ffmpeg -nostdin -hide_banner -loglevel " + loglevel + " -y " + args;
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

// Encodes `frames` frames of testsrc2 at `size`; `options` picks the codec and the rest. The
// source draws in RGB: drawing in the encoder's format, it would round odd sizes down to the
// chroma grid.
inline std::string make_clip(const TempDir& dir, const std::string& name, const std::string& size, int frames,
                             const std::string& options) {
  const std::string path = dir / name;
  ffmpeg("-f lavfi -i testsrc2=size=" + size + ":rate=25,format=rgb24 -frames:v " + std::to_string(frames) + " " +
         options + " " + path);
  return path;
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline video::FrameSampler every_frame() {
  return [](int64_t n) {
    std::vector<int64_t> indices(static_cast<std::size_t>(n));
    std::iota(indices.begin(), indices.end(), 0);
    return indices;
  };
}

// Zeroes the payload of the k-th video chunk ("00dc") of an AVI's movi list.
inline void spoil_avi_frame(Bytes& avi, int k) {
  const std::string movi = "movi";
  auto at = std::search(avi.begin(), avi.end(), movi.begin(), movi.end());
  REQUIRE(at != avi.end());
  std::size_t pos = static_cast<std::size_t>(at - avi.begin()) + 4;
  for (int seen = 0; pos + 8 <= avi.size();) {
    const uint32_t size = avi[pos + 4] | avi[pos + 5] << 8 | avi[pos + 6] << 16 | uint32_t{avi[pos + 7]} << 24;
    if (std::memcmp(&avi[pos], "00dc", 4) == 0 && seen++ == k) {
      std::fill_n(avi.begin() + static_cast<std::ptrdiff_t>(pos + 8), size, 0);
      return;
    }
    pos += 8 + size + (size & 1);
  }
  FAIL("no video chunk " << k);
}

// A one-line error naming the file.
inline void check_one_line_error(const std::string& message, const std::string& path) {
  CAPTURE(message);
  CHECK(message.rfind(path + ": ", 0) == 0);
  CHECK(message.find('\n') == std::string::npos);
}

}  // namespace ecocpu::test
