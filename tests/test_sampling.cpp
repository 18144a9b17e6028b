#include <doctest/doctest.h>

#include "eco/io/labels.hpp"
#include "eco/io/mapped_file.hpp"
#include "eco/video/sampling.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using namespace ecocpu::video;
using Indices = std::vector<int64_t>;

// Expected values are Python's [int(tick / 2.0 + tick * k) for k in range(N)], tick = n / float(N).
TEST_CASE("sampling: test mode is upstream's tick rule") {
  CHECK(test_indices(300, 16) == Indices{9, 28, 46, 65, 84, 103, 121, 140, 159, 178, 196, 215, 234, 253, 271, 290});
  CHECK(test_indices(97, 16) == Indices{3, 9, 15, 21, 27, 33, 39, 45, 51, 57, 63, 69, 75, 81, 87, 93});
  CHECK(test_indices(10, 3) == Indices{1, 5, 8});
  CHECK(test_indices(16, 16) == Indices{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
}

TEST_CASE("sampling: test mode repeats frames evenly when the input is short") {
  CHECK(test_indices(5, 8) == Indices{0, 0, 1, 2, 2, 3, 4, 4});
  CHECK(test_indices(1, 4) == Indices{0, 0, 0, 0});
}

TEST_CASE("sampling: val mode repeats frame 0 unless the input has more frames than segments") {
  CHECK(val_indices(5, 8) == Indices(8, 0));
  CHECK(val_indices(16, 16) == Indices(16, 0));
  CHECK(val_indices(17, 16) == test_indices(17, 16));
  CHECK(val_indices(300, 16) == test_indices(300, 16));
}

TEST_CASE("sampling: random mode picks one frame inside each segment, reproducibly") {
  for (int64_t n : {16, 17, 100, 301}) {
    const Indices picked = random_indices(n, 16, 7);
    const int64_t span = n / 16;
    REQUIRE(picked.size() == 16);
    for (int64_t k = 0; k < 16; ++k) {
      CHECK(picked[k] >= k * span);
      CHECK(picked[k] < (k + 1) * span);
    }
    CHECK(random_indices(n, 16, 7) == picked);
  }
  CHECK(random_indices(300, 16, 1) != random_indices(300, 16, 2));
  CHECK(random_indices(5, 8, 3) == Indices(8, 0));
}

TEST_CASE("sampling: the sampler checks explicit frames against the input and refuses empty inputs") {
  SamplingSpec spec;
  spec.mode = SamplingMode::explicit_frames;
  spec.frames = {0, 4, 4, 2};
  const FrameSampler sample = make_sampler(spec, "clip.mp4");
  CHECK(sample(5) == Indices{0, 4, 4, 2});
  const std::string error = test::error_of<FileError>([&] { sample(4); });
  CHECK(test::contains(error, "clip.mp4: --frames asks for frame 4 but the input has 4 frames"));
  CHECK(test::contains(test::error_of<FileError>([&] { sample(0); }), "clip.mp4: the input holds no frame"));

  spec.mode = SamplingMode::val;
  spec.segments = 3;
  CHECK(make_sampler(spec, "x")(10) == Indices{1, 5, 8});
  CHECK(parse_sampling_mode("random") == SamplingMode::random);
  CHECK_THROWS_AS(parse_sampling_mode("dense"), std::invalid_argument);
}

TEST_CASE("labels: classInd.txt's numbered form and plain lists") {
  CHECK(parse_labels("1 ApplyEyeMakeup\r\n2 ApplyLipstick\n3 Archery\n") ==
        std::vector<std::string>{"ApplyEyeMakeup", "ApplyLipstick", "Archery"});
  CHECK(parse_labels("2 b\n1 a\n") == std::vector<std::string>{"a", "b"});
  CHECK(parse_labels("0 zero\n1 one\n") == std::vector<std::string>{"zero", "one"});
  // Not numbered 1..K (or 0..K-1) once each: the lines are the names.
  CHECK(parse_labels("1 a\n3 b\n") == std::vector<std::string>{"1 a", "3 b"});
  CHECK(parse_labels("1 a\n1 b\n") == std::vector<std::string>{"1 a", "1 b"});
  CHECK(parse_labels("3 point shot\nabseiling\n") == std::vector<std::string>{"3 point shot", "abseiling"});
  CHECK(parse_labels("12\n") == std::vector<std::string>{"12"});
  CHECK(parse_labels("abseiling\nair drumming\n") == std::vector<std::string>{"abseiling", "air drumming"});
}
