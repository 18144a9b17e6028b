#pragma once
// ecocpu's embedding API: load an ECO model (a PyTorch checkpoint or seeded random weights),
// prepare it once, then classify clips with it. This is the one header an application includes;
// it needs only the standard library (C++17 or later) and hides the engine behind a pointer.
//
//   ecocpu::ModelOptions options;            // ECO Lite, 16 segments
//   auto model = ecocpu::Classifier::load("ECO_Lite_rgb_model_Kinetics.pth.tar", options);
//   for (const auto& p : model.classify("video.mp4", 5)) std::cout << p.index << " " << p.probability << "\n";
//
// Errors: every call that can fail throws ecocpu::Error, whose message is one line naming the
// file (or option) and the cause, as the `ecocpu` command prints it. Bad input (a broken
// checkpoint, video, frame or .npy, an impossible configuration) never crashes the process; running
// out of memory is reported as an Error too.
//
// Threads: a Classifier runs one input at a time. Its prepared plan keeps one activation arena
// between forward passes, so a logits() / classify() that starts while another runs on
// another thread throws Error. Separate Classifier objects share nothing mutable and run
// concurrently: use one per thread, or a mutex. load_input() and the const accessors only read
// the model and may run on another thread meanwhile (e.g. decoding the next clip during a
// forward pass).
// The forward pass uses OpenMP: OMP_NUM_THREADS or omp_set_num_threads() on the calling thread
// sets how many cores it takes (default: all).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ecocpu {

// The one exception type of this API.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The model to build. The defaults are the `ecocpu` command's (ECO Lite, 16 segments).
struct ModelOptions {
  // "ECO" (ECO Lite), "ECOfull" or "C3DRes18". Empty: a checkpoint's saved arch when it is one of
  // these, else "ECO".
  std::string arch;
  int64_t segments = 16;  // frames per clip, 1 to 1024 (the arch may refuse some: ECO Lite takes no 6)
  // Classifier outputs. 0: a checkpoint's own classifier decides (random weights: 400). Given with a
  // checkpoint, it must match the checkpoint's classifier.
  int64_t classes = 0;
  // TSN's dropout before `new_fc`, random weights only: 0 keeps the definition's last layer as the
  // classifier. A checkpoint's tensor names decide its layout instead. Inference ignores dropout.
  double dropout = 0.5;
  std::string model_def;   // a YAML definition in the upstream schema; empty: the built-in one
  int64_t image_size = 0;  // the input frame's side; 0: the arch's (224; C3DRes18 112)
  bool reference_engine = false;  // the plain reference kernels instead of the fast engine
  // Refuse, before allocating the weights, a model whose weights and peak activations need more.
  // 0: the memory the machine has available (MemAvailable).
  int64_t max_memory_mb = 0;
};

// How a video file or a frame folder becomes the clip (a .npy is taken as it is).
struct InputOptions {
  std::string sampling = "test";  // upstream's frame sampling rule: "test", "val" or "random"
  uint64_t sampling_seed = 0;     // for "random"
  std::string frame_pattern = "img_%05d.jpg";  // frame file names in a folder, numbered from 1
  int decoder_threads = 0;        // FFmpeg's decoding threads; 0: FFmpeg picks
};

// One class of a ranking.
struct Prediction {
  int64_t index = 0;         // the class number, 0-based (the logit's position)
  float logit = 0;
  double probability = 0;    // softmax over all the classes
};

class Classifier {
 public:
  // Reads a PyTorch checkpoint (.pth / .pth.tar; torch.save's zip or legacy format; a training
  // dict or a bare state_dict), builds the model it fits and prepares it (BatchNorm folding, weight
  // packing: done once here). Throws Error for an unreadable file, a tensor the model lacks or
  // does not take (all of them in one message), a class count other than options.classes, a bad
  // option or definition, or a model larger than options.max_memory_mb.
  static Classifier load(const std::string& checkpoint_path, const ModelOptions& options = {});
  // The same model with seeded random weights (the `ecocpu run --random-weights --seed` ones), for
  // trying the pipeline without a checkpoint. Throws Error for a bad option or definition.
  static Classifier random(const ModelOptions& options = {}, uint64_t seed = 1);

  Classifier(Classifier&&) noexcept;
  Classifier& operator=(Classifier&&) noexcept;
  ~Classifier();
  // A moved-from Classifier throws Error from every call.

  // A video file (any container and codec FFmpeg reads), a folder of frames, or a preprocessed
  // float32 .npy (T, 3, S, S) or (1, T, 3, S, S), made into the network input: `segments()`
  // frames sampled and preprocessed as upstream's test pipeline (BGR, 0-255 minus the mean 104,
  // 117, 128; shorter side scaled to 256 / 224 * S, centre crop S), as floats in (T, 3, S, S)
  // order. Throws Error "<path>: <cause>" for an input that cannot become the clip.
  std::vector<float> load_input(const std::string& path, const InputOptions& options = {}) const;

  // The classes() logits of one clip: `count` floats laid out as load_input() gives them (count
  // must be input_size()). Throws Error for a wrong size, a non-finite value, or logits that
  // overflow float32.
  std::vector<float> logits(const float* clip, std::size_t count);
  // load_input() then logits().
  std::vector<float> logits(const std::string& path, const InputOptions& options = {});
  // The k best classes of a clip, best first (fewer when the model has fewer classes).
  std::vector<Prediction> classify(const std::string& path, int64_t k = 5, const InputOptions& options = {});

  // Ranks logits: the k largest, best first (ties: the lower index first), with their softmax
  // probabilities. Throws Error for k < 1 or empty logits.
  static std::vector<Prediction> top_k(const std::vector<float>& logits, int64_t k);

  // Class names for this model: one per line, or upstream's classInd.txt "<number> <name>" lines.
  // Throws Error when the file cannot be read or names other than classes() classes.
  std::vector<std::string> read_labels(const std::string& path) const;

  std::string arch() const;       // "ECO", "ECOfull" or "C3DRes18"
  int64_t segments() const;       // frames per clip
  int64_t image_size() const;     // the frame side S
  int64_t classes() const;        // logits per clip
  std::size_t input_size() const; // floats per clip: segments * 3 * S * S
  // Where the weights came from: "<path> (<format>)" or "random (seed S)".
  std::string weights_source() const;

 private:
  struct Impl;
  explicit Classifier(std::unique_ptr<Impl> impl);
  const Impl& impl() const;
  Impl& impl();
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecocpu
