// ecocpu run: classify clips: video files, folders of frames or preprocessed .npy tensors.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <new>
#include <optional>
#include <set>

#include "eco/api/loading.hpp"
#include "eco/cli/commands.hpp"
#include "eco/cli/common.hpp"
#include "eco/cli/progress.hpp"
#include "eco/cli/run_output.hpp"
#include "eco/io/files.hpp"
#include "eco/io/labels.hpp"
#include "eco/io/npy.hpp"
#include "eco/random_weights.hpp"
#include "eco/video/clip.hpp"
#include "graph/plan.hpp"

namespace ecocpu::cli {

namespace {

constexpr std::size_t kMaxListFile = 64 << 20;

// --weights: one checkpoint, or with --ensemble one per member, comma-separated.
std::vector<std::string> checkpoint_list(const Args& args) {
  if (!args.has("weights")) return {};
  const std::string value = args.get("weights", "");
  if (!args.has("ensemble")) return {value};
  std::vector<std::string> paths{""};
  for (char c : value) {
    if (c == ',') paths.emplace_back();
    if (c != ',') paths.back() += c;
  }
  return paths;
}

// --list FILE: one path per line; blank lines and lines starting with '#' are skipped.
std::vector<std::string> read_input_list(const std::string& path) {
  std::vector<std::string> inputs;
  for (const std::string& line : text_lines(read_text_file(path, kMaxListFile, "input list"))) {
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    inputs.push_back(line.substr(first, line.find_last_not_of(" \t") - first + 1));
  }
  if (inputs.empty()) throw FileError(path + ": the input list names no input");
  return inputs;
}

// An output option (--save-logits, --dump-input): one file for one input, or a folder (a value
// ending in '/', or an existing folder) that gets <input name>.npy for each input.
class OutputTarget {
 public:
  OutputTarget(const Args& args, const std::string& option, const std::vector<std::string>& inputs)
      : option_(option), value_(args.get(option, "")) {
    if (!args.has(option)) return;
    if (value_.empty()) args.fail("--" + option + " needs a file or folder name");
    folder_ = value_.back() == '/' || video::input_kind(value_) == video::InputKind::frame_folder;
    if (!folder_ && inputs.size() > 1) args.fail("--" + option + " needs a folder (DIR/) for several inputs");
    if (folder_ && inputs.empty()) args.fail("--" + option + " DIR/ needs inputs to name its files");
    std::set<std::string> names;
    for (const auto& input : inputs) {
      if (!names.insert(path_for(input)).second) {
        args.fail("two inputs would both write " + path_for(input) + " (--" + option + ")");
      }
    }
  }
  bool wanted() const { return !value_.empty(); }
  std::string path_for(const std::string& input) const {
    if (!folder_) return value_;
    std::string name = input;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    name = name.substr(name.find_last_of('/') + 1);
    if (const auto dot = name.find_last_of('.'); dot != std::string::npos && dot > 0) name.resize(dot);
    return value_ + (value_.back() == '/' ? "" : "/") + name + ".npy";
  }
  const std::string& option() const { return option_; }

 private:
  std::string option_;
  std::string value_;
  bool folder_ = false;
};

// How a run shares the cores. One input: the decoder, then the network, each with all of them.
// A batch decodes the next input while the network runs on the current one: decoding a clip and
// running ECO on it cost about the same CPU time, so each side gets half the threads rather than
// both taking all and fighting over them (docs/performance.md, "Video input").
struct ThreadSplit {
  int forward = 1;
  int decode = 1;  // the decoder's threads and the loader's OpenMP threads
};

ThreadSplit thread_split(const Args& args, std::size_t inputs) {
  const int total = std::max(1, omp_get_max_threads());  // --threads, already applied
  ThreadSplit split{total, total};
  if (inputs > 1) {
    split.decode = std::max(1, total / 2);
    split.forward = std::max(1, total - split.decode);
  }
  if (args.has("decoder-threads")) split.decode = static_cast<int>(args.get_int("decoder-threads", 1, 1, 1024));
  return split;
}

struct RunSettings {
  int64_t topk = 5;
  ThreadSplit threads;
  PlanOptions engine;
  std::string engine_name;
  bool json = false;
  video::ClipOptions clip;
  std::vector<std::string> inputs;
  std::optional<OutputTarget> save_logits;
  std::optional<OutputTarget> dump_input;
  std::vector<int64_t> ensemble;  // --ensemble: each member's segment count; empty: one model
};

video::SamplingSpec sampling_spec(const Args& args) {
  video::SamplingSpec spec;
  spec.mode = video::parse_sampling_mode(args.get_choice("sampling", "test", {"test", "val", "random"}));
  spec.seed = static_cast<uint64_t>(args.get_int("sampling-seed", 0, 0, INT64_MAX));
  if (spec.mode != video::SamplingMode::random && args.has("sampling-seed")) {
    args.fail("--sampling-seed goes with --sampling random");
  }
  if (args.has("frames")) {
    if (args.has("sampling")) args.fail("give either --frames or --sampling");
    spec.mode = video::SamplingMode::explicit_frames;
    spec.frames = args.get_int_list("frames", 0, 0, INT32_MAX);
    if (static_cast<int64_t>(spec.frames.size()) > kMaxSegments) {
      args.fail("--frames lists more than " + std::to_string(kMaxSegments) + " frames");
    }
  }
  return spec;
}

// "1 member", "2 members".
std::string counted(std::size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// --ensemble N,N,...: the members' segment counts, and every flag that cannot go with it refused.
std::vector<int64_t> ensemble_members(const Args& args, const std::vector<std::string>& inputs) {
  if (!args.has("ensemble")) return {};
  std::vector<int64_t> members = args.get_int_list("ensemble", 16, 1, kMaxSegments);
  if (args.has("segments")) args.fail("--ensemble gives each member's segment count; drop --segments");
  if (args.has("frames")) {
    args.fail("--frames fixes one segment count; an ensemble samples each member's own (--sampling)");
  }
  if (args.has("save-logits")) {
    args.fail("--save-logits writes one model's logits; with --ensemble, --json gives each member's");
  }
  if (args.has("dump-input")) args.fail("--dump-input writes one network input; an ensemble makes one per member");
  if (inputs.empty()) args.fail("--ensemble needs INPUT videos or frame folders (there is no random clip for it)");
  for (const auto& input : inputs) {
    if (video::input_kind(input) == video::InputKind::npy) {
      args.fail(input + " is a .npy clip, sampled already to one segment count; --ensemble needs videos or " +
                "frame folders");
    }
  }
  const std::vector<std::string> checkpoints = checkpoint_list(args);
  if (std::find(checkpoints.begin(), checkpoints.end(), "") != checkpoints.end()) {
    args.fail("--weights '" + args.get("weights", "") + "' has an empty checkpoint name");
  }
  if (args.has("weights") && checkpoints.size() != members.size()) {
    args.fail("--ensemble lists " + counted(members.size(), "member") + " but --weights names " +
              counted(checkpoints.size(), "checkpoint"));
  }
  return members;
}

// Every flag is checked before any work: a usage error must not follow a forward pass.
RunSettings run_settings(const Args& args) {
  RunSettings s;
  if (args.has("weights") == args.has("random-weights")) {
    args.fail("give exactly one of --weights FILE and --random-weights");
  }
  s.inputs = args.positional();
  if (args.has("list")) {
    for (auto& input : read_input_list(args.get("list", ""))) s.inputs.push_back(std::move(input));
  }
  if (s.inputs.empty() && args.has("weights")) args.fail("give the INPUT to classify (a video, a frame folder or a .npy)");
  s.ensemble = ensemble_members(args, s.inputs);
  s.topk = args.get_int("topk", 5, 1, kMaxClasses);
  s.engine = engine_options(args);
  s.threads = thread_split(args, s.inputs.size());
  s.clip.decoder_threads = s.threads.decode;
  s.engine_name = args.get("engine", "fast");
  s.json = args.has("json");
  s.clip.sampling = sampling_spec(args);
  s.clip.frame_pattern = args.get("frame-pattern", video::kDefaultFramePattern);
  if (s.clip.frame_pattern.empty()) args.fail("--frame-pattern needs a pattern, e.g. img_%05d.jpg");
  std::vector<std::string> read = s.inputs;
  for (const auto& checkpoint : checkpoint_list(args)) read.push_back(checkpoint);
  for (const char* option : {"model-def", "labels", "list"}) {
    if (args.has(option)) read.push_back(args.get(option, ""));
  }
  for (const char* option : {"save-logits", "dump-input"}) {
    if (!args.has(option)) continue;
    OutputTarget target(args, option, s.inputs);
    for (const auto& input : s.inputs.empty() ? std::vector<std::string>{""} : s.inputs) {
      check_output_path(target.path_for(input), read);
    }
    (std::string(option) == "save-logits" ? s.save_logits : s.dump_input) = std::move(target);
  }
  if (s.save_logits && s.dump_input) {
    for (const auto& input : s.inputs) {
      if (s.save_logits->path_for(input) == s.dump_input->path_for(input)) {
        args.fail("--save-logits and --dump-input would both write " + s.save_logits->path_for(input));
      }
    }
  }
  return s;
}

// A loaded input, or why it could not be loaded.
struct LoadedInput {
  std::string input;
  std::vector<video::Clip> clips;  // one, or one per ensemble member; none when it failed
  std::string error;
};

// Runs `step`; a failure becomes a one-line error about `input` ("" when it succeeded). The
// seeded random clip has no name.
template <typename Step>
std::string failure_of(const std::string& input, Step step) {
  try {
    step();
  } catch (const std::bad_alloc&) {
    return (input.empty() ? "random clip" : input) + ": out of memory";
  } catch (const std::exception& e) {
    return error_naming(input, e.what());
  }
  return "";
}

// Runs `step` on the input; a failure becomes its one-line error and drops its clips.
template <typename Step>
void attempt(LoadedInput& loaded, Step step) {
  loaded.error = failure_of(loaded.input, step);
  if (!loaded.error.empty()) loaded.clips.clear();
}

// `members`: an ensemble's segment counts, whose clips come from one decode; empty for one model.
LoadedInput load_input(const std::string& input, const video::ClipOptions& options,
                       const std::vector<int64_t>& members = {}) {
  LoadedInput loaded{input, {}, ""};
  attempt(loaded, [&] {
    loaded.clips = members.empty() ? std::vector{video::load_clip(input, options)}
                                   : video::load_clips(input, options, members);
  });
  return loaded;
}

// --dump-input, once the model has been loaded: a run that fails before leaves no dump.
void dump_input(LoadedInput& loaded, const std::optional<OutputTarget>& dump) {
  if (!dump || loaded.clips.empty()) return;
  attempt(loaded, [&] { write_npy(dump->path_for(loaded.input), loaded.clips.front().frames); });
}

// The model's frame size is known from the flags unless a checkpoint, read after the first input,
// may pick the arch (C3DRes18 takes 112x112 frames, the others 224x224).
bool frame_size_known(const Args& args) { return args.has("arch") || !args.has("weights"); }

// With no --segments (and no --frames), a .npy clip brings its own frame count; other inputs are
// sampled to 16 segments. The first input is loaded here when its count is needed.
int64_t choose_segments(const Args& args, RunSettings& s, std::optional<LoadedInput>& first) {
  if (s.clip.sampling.mode == video::SamplingMode::explicit_frames) {
    const auto count = static_cast<int64_t>(s.clip.sampling.frames.size());
    if (args.has("segments") && args.get_int("segments", count, 1, kMaxSegments) != count) {
      args.fail("--segments " + args.get("segments", "") + " but --frames lists " + std::to_string(count) + " frames");
    }
    return count;
  }
  if (args.has("segments") || s.inputs.empty() || video::input_kind(s.inputs[0]) != video::InputKind::npy) {
    return args.get_int("segments", 16, 1, kMaxSegments);
  }
  video::ClipOptions any = s.clip;
  any.sampling.segments = 0;
  any.preprocess.crop_size = frame_size_known(args) ? image_size(single_model_config(args)) : 0;  // 0: any
  first = load_input(s.inputs[0], any);
  if (first->clips.empty()) return 16;
  const int64_t frames = first->clips.front().frames.dim(0);
  if (frames < 1 || frames > kMaxSegments) {
    first->error = s.inputs[0] + ": the clip holds " + std::to_string(frames) + " frames; a clip has 1 to " +
                   std::to_string(kMaxSegments);
    first->clips.clear();
    return 16;
  }
  return frames;
}

// One input's outcome as it comes: a lone input that fails is an error of the command (one line
// on stderr, nothing on stdout); in a batch a failure is reported and the batch goes on. Report and
// result: one model's (RunReport, RunResult) or an ensemble's.
template <typename Report>
class RunPrinter {
 public:
  RunPrinter(const RunSettings& s, const Report& report)
      : settings_(s), report_(report), batch_(s.inputs.size() > 1), progress_(static_cast<int64_t>(s.inputs.size())) {}

  // Returns false for a failed input.
  template <typename Result>
  bool result(const Result& r) {
    if (!batch_ && !r.error.empty()) throw FileError(r.error);
    progress_.clear();
    if (!r.error.empty()) std::cerr << "ecocpu run: " << r.error << "\n";
    if (settings_.json) {
      std::cout << run_result_json(report_, r) << std::flush;
    } else if (r.error.empty()) {
      if (!header_printed_) std::cout << run_header_text(report_);
      header_printed_ = true;
      std::cout << run_result_text(report_, r) << std::flush;
    }
    progress_.advance();
    return r.error.empty();
  }

 private:
  const RunSettings& settings_;
  const Report& report_;
  bool batch_;
  bool header_printed_ = false;
  ProgressBar progress_;
};

RunResult classify(const PreparedPlan& prepared, const LoadedModel& m, const RunSettings& s, const std::string& input,
                   const Tensor& frames, Tensor& logits) {
  RunResult r;
  r.input = input;
  r.error = failure_of(input, [&] {
    const auto start = std::chrono::steady_clock::now();
    logits = run_plan(prepared.plan, m.weights, frames);
    r.forward_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    check_logits(logits, m.weights_source);
    if (s.save_logits) write_npy(s.save_logits->path_for(input), logits);
    r.logits = &logits;
  });
  return r;
}

// Decoding the next input overlaps the forward passes of the current one; the plans are shared.
// `classify(LoadedInput&)` runs the network(s) on one input and prints the outcome: false when the
// input failed.
template <typename Classify>
bool run_batch(const RunSettings& s, std::optional<LoadedInput> first, Classify classify) {
  omp_set_num_threads(s.threads.forward);
  auto start_load = [&](std::size_t i) {
    return std::async(std::launch::async, [&s, i] {
      omp_set_num_threads(s.threads.decode);  // the loader thread's own OpenMP regions
      LoadedInput loaded = load_input(s.inputs[i], s.clip, s.ensemble);
      dump_input(loaded, s.dump_input);
      return loaded;
    });
  };
  std::future<LoadedInput> next;
  if (!first) next = start_load(0);
  bool all_ok = true;
  for (std::size_t i = 0; i < s.inputs.size(); ++i) {
    const bool preloaded = i == 0 && first.has_value();  // read before the model, not yet dumped
    LoadedInput current = preloaded ? std::move(*first) : next.get();
    if (preloaded) dump_input(current, s.dump_input);
    if (i + 1 < s.inputs.size()) next = start_load(i + 1);
    all_ok = classify(current) && all_ok;
  }
  return all_ok;
}

std::vector<std::string> labels_for(const Args& args, const LoadedModel& m) {
  if (!args.has("labels")) return {};
  return read_labels(args.get("labels", ""), m.graph.output_shape()[1]);
}

// ECO_en's members: member k (from 0) has the k-th segment count, and the k-th checkpoint or the
// random weights of seed S + k.
std::vector<ModelRequest> ensemble_requests(const Args& args, const std::vector<int64_t>& members) {
  const std::vector<std::string> checkpoints = checkpoint_list(args);
  const auto seed = static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX));
  std::vector<ModelRequest> requests(members.size());
  for (std::size_t k = 0; k < members.size(); ++k) {
    requests[k].segments = members[k];
    if (!checkpoints.empty()) requests[k].checkpoint = checkpoints[k];
    requests[k].seed = seed + k;
  }
  return requests;
}

// ECO_en's prediction: each class's softmax probability, averaged over the members.
std::vector<double> average_probabilities(const std::vector<Tensor>& logits) {
  std::vector<double> average(static_cast<std::size_t>(logits.front().dim(1)), 0.0);
  for (const Tensor& member : logits) {
    const std::vector<double> p = softmax(member.data(), member.dim(1));
    for (std::size_t c = 0; c < average.size(); ++c) average[c] += p[c];
  }
  for (double& v : average) v /= static_cast<double>(logits.size());
  return average;
}

// The members are kept, with their plans, for the whole batch.
struct Ensemble {
  std::vector<LoadedModel> models;
  std::vector<PreparedPlan> plans;
};

EnsembleResult classify_ensemble(const Ensemble& e, const RunSettings& s, const LoadedInput& current,
                                 std::vector<Tensor>& logits) {
  EnsembleResult r{current.input, {}, {}, current.error};
  if (!r.error.empty()) return r;
  for (std::size_t k = 0; k < current.clips.size(); ++k) {
    RunResult member = classify(e.plans[k], e.models[k], s, current.input, current.clips[k].frames, logits[k]);
    member.clip = &current.clips[k];
    if (!member.error.empty()) return EnsembleResult{current.input, {}, {}, member.error};
    r.members.push_back(member);
  }
  r.average = average_probabilities(logits);
  return r;
}

int run_ensemble(const Args& args, RunSettings& s) {
  Ensemble e;
  e.models = load_models(args, ensemble_requests(args, s.ensemble));
  const std::vector<std::string> labels = labels_for(args, e.models.front());
  s.clip.preprocess = video::preprocess_spec_for(e.models.front().graph.input_shape()[2]);
  EnsembleReport report;
  for (LoadedModel& m : e.models) {
    e.plans.push_back(prepare_plan(m, s.engine));
    report.members.push_back(RunReport{&m, s.engine_name, e.plans.back().ms, s.topk, &labels});
  }
  RunPrinter printer(s, report);
  std::vector<Tensor> logits(e.models.size());
  const bool all_ok = run_batch(s, std::nullopt, [&](const LoadedInput& current) {
    return printer.result(classify_ensemble(e, s, current, logits));
  });
  return all_ok ? 0 : 1;
}

}  // namespace

int cmd_run(const std::vector<std::string>& argv) {
  Args args("run",
            with(model_options(false),
                 {{"weights", "FILE", "a PyTorch checkpoint (.pth / .pth.tar, zip or legacy format); --ensemble: A,B,..."},
                  {"random-weights", "", "use seeded random weights instead of a checkpoint"},
                  {"seed", "S", "seed for the random weights and random clip (default 1); --ensemble member k: S + k"},
                  {"ensemble", "N,N,...", "ECO_en: one model per segment count, e.g. 16,20,24,32, averaged (below)"},
                  {"list", "FILE", "more inputs, one path per line ('#' starts a comment line)"},
                  {"sampling", "MODE", "test (default), val or random: upstream's frame sampling rules"},
                  {"sampling-seed", "S", "seed for --sampling random (default 0)"},
                  {"frames", "I,J,...", "run on exactly these 0-based frames (one per segment)"},
                  {"frame-pattern", "P", "frame file names in a folder, printf style (default img_%05d.jpg)"},
                  {"dump-input", "OUT.npy|DIR/", "write the network input, float32 (T, 3, S, S); S = 224 (C3DRes18 112)"},
                  {"save-logits", "OUT.npy|DIR/", "write the raw logits, float32 (1, K)"},
                  {"labels", "FILE", "class names, one per line, or classInd.txt's '1 Name' lines"},
                  {"topk", "K", "how many classes to print (default 5)"},
                  {"engine", "E", "fast (GEMM kernels, fused; default) or reference (plain kernels)"},
                  no_fuse_option(),
                  precision_option(),
                  {"threads", "N", "worker threads (default: all cores)"},
                  {"decoder-threads", "N", "threads decoding inputs (default: all for one input, half in a batch)"},
                  {"json", "", "print one JSON object per input, one per line"},
                  max_memory_option()}),
            "[INPUT...]");
  if (!parse_or_help(args, argv,
                     "Runs ECO on clips and prints the top classes of each.\n"
                     "An INPUT is a video file (any container and codec FFmpeg reads), a folder of\n"
                     "frames (img_00001.jpg, ...), or a preprocessed float32 .npy (T, 3, S, S), S the\n"
                     "model's image size (224; C3DRes18 112):\n"
                     "T frames, BGR 0-255 minus the mean (104, 117, 128). Videos and folders are\n"
                     "sampled and preprocessed as upstream's test pipeline does. With several inputs\n"
                     "a failed input is reported and the others still run (exit 1 at the end).\n"
                     "Without INPUT, with --random-weights, the clip is seeded random.\n"
                     "\n"
                     "--ensemble runs ECO_en: a model per listed segment count (duplicates allowed,\n"
                     "one count is a one-model ensemble), each on its own sampling of the input\n"
                     "(--sampling applies to each; every sampled frame is decoded once); the\n"
                     "prediction is the mean of the members' softmax probabilities. Give\n"
                     "--weights A,B,... (one checkpoint per member, in order, each deciding its\n"
                     "arch and classes; all must share their classes) or --random-weights (member\n"
                     "k, from 0, gets seed S + k). Inputs must be videos or frame folders; --frames,\n"
                     "--segments, --save-logits and --dump-input do not go with it (--json gives\n"
                     "each member's logits). The memory check counts all members together."))
    return 0;
  RunSettings s = run_settings(args);
  if (!s.ensemble.empty()) return run_ensemble(args, s);
  std::optional<LoadedInput> first;
  const int64_t segments = choose_segments(args, s, first);
  // A lone input that cannot be read is reported before a checkpoint is loaded for it.
  if (first && first->clips.empty() && s.inputs.size() == 1) throw FileError(first->error);
  s.clip.sampling.segments = segments;

  LoadedModel m = load_model(args, segments);
  const std::vector<std::string> labels = labels_for(args, m);
  s.clip.preprocess = video::preprocess_spec_for(m.graph.input_shape()[2]);
  // Read before the model at any frame size: checked (or its error given the size) now.
  if (first && !frame_size_known(args) &&
      (first->clips.empty() || first->clips.front().frames.dim(2) != s.clip.preprocess.crop_size)) {
    first = load_input(s.inputs[0], s.clip);
  }
  const PreparedPlan prepared = prepare_plan(m, s.engine);
  const RunReport report{&m, s.engine_name, prepared.ms, s.topk, &labels};

  if (s.inputs.empty()) {
    const auto seed = static_cast<uint64_t>(args.get_int("seed", 1, 0, INT64_MAX));
    const Tensor input = random_input(m.graph.input_shape(), seed + 1);
    if (s.dump_input) write_npy(s.dump_input->path_for(""), input);
    Tensor logits;
    RunResult r = classify(prepared, m, s, "", input, logits);
    if (!r.error.empty()) throw FileError(r.error);
    std::cout << (s.json ? run_result_json(report, r) : run_header_text(report) + run_result_text(report, r));
    return 0;
  }
  RunPrinter printer(s, report);
  const bool all_ok = run_batch(s, std::move(first), [&](const LoadedInput& current) {
    RunResult r{current.input, nullptr, nullptr, 0, current.error};
    Tensor logits;
    if (!current.clips.empty()) {
      r = classify(prepared, m, s, current.input, current.clips.front().frames, logits);
      r.clip = &current.clips.front();
    }
    return printer.result(r);
  });
  return all_ok ? 0 : 1;
}

}  // namespace ecocpu::cli
