// Video files through FFmpeg's libraries, checked against the `ffmpeg` command's own decode of the
// same file: the frame count of `-vsync passthrough` (every decoded frame, in presentation order)
// and each sampled frame's RGB bytes. The clips are encoded here, from lavfi's test sources.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "eco/io/mapped_file.hpp"
#include "eco/video/video_file.hpp"
#include "test_support.hpp"
#include "video_support.hpp"

using namespace ecocpu;
using namespace ecocpu::video;
using namespace ecocpu::test;

namespace {

// The `ffmpeg` command's decode: every frame (auto-rotated), RGB24, one after another.
struct Reference {
  int64_t width = 0, height = 0, frame_count = 0;
  Bytes rgb;

  Bytes frame(int64_t k) const {
    const int64_t size = width * height * 3;
    return Bytes(rgb.begin() + k * size, rgb.begin() + (k + 1) * size);
  }
};

Reference reference_decode(const TempDir& dir, const std::string& video, int64_t width, int64_t height) {
  const std::string out = dir / "reference.rgb";
  // Quiet: a spoiled input's decoding errors are expected, and a failure shows in the exit code.
  ffmpeg("-i " + video + " -vsync passthrough -f rawvideo -pix_fmt rgb24 " + out, "quiet");
  Reference ref{width, height, 0, read_bytes(out)};
  REQUIRE(ref.rgb.size() % (width * height * 3) == 0);
  ref.frame_count = static_cast<int64_t>(ref.rgb.size()) / (width * height * 3);
  return ref;
}

// ECO's test-mode rule, int(tick / 2 + tick * k) with tick = n / segments.
FrameSampler segments(int64_t count) {
  return [count](int64_t n) {
    std::vector<int64_t> indices;
    const double tick = static_cast<double>(n) / static_cast<double>(count);
    for (int64_t k = 0; k < count; ++k) {
      indices.push_back(static_cast<int64_t>(tick / 2 + tick * static_cast<double>(k)));
    }
    return indices;
  };
}

SampledFrames decode(const std::string& path, const FrameSampler& sample, int threads = 0) {
  VideoDecodeOptions options;
  options.threads = threads;
  return decode_video(MappedFile::open(path), sample, options);
}

// Every sampled frame is the `ffmpeg` command's frame of the same index, byte for byte.
void check_frames_match(const SampledFrames& got, const Reference& ref) {
  CHECK(got.frame_count == ref.frame_count);
  std::set<int64_t> distinct(got.indices.begin(), got.indices.end());
  CHECK(got.images.size() == distinct.size());
  for (const auto& [index, image] : got.images) {
    CAPTURE(index);
    REQUIRE(index < ref.frame_count);
    CHECK(image.width == ref.width);
    CHECK(image.height == ref.height);
    CHECK(image.pixels == ref.frame(index));
  }
}

// The clip decodes to the `ffmpeg` command's frames, sampled sparsely and densely, with FFmpeg's
// automatic thread count and with one thread.
void check_clip(const TempDir& dir, const std::string& video, int64_t width, int64_t height, int64_t frames) {
  INFO(video);
  const Reference ref = reference_decode(dir, video, width, height);
  CHECK(ref.frame_count == frames);
  check_frames_match(decode(video, segments(8)), ref);
  check_frames_match(decode(video, segments(8), 1), ref);
  check_frames_match(decode(video, every_frame()), ref);
}

std::string error_decoding(const std::string& path) {
  return test::error_of<FileError>([&] { decode(path, segments(4)); });
}

std::string error_decoding_bytes(const Bytes& bytes) {
  return test::error_of<FileError>([&] { decode_video(MappedFile::from_bytes("bytes.bin", bytes), segments(4)); });
}

}  // namespace

TEST_CASE("video file: the ffmpeg command is installed") {
  REQUIRE_MESSAGE(have_ffmpeg(), "the video tests need the `ffmpeg` command on PATH (apt-get install ffmpeg)");
}

TEST_CASE("video file: common codecs and containers decode as the ffmpeg command decodes them") {
  const TempDir dir;
  // H.264 with x264's defaults (B-frames, reordered), MPEG-4 Part 2 with and without B-frames in
  // AVI (which keeps no presentation times for B-frames), VP9 in WebM (no frame count in the
  // container), full-range 4:2:2 Motion JPEG in Matroska, MPEG-2 in a transport stream.
  check_clip(dir, make_clip(dir, "h264.mp4", "64x48", 40, "-c:v libx264 -pix_fmt yuv420p"), 64, 48, 40);
  check_clip(dir, make_clip(dir, "mpeg4.avi", "64x48", 30, "-c:v mpeg4 -q:v 5"), 64, 48, 30);
  check_clip(dir, make_clip(dir, "mpeg4_b.avi", "64x48", 30, "-c:v mpeg4 -q:v 5 -bf 2"), 64, 48, 30);
  check_clip(dir, make_clip(dir, "vp9.webm", "64x48", 30, kVp9), 64, 48, 30);
  check_clip(dir, make_clip(dir, "mjpeg.mkv", "64x48", 30, "-c:v mjpeg -pix_fmt yuvj422p"), 64, 48, 30);
  check_clip(dir, make_clip(dir, "mpeg2.ts", "64x48", 30, "-c:v mpeg2video -bf 2"), 64, 48, 30);
}

TEST_CASE("video file: odd and portrait sizes, variable frame rate, fewer frames than segments") {
  const TempDir dir;
  check_clip(dir, make_clip(dir, "odd444.mp4", "171x129", 30, "-c:v libx264 -pix_fmt yuv444p"), 171, 129,
             30);
  check_clip(dir, make_clip(dir, "odd420.webm", "171x129", 30, kVp9 + " -pix_fmt yuv420p"), 171, 129, 30);
  check_clip(dir, make_clip(dir, "portrait.mp4", "48x64", 30, "-c:v libx264"), 48, 64, 30);
  // Frame k shown at k^2 / 100 s: the gaps grow, and no frame is dropped or repeated.
  check_clip(dir, make_clip(dir, "vfr.mkv", "64x48", 40, "-vf setpts=N*N/100/TB -vsync vfr -c:v libx264"), 64, 48,
             40);

  const std::string short_clip = make_clip(dir, "short.mp4", "64x48", 5, "-c:v libx264");
  const SampledFrames got = decode(short_clip, segments(8));
  CHECK(got.indices == std::vector<int64_t>{0, 0, 1, 2, 2, 3, 4, 4});
  check_frames_match(got, reference_decode(dir, short_clip, 64, 48));
}

TEST_CASE("video file: the display matrix rotates frames as the ffmpeg command's autorotate does") {
  const TempDir dir;
  const std::string h264 = make_clip(dir, "upright.mp4", "64x48", 20, "-c:v libx264");
  const std::string odd = make_clip(dir, "odd.mp4", "171x129", 20, kVp9 + " -pix_fmt yuv420p");
  for (int degrees : {90, 180, 270}) {
    CAPTURE(degrees);
    for (const auto& [source, width, height] : {std::tuple{h264, 64, 48}, std::tuple{odd, 171, 129}}) {
      const std::string rotated = dir / "rotated.mp4";
      ffmpeg("-i " + source + " -c copy -metadata:s:v:0 rotate=" + std::to_string(degrees) + " " + rotated);
      const bool quarter = degrees != 180;
      const Reference ref = reference_decode(dir, rotated, quarter ? height : width, quarter ? width : height);
      const SampledFrames got = decode(rotated, segments(4));
      // FFmpeg 5.1's mov muxer stores the tag as a counter-clockwise rotation of the display
      // matrix (ffprobe reports "rotation=90" for rotate=90), which autorotate undoes by turning
      // the frames clockwise by 360 - D degrees; the images checked are the command's own.
      CHECK(got.rotation_degrees == (360 - degrees) % 360);
      check_frames_match(got, ref);
    }
  }
  CHECK(decode(h264, segments(2)).rotation_degrees == 0);
}

TEST_CASE("video file: frames after a size change are scaled to the first frame's size, as the ffmpeg command does") {
  const TempDir dir;
  const std::string first = make_clip(dir, "a.h264", "64x48", 10, "-c:v libx264");
  const std::string second = make_clip(dir, "b.h264", "48x64", 10, "-c:v libx264");
  Bytes joined = read_bytes(first);
  const Bytes tail = read_bytes(second);
  joined.insert(joined.end(), tail.begin(), tail.end());
  write_bytes(dir / "joined.h264", joined);
  const SampledFrames got = decode(dir / "joined.h264", every_frame());
  REQUIRE(got.frame_count == 20);
  check_frames_match(got, reference_decode(dir, dir / "joined.h264", 64, 48));
}


TEST_CASE("video file: when decoding shows the packet count wrong, the decoded frames are counted and sampled again") {
  const TempDir dir;
  Bytes avi = read_bytes(make_clip(dir, "mjpeg.avi", "64x48", 30, "-c:v mjpeg"));
  spoil_avi_frame(avi, 12);  // frame 12 no longer decodes: 29 frames, not 30
  const std::string spoiled = dir / "spoiled.avi";
  write_bytes(spoiled, avi);
  const Reference ref = reference_decode(dir, spoiled, 64, 48);
  REQUIRE(ref.frame_count == 29);

  // Whether the spoiled frame is sampled or not, the frames are numbered as the ffmpeg command
  // numbers them, and the sampler is asked again with the decoded count.
  for (const FrameSampler& sampler : {every_frame(), segments(4)}) {
    std::vector<int64_t> counts_asked;
    const auto recording = [&](int64_t n) {
      counts_asked.push_back(n);
      return sampler(n);
    };
    check_frames_match(decode(spoiled, recording), ref);
    CHECK(counts_asked == std::vector<int64_t>{30, 29});
  }
}

TEST_CASE("video file: a truncated file decodes the frames the ffmpeg command decodes, or fails with one line") {
  const TempDir dir;
  // With the index first (faststart), a cut keeps the index of frames whose data is gone; with it
  // last, the cut loses the index.
  for (const std::string options : {"-c:v libx264 -movflags +faststart", "-c:v libx264"}) {
    const Bytes whole = read_bytes(make_clip(dir, "whole.mp4", "64x48", 40, options));
    for (double kept : {0.3, 0.6, 0.9}) {
      CAPTURE(options);
      CAPTURE(kept);
      const std::string cut = dir / "cut.mp4";
      const auto kept_bytes = static_cast<std::ptrdiff_t>(static_cast<double>(whole.size()) * kept);
      write_bytes(cut, Bytes(whole.begin(), whole.begin() + kept_bytes));
      try {
        const SampledFrames got = decode(cut, every_frame());
        const Reference ref = reference_decode(dir, cut, 64, 48);
        CHECK(ref.frame_count < 40);
        check_frames_match(got, ref);
        // Sampling fewer frames reads less of the stream: the packets past the last sampled
        // frame may count a frame the decoder would refuse, but the frames are the same.
        for (const auto& [index, image] : decode(cut, segments(4)).images) {
          REQUIRE(index < ref.frame_count);
          CHECK(image.pixels == ref.frame(index));
        }
      } catch (const FileError& e) {
        check_one_line_error(e.what(), cut);
      }
    }
  }
}

TEST_CASE("video file: inputs that are no video are refused with one line naming the file") {
  const TempDir dir;
  Bytes noise(4096);
  uint32_t state = 12345;
  for (auto& b : noise) b = static_cast<uint8_t>((state = state * 1664525 + 1013904223) >> 24);
  check_one_line_error(error_decoding_bytes(noise), "bytes.bin");
  check_one_line_error(error_decoding_bytes(Bytes{'x'}), "bytes.bin");

  const std::string wav = dir / "tone.wav";
  ffmpeg("-f lavfi -i sine=duration=0.2 " + wav);
  CHECK(error_decoding(wav) == wav + ": no video stream");

  // Playlists and lists naming other files: the named file is there and is a video, and is never
  // opened.
  const std::string segment = make_clip(dir, "segment.ts", "64x48", 10, "-c:v mpeg2video");
  const std::string clip = make_clip(dir, "clip.mp4", "64x48", 10, "-c:v libx264");
  const std::string playlist = dir / "list.m3u8";
  std::ofstream(playlist) << "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.4,\nsegment.ts\n#EXT-X-ENDLIST\n";
  const std::string concat = dir / "list.ffconcat";
  std::ofstream(concat) << "ffconcat version 1.0\nfile clip.mp4\nfile " << clip << "\n";
  for (const std::string& list : {playlist, concat}) check_one_line_error(error_decoding(list), list);
  // A master playlist: the HLS demuxer asks for the media playlist next to it, and is refused.
  const std::string master = dir / "master.m3u8";
  std::ofstream(master) << "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nlist.m3u8\n";
  CHECK(error_decoding(master) == master + ": refers to another file or URL (list.m3u8); only the file itself is read");
}

namespace {

// A YUV4MPEG2 stream: raw 4:2:0 frames whose size only the header declares.
Bytes y4m(int64_t width, int64_t height, int frames, std::size_t frame_bytes) {
  const std::string header =
      "YUV4MPEG2 W" + std::to_string(width) + " H" + std::to_string(height) + " F25:1 C420jpeg\n";
  Bytes bytes(header.begin(), header.end());
  for (int f = 0; f < frames; ++f) {
    const std::string marker = "FRAME\n";
    bytes.insert(bytes.end(), marker.begin(), marker.end());
    bytes.resize(bytes.size() + frame_bytes, static_cast<uint8_t>(16 + 40 * f));
  }
  return bytes;
}

}  // namespace

TEST_CASE("video file: a declared frame size outside the bounds is refused before decoding") {
  CHECK(contains(error_decoding_bytes(y4m(9000, 9000, 1, 64)), "bytes.bin: the frame is 9000x9000; frames are"));
  CHECK(contains(error_decoding_bytes(y4m(16385, 2, 1, 64)), "bytes.bin: the frame is 16385x2; frames are"));
  // Within them, the same stream decodes.
  const SampledFrames got =
      decode_video(MappedFile::from_bytes("small.y4m", y4m(4, 2, 3, 4 * 2 + 2 * 2)), every_frame());
  CHECK(got.frame_count == 3);
  REQUIRE(got.images.count(1) == 1);
  CHECK(got.images.at(1).width == 4);
  CHECK(got.images.at(1).height == 2);
}
