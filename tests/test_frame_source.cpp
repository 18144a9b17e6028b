// The sequential frame sources of `ecocpu stream`: a video's frames are decode_video's, in its
// numbering and with its pixels; a folder's are decode_image's of each file up to the first gap;
// raw frames come from a pipe that a thread fills.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "eco/io/mapped_file.hpp"
#include "eco/video/frame_folder.hpp"
#include "eco/video/frame_source.hpp"
#include "eco/video/image_file.hpp"
#include "eco/video/video_file.hpp"
#include "test_support.hpp"
#include "video_support.hpp"

using namespace ecocpu;
using namespace ecocpu::video;
using namespace ecocpu::test;

namespace {

std::vector<StreamFrame> read_all(FrameSource& source) {
  std::vector<StreamFrame> frames;
  while (std::optional<StreamFrame> frame = source.next()) frames.push_back(std::move(*frame));
  CHECK_FALSE(source.next().has_value());  // the end stays the end
  return frames;
}

std::vector<StreamFrame> read_video(const std::string& path, int threads) {
  const auto source = open_video_source(path, threads);
  CHECK(source->name() == path);
  return read_all(*source);
}

// The first, a middle and the last frame.
FrameSampler three_frames() {
  return [](int64_t n) { return std::vector<int64_t>{0, n / 2, n - 1}; };
}

// The source gives decode_video's frames: as many, numbered 0 to n - 1, byte for byte those
// decode_video gives every frame sampled and a few sampled (which skips frames on the way).
void check_same_as_decode_video(const std::string& path) {
  INFO(path);
  const SampledFrames all = decode_video(MappedFile::open(path), every_frame());
  const SampledFrames few = decode_video(MappedFile::open(path), three_frames());
  for (int threads : {1, 0}) {
    CAPTURE(threads);
    const std::vector<StreamFrame> frames = read_video(path, threads);
    REQUIRE(static_cast<int64_t>(frames.size()) == all.frame_count);
    for (const StreamFrame& frame : frames) {
      CAPTURE(frame.index);
      CHECK(frame.index == &frame - frames.data());
      CHECK(frame.image.width == all.images.at(frame.index).width);
      CHECK(frame.image.pixels == all.images.at(frame.index).pixels);
      if (few.images.count(frame.index) == 1) CHECK(frame.image.pixels == few.images.at(frame.index).pixels);
    }
  }
}

// Frame times as the clip's pts give them: starting at 0 and increasing.
void check_times_increase(const std::vector<StreamFrame>& frames) {
  REQUIRE_FALSE(frames.empty());
  CHECK(frames[0].time_s == 0);
  for (std::size_t k = 1; k < frames.size(); ++k) CHECK(frames[k].time_s > frames[k - 1].time_s);
}

}  // namespace

TEST_CASE("frame source: a video's frames are decode_video's, in presentation order") {
  const TempDir dir;
  // H.264 with three B-frames (decoded out of order, reordered by the decoder), MPEG-4 with
  // B-frames in AVI (no presentation times for them), VP9 in WebM (no frame count in the
  // container), an odd size.
  check_same_as_decode_video(make_clip(dir, "h264_b.mp4", "64x48", 30, "-c:v libx264 -bf 3 -pix_fmt yuv420p"));
  check_same_as_decode_video(make_clip(dir, "mpeg4_b.avi", "64x48", 20, "-c:v mpeg4 -q:v 5 -bf 2"));
  check_same_as_decode_video(make_clip(dir, "vp9.webm", "64x48", 20, kVp9));
  check_same_as_decode_video(make_clip(dir, "odd.mp4", "171x129", 12, "-c:v libx264 -pix_fmt yuv444p"));
}

TEST_CASE("frame source: a rotated video, a size change and a frame that does not decode, as decode_video") {
  const TempDir dir;
  const std::string upright = make_clip(dir, "upright.mp4", "64x48", 12, "-c:v libx264");
  ffmpeg("-i " + upright + " -c copy -metadata:s:v:0 rotate=90 " + (dir / "rotated.mp4"));
  check_same_as_decode_video(dir / "rotated.mp4");
  CHECK(read_video(dir / "rotated.mp4", 1).at(0).image.width == 48);

  // Frames after a size change are scaled to the first frame's size.
  Bytes joined = read_bytes(make_clip(dir, "a.h264", "64x48", 6, "-c:v libx264"));
  const Bytes tail = read_bytes(make_clip(dir, "b.h264", "48x64", 6, "-c:v libx264"));
  joined.insert(joined.end(), tail.begin(), tail.end());
  write_bytes(dir / "joined.h264", joined);
  check_same_as_decode_video(dir / "joined.h264");

  // The spoiled frame does not come out, and the numbering closes up as decode_video's does.
  Bytes avi = read_bytes(make_clip(dir, "mjpeg.avi", "64x48", 12, "-c:v mjpeg"));
  spoil_avi_frame(avi, 5);
  write_bytes(dir / "spoiled.avi", avi);
  check_same_as_decode_video(dir / "spoiled.avi");
  CHECK(read_video(dir / "spoiled.avi", 1).size() == 11);
}

TEST_CASE("frame source: a video's frame times are its pts, counted from the first frame") {
  const TempDir dir;
  const std::string clip = make_clip(dir, "h264_b.mp4", "64x48", 30, "-c:v libx264 -bf 3");
  const auto source = open_video_source(clip, 1);
  CHECK(source->fps() == 25);
  const std::vector<StreamFrame> frames = read_all(*source);
  check_times_increase(frames);
  for (const StreamFrame& frame : frames) {
    CHECK(std::fabs(frame.time_s - static_cast<double>(frame.index) / 25.0) < 1e-6);
  }

  // Variable frame rate: frame k is shown at k^2 / 25 s (the source's time base is 1/25 s; the
  // container counts milliseconds).
  const std::vector<StreamFrame> vfr =
      read_video(make_clip(dir, "vfr.mkv", "64x48", 12, "-vf setpts=N*N -vsync vfr -c:v libx264"), 1);
  REQUIRE(vfr.size() == 12);
  check_times_increase(vfr);
  for (const StreamFrame& frame : vfr) {
    CHECK(std::fabs(frame.time_s - static_cast<double>(frame.index * frame.index) / 25.0) < 1e-6);
  }
}

TEST_CASE("frame source: video that is no video, or whose frames all fail, is refused with one line") {
  const TempDir dir;
  Bytes noise(4096);
  uint32_t state = 12345;
  for (auto& b : noise) b = static_cast<uint8_t>((state = state * 1664525 + 1013904223) >> 24);
  const auto open_bytes = [](const Bytes& bytes) { open_video_source(MappedFile::from_bytes("bytes.bin", bytes), 1); };
  check_one_line_error(test::error_of<FileError>([&] { open_bytes(noise); }), "bytes.bin");
  check_one_line_error(test::error_of<FileError>([&] { open_bytes(Bytes{'x'}); }), "bytes.bin");
  CHECK(test::error_of<FileError>([&] { open_video_source(dir / "none.mp4", 1); }) ==
        dir / "none.mp4: cannot open: No such file or directory");

  // Every frame spoiled: the container opens, and reading finds no frame.
  Bytes avi = read_bytes(make_clip(dir, "mjpeg.avi", "64x48", 3, "-c:v mjpeg"));
  for (int k = 0; k < 3; ++k) spoil_avi_frame(avi, k);
  write_bytes(dir / "spoiled.avi", avi);
  const auto source = open_video_source(dir / "spoiled.avi", 1);
  const std::string error = test::error_of<FileError>([&] { source->next(); });
  CHECK(contains(error, dir / "spoiled.avi: no decodable video frame"));
  check_one_line_error(error, dir / "spoiled.avi");

  // Cut short: the frames before the cut, as decode_video decodes them; cut before the first
  // frame is complete, none.
  const Bytes whole = read_bytes(make_clip(dir, "whole.mp4", "64x48", 20, "-c:v libx264 -movflags +faststart"));
  const auto cut = [&](const std::string& name, double kept) {
    const auto kept_bytes = static_cast<std::ptrdiff_t>(static_cast<double>(whole.size()) * kept);
    write_bytes(dir / name, Bytes(whole.begin(), whole.begin() + kept_bytes));
    return dir / name;
  };
  const std::string most = cut("most.mp4", 0.9);
  const std::vector<StreamFrame> frames = read_video(most, 1);
  CHECK(frames.size() > 0);
  CHECK(frames.size() < 20);
  CHECK(static_cast<int64_t>(frames.size()) == decode_video(MappedFile::open(most), every_frame()).frame_count);
  const std::string half = cut("half.mp4", 0.5);
  check_one_line_error(test::error_of<FileError>([&] { read_video(half, 1); }), half);
}

TEST_CASE("frame source: a folder's frames are decode_image's of each file, up to the first gap") {
  const TempDir dir;
  // The image2 muxer numbers files from 1, as upstream's frame folders are.
  ffmpeg("-f lavfi -i testsrc2=size=40x30:rate=25,format=rgb24 -frames:v 6 " + (dir / "img_%05d.jpg"));
  const auto frame_file = [&](int number) {
    char name[32];
    std::snprintf(name, sizeof name, "img_%05d.jpg", number);
    return dir / name;
  };
  const auto read_folder = [&] {
    const auto source = open_folder_source(dir.path(), kDefaultFramePattern, 10);
    CHECK(source->fps() == 10);
    CHECK(source->name() == dir.path());
    return read_all(*source);
  };

  std::vector<StreamFrame> frames = read_folder();
  REQUIRE(frames.size() == 6);
  for (const StreamFrame& frame : frames) {
    CAPTURE(frame.index);
    CHECK(frame.index == &frame - frames.data());
    CHECK(frame.time_s == static_cast<double>(frame.index) / 10.0);
    CHECK(frame.image.pixels == decode_image(*MappedFile::open(frame_file(static_cast<int>(frame.index) + 1))).pixels);
  }

  std::filesystem::remove(frame_file(4));
  frames = read_folder();
  CHECK(frames.size() == 3);

  // A frame that is there but unreadable is an error naming its file, not the end.
  std::filesystem::create_directory(frame_file(4));
  const auto source = open_folder_source(dir.path(), kDefaultFramePattern, 10);
  for (int k = 0; k < 3; ++k) REQUIRE(source->next());
  CHECK(test::error_of<FileError>([&] { source->next(); }) == frame_file(4) + ": is a directory, not a regular file");
}

TEST_CASE("frame source: a folder must hold frame 1, and the pattern and fps must be valid") {
  const TempDir dir;
  const auto folder_error = [&](const std::string& folder, const std::string& pattern) {
    return test::error_of<FileError>([&] { open_folder_source(folder, pattern, 25); });
  };
  CHECK(folder_error(dir.path(), kDefaultFramePattern) == dir.path() + ": frame 1 (img_00001.jpg) is missing");
  CHECK(folder_error(dir.path(), "%s") ==
        dir.path() + ": the frame pattern '%s' has a conversion at position 1 other than %d, %Nd or %0Nd (N up to "
                     "99); write %% for a literal %");
  CHECK(folder_error(dir / "none", kDefaultFramePattern) == dir / "none: cannot open: No such file or directory");
  for (double fps : {0.0, -1.0, std::nan(""), HUGE_VAL}) {
    CAPTURE(fps);
    CHECK_THROWS_AS(open_folder_source(dir.path(), kDefaultFramePattern, fps), std::invalid_argument);
  }
}

namespace {

// A pipe whose write end a thread fills with `bytes`, `piece` bytes at a time, then closes.
class FilledPipe {
 public:
  FilledPipe(Bytes bytes, std::size_t piece) {
    REQUIRE(::pipe(fds_) == 0);
    writer_ = std::thread([this, bytes = std::move(bytes), piece] { write_all(bytes, piece); });
  }
  // The read end is closed first: a writer still blocked then fails instead of waiting forever.
  ~FilledPipe() {
    ::close(fds_[0]);
    writer_.join();
  }
  FilledPipe(const FilledPipe&) = delete;
  FilledPipe& operator=(const FilledPipe&) = delete;
  int fd() const { return fds_[0]; }

 private:
  void write_all(const Bytes& bytes, std::size_t piece) {
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);  // a closed reader is EPIPE, not the end of the tests
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(fds_[1], bytes.data() + done, std::min(piece, bytes.size() - done));
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fds_[1]);
  }

  int fds_[2] = {-1, -1};
  std::thread writer_;
};

// Frames of a width x height test pattern, byte i of frame k being (i * 7 + k * 31) % 256.
Bytes raw_frames(int64_t width, int64_t height, int frames) {
  Bytes bytes(static_cast<std::size_t>(width * height * 3 * frames));
  const std::size_t frame_size = bytes.size() / static_cast<std::size_t>(frames);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<uint8_t>((i % frame_size) * 7 + (i / frame_size) * 31);
  }
  return bytes;
}

Bytes frame_of(const Bytes& bytes, std::size_t frame_size, int64_t k) {
  const auto start = bytes.begin() + static_cast<std::ptrdiff_t>(frame_size) * k;
  return Bytes(start, start + static_cast<std::ptrdiff_t>(frame_size));
}

Bytes swapped_red_and_blue(Bytes pixels) {
  for (std::size_t i = 0; i < pixels.size(); i += 3) std::swap(pixels[i], pixels[i + 2]);
  return pixels;
}

}  // namespace

TEST_CASE("frame source: raw frames from a pipe, in rgb24 and bgr24") {
  // 200x120x3 bytes, more than a pipe holds: every frame arrives in several reads.
  const RawFormat rgb = parse_raw_format("200x120", "rgb24");
  const RawFormat bgr = parse_raw_format("200x120", "bgr24");
  const std::size_t frame_size = 200 * 120 * 3;
  const Bytes bytes = raw_frames(200, 120, 3);
  for (const std::size_t piece : {std::size_t{1000}, std::size_t{65536}}) {
    CAPTURE(piece);
    for (const RawFormat& format : {rgb, bgr}) {
      const FilledPipe pipe(bytes, piece);
      const auto source = open_raw_source(pipe.fd(), "stdin", format, 30);
      CHECK(source->name() == "stdin");
      CHECK(source->fps() == 30);
      const std::vector<StreamFrame> frames = read_all(*source);
      REQUIRE(frames.size() == 3);
      for (const StreamFrame& frame : frames) {
        CHECK(frame.index == &frame - frames.data());
        CHECK(frame.time_s == static_cast<double>(frame.index) / 30.0);
        CHECK(frame.image.width == 200);
        CHECK(frame.image.height == 120);
        const Bytes sent = frame_of(bytes, frame_size, frame.index);
        CHECK(frame.image.pixels == (format.pixels == RawFormat::Pixels::rgb24 ? sent : swapped_red_and_blue(sent)));
      }
    }
  }
}

TEST_CASE("frame source: a non-blocking pipe is waited on, and an empty one is an empty stream") {
  const Bytes bytes = raw_frames(4, 2, 2);
  const FilledPipe pipe(bytes, 5);
  REQUIRE(::fcntl(pipe.fd(), F_SETFL, ::fcntl(pipe.fd(), F_GETFL) | O_NONBLOCK) == 0);
  CHECK(read_all(*open_raw_source(pipe.fd(), "stdin", parse_raw_format("4x2", "rgb24"), 25)).size() == 2);

  const FilledPipe empty(Bytes{}, 1);
  CHECK(read_all(*open_raw_source(empty.fd(), "stdin", parse_raw_format("4x2", "rgb24"), 25)).empty());
}

TEST_CASE("frame source: raw input that ends inside a frame is a one-line error") {
  Bytes bytes = raw_frames(4, 3, 2);
  bytes.erase(bytes.end() - 10, bytes.end());  // (resize made GCC 12 warn of a huge memset)
  const FilledPipe pipe(bytes, 7);
  const auto source = open_raw_source(pipe.fd(), "stdin", parse_raw_format("4x3", "bgr24"), 25);
  REQUIRE(source->next());
  CHECK(test::error_of<FileError>([&] { source->next(); }) ==
        "stdin: the stream ended inside frame 1 (26 of 36 bytes)");
}

TEST_CASE("frame source: raw formats outside the bounds or misspelt are refused") {
  const RawFormat format = parse_raw_format("640x480", "bgr24");
  CHECK(format.width == 640);
  CHECK(format.height == 480);
  CHECK(format.pixels == RawFormat::Pixels::bgr24);
  CHECK(parse_raw_format("16384x4096", "rgb24").pixels == RawFormat::Pixels::rgb24);  // 2^26 pixels

  const auto refusal = [](const std::string& size, const std::string& pixels) {
    return test::error_of<std::invalid_argument>([&] { parse_raw_format(size, pixels); });
  };
  const std::string bounds = "; frames are 1 to 16384 pixels a side and at most 67108864 pixels";
  CHECK(refusal("0x480", "bgr24") == "the frame is 0x480" + bounds);
  CHECK(refusal("99999x99999", "bgr24") == "the frame is 99999x99999" + bounds);
  CHECK(refusal("16385x1", "bgr24") == "the frame is 16385x1" + bounds);
  CHECK(refusal("16384x4097", "bgr24") == "the frame is 16384x4097" + bounds);
  CHECK(refusal("640x", "bgr24") == "the raw frame size '640x' is not WIDTHxHEIGHT (e.g. 640x480)");
  for (const std::string size : {"640x480x3", "x480", "640", "", "-640x480", "+640x480", " 640x480", "640X480",
                                 "99999999999999999999x1"}) {
    CAPTURE(size);
    CHECK(refusal(size, "bgr24") == "the raw frame size '" + size + "' is not WIDTHxHEIGHT (e.g. 640x480)");
  }
  CHECK(refusal("640x480", "yuv420p") == "unknown raw pixel format 'yuv420p' (bgr24 or rgb24)");
  CHECK(refusal("640x480", "BGR24") == "unknown raw pixel format 'BGR24' (bgr24 or rgb24)");

  // The source checks a format made without the parser, and its fps.
  CHECK(test::error_of<std::invalid_argument>([] {
          open_raw_source(0, "stdin", RawFormat{0, 5, RawFormat::Pixels::rgb24}, 25);
        }) == "the frame is 0x5" + bounds);
  CHECK(test::error_of<std::invalid_argument>([] { open_raw_source(0, "stdin", RawFormat{4, 4}, 0); }) ==
        "the frame rate must be a positive number, not 0");
}
