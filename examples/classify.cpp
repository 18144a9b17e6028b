// classify: ecocpu's embedding API in one small program. It loads a model once (a PyTorch
// checkpoint, or seeded random weights when none is given), then classifies every clip named on
// the command line (video files, frame folders or preprocessed .npy) and prints each one's top
// classes. A clip that fails is reported and the others still run (exit 1 at the end).
//
//   classify [--weights FILE] [--seed S] [--arch A] [--segments N] [--classes K]
//            [--topk K] [--labels FILE] CLIP...
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <ecocpu/ecocpu.hpp>

namespace {

struct Options {
  std::string weights;  // empty: random weights
  uint64_t seed = 1;
  ecocpu::ModelOptions model;
  int64_t topk = 5;
  std::string labels;
  std::vector<std::string> clips;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "classify: " << problem << "\n"
            << "usage: classify [--weights FILE] [--seed S] [--arch A] [--segments N] [--classes K]"
               " [--topk K] [--labels FILE] CLIP...\n";
  std::exit(2);
}

// A flag's whole-number value, at least `least`; anything else is a usage error (exit 2).
int64_t number(const std::string& flag, const std::string& text, int64_t least) {
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value >= least) return value;
  } catch (const std::exception&) {
  }
  usage(flag + " needs a whole number of at least " + std::to_string(least) + ", not '" + text + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      o.clips.push_back(arg);
      continue;
    }
    if (i + 1 >= argc) usage(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--weights") o.weights = value;
    else if (arg == "--seed") o.seed = static_cast<uint64_t>(number(arg, value, 0));
    else if (arg == "--arch") o.model.arch = value;
    else if (arg == "--segments") o.model.segments = number(arg, value, 1);
    else if (arg == "--classes") o.model.classes = number(arg, value, 1);
    else if (arg == "--topk") o.topk = number(arg, value, 1);
    else if (arg == "--labels") o.labels = value;
    else usage("unknown option " + arg);
  }
  if (o.clips.empty()) usage("name at least one CLIP (a video, a frame folder or a .npy)");
  return o;
}

void print(const std::string& clip, const std::vector<ecocpu::Prediction>& top, const std::vector<std::string>& labels) {
  std::printf("== %s\n", clip.c_str());
  for (std::size_t rank = 0; rank < top.size(); ++rank) {
    const ecocpu::Prediction& p = top[rank];
    std::printf("  #%zu  class %lld  probability %.6f  logit %.9g", rank + 1, static_cast<long long>(p.index),
                p.probability, static_cast<double>(p.logit));
    if (!labels.empty()) std::printf("  %s", labels[static_cast<std::size_t>(p.index)].c_str());
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    // Loading and preparing the plan happen once; every clip below reuses them.
    ecocpu::Classifier model = o.weights.empty() ? ecocpu::Classifier::random(o.model, o.seed)
                                                 : ecocpu::Classifier::load(o.weights, o.model);
    const std::vector<std::string> labels = o.labels.empty() ? std::vector<std::string>{} : model.read_labels(o.labels);
    std::printf("model: %s, %lld segments of %lldx%lld, %lld classes, weights %s\n", model.arch().c_str(),
                static_cast<long long>(model.segments()), static_cast<long long>(model.image_size()),
                static_cast<long long>(model.image_size()), static_cast<long long>(model.classes()),
                model.weights_source().c_str());
    int failed = 0;
    for (const std::string& clip : o.clips) {
      try {
        print(clip, model.classify(clip, o.topk), labels);
      } catch (const ecocpu::Error& e) {
        std::fflush(stdout);
        std::cerr << "classify: " << e.what() << "\n";  // one clip's failure; the rest still run
        ++failed;
      }
    }
    return failed == 0 ? 0 : 1;
  } catch (const ecocpu::Error& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return 1;
  }
}
