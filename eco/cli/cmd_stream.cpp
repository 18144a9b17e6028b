// ecocpu stream: online recognition on a stream of frames (a video file, a frame folder or raw
// frames on stdin), a prediction every N frames from the working memory (eco/stream).
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>

#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/cli/stream_output.hpp"
#include "eco/io/labels.hpp"
#include "eco/stream/live_stream.hpp"
#include "eco/video/clip.hpp"

namespace ecocpu::cli {

namespace {

constexpr double kMaxFps = 1000;

struct StreamSettings {
  std::string input;
  int64_t segments = 16;
  stream::StreamOptions stream;
  PlanOptions engine;
  int64_t topk = 5;
  bool json = false;
  double fps = 25;
  int decoder_threads = 1;
};

// Every flag is checked before any work.
StreamSettings stream_settings(const Args& args) {
  StreamSettings s;
  if (args.has("weights") == args.has("random-weights")) args.fail("give exactly one of --weights FILE and --random-weights");
  if (args.positional().size() != 1) args.fail("give one INPUT: a video file, a frame folder, or - for raw frames on stdin");
  s.input = args.positional()[0];
  const bool from_stdin = s.input == "-";
  if (from_stdin != args.has("raw")) args.fail(from_stdin ? "raw frames on stdin need --raw WxH" : "--raw goes with INPUT - (stdin)");
  if (args.has("pixel-format") && !from_stdin) args.fail("--pixel-format goes with --raw");
  if (args.has("fps") && !from_stdin && video::input_kind(s.input) == video::InputKind::video) {
    args.fail("--fps is for frame folders and stdin; a video has its own rate");
  }
  if (from_stdin && args.has("realtime")) args.fail("--realtime paces files; stdin is live as it comes");
  s.segments = args.get_int("segments", 16, 1, kMaxSegments);
  s.stream.memory = stream::parse_memory_kind(args.get_choice("memory", "paper", {"paper", "decay"}));
  if (s.stream.memory == stream::MemoryKind::decay) {
    if (s.segments % 16 != 0) args.fail("--memory decay needs --segments a multiple of 16 (its windows thin to N/2 ... N/16)");
    if (args.has("sampling-seed")) args.fail("--sampling-seed goes with --memory paper (decay draws nothing)");
  }
  s.stream.sampling_seed = static_cast<uint64_t>(args.get_int("sampling-seed", 0, 0, INT64_MAX));
  s.stream.realtime = args.has("realtime");
  s.stream.live = s.stream.realtime || from_stdin;
  s.engine = engine_options(args);
  s.topk = args.get_int("topk", 5, 1, kMaxClasses);
  s.json = args.has("json");
  s.fps = args.get_double("fps", 25, 1e-3, kMaxFps);
  s.decoder_threads = static_cast<int>(args.get_int("decoder-threads", 1, 1, 1024));
  return s;
}

std::shared_ptr<video::FrameSource> open_source(const Args& args, const StreamSettings& s) {
  if (s.input == "-") {
    video::RawFormat format;
    try {
      format = video::parse_raw_format(args.get("raw", ""), args.get("pixel-format", "bgr24"));
    } catch (const std::invalid_argument& e) {
      args.fail(std::string("--raw/--pixel-format: ") + e.what());
    }
    return video::open_raw_source(0, "stdin", format, s.fps);
  }
  if (video::input_kind(s.input) == video::InputKind::frame_folder) {
    return video::open_folder_source(s.input, args.get("frame-pattern", video::kDefaultFramePattern), s.fps);
  }
  if (video::input_kind(s.input) == video::InputKind::npy) throw FileError(s.input + ": a .npy clip is not a stream; give a video, a frame folder or -");
  return video::open_video_source(s.input, s.decoder_threads);
}

}  // namespace

int cmd_stream(const std::vector<std::string>& argv) {
  Args args("stream",
            with(model_options(false),
                 {{"weights", "FILE", "a PyTorch checkpoint (.pth / .pth.tar, zip or legacy format)"},
                  {"random-weights", "", "use seeded random weights instead of a checkpoint"},
                  {"seed", "S", "seed for the random weights (default 1)"},
                  {"memory", "M", "paper (default: half the memory and half the new frames) or decay (the authors' demo)"},
                  {"sampling-seed", "S", "seed for --memory paper's random halves (default 0)"},
                  {"realtime", "", "pace a file or folder by its frames' times as a camera would; skip updates when behind"},
                  {"raw", "WxH", "INPUT - is raw frames of this size on stdin (ffmpeg -f rawvideo)"},
                  {"pixel-format", "F", "bgr24 (default) or rgb24, for --raw"},
                  {"fps", "F", "frames per second of a frame folder or stdin (default 25)"},
                  {"frame-pattern", "P", "frame file names in a folder, printf style (default img_%05d.jpg)"},
                  {"labels", "FILE", "class names, one per line, or classInd.txt's '1 Name' lines"},
                  {"topk", "K", "how many classes to print per update (default 5)"},
                  {"json", "", "one JSON object per update, one per line, then a summary object"},
                  {"engine", "E", "fast (default) or reference"},
                  no_fuse_option(),
                  precision_option(),
                  {"threads", "N", "threads for the network (default: all cores)"},
                  {"decoder-threads", "N", "FFmpeg's decoding threads (default 1: it runs beside the network)"},
                  max_memory_option()}),
            "INPUT");
  if (!parse_or_help(args, argv,
                     "Online recognition as in the ECO paper: frames arrive one by one; every N\n"
                     "(--segments) frames the working memory of N frames is renewed and ECO runs on it,\n"
                     "and the prediction averages the updates' probabilities (--memory decay: sums their\n"
                     "logits, as the authors' demo). A frame's 2D features are computed once\n"
                     "and kept while it stays in the memory: after the first update only the new frames\n"
                     "go through the 2D network. INPUT is a video file, a folder of frames, or - for raw\n"
                     "frames on stdin (ffmpeg ... -f rawvideo -pix_fmt bgr24 -). stdin and --realtime\n"
                     "are live: when the network falls behind, updates are skipped and counted."))
    return 0;
  const StreamSettings s = stream_settings(args);
  const std::shared_ptr<video::FrameSource> source = open_source(args, s);
  LoadedModel m = load_model(args, s.segments);
  std::vector<std::string> labels;
  if (args.has("labels")) labels = read_labels(args.get("labels", ""), m.graph.output_shape()[1]);
  stream::StreamOptions options = s.stream;
  options.preprocess = video::preprocess_spec_for(m.graph.input_shape()[2]);
  const auto start = std::chrono::steady_clock::now();
  stream::OnlineModel model(m.graph, std::move(m.weights), s.engine);
  const double prepare_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const StreamReport report{&m, options.memory, s.topk, &labels};
  // The header waits for the first update: a stream too short for one gives its error line alone.
  const stream::StreamSummary summary = stream::run_stream(source, model, options, [&](const stream::UpdateReport& u) {
    check_logits(*u.logits, m.weights_source);
    if (!s.json && u.update == 0) std::cout << stream_header_text(report, source->name(), source->fps(), prepare_ms);
    const double latency =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - u.arrival).count();
    std::cout << (s.json ? stream_update_json(report, u, latency) : stream_update_text(report, u, latency)) << std::flush;
    return latency;
  });
  std::cout << (s.json ? stream_summary_json(report, summary) : stream_summary_text(report, summary)) << std::flush;
  return 0;
}

}  // namespace ecocpu::cli
