#include "eco/definitions.hpp"

#include <algorithm>
#include <stdexcept>

namespace ecocpu {

namespace {

// Writes layers in the schema, with BN-Inception's and ResNet's naming conventions.
class Writer {
 public:
  explicit Writer(const std::string& name) {
    def_.name = name;
    def_.source = "built-in " + name;
  }
  ModelDefinition take() { return std::move(def_); }

  void layer(const std::string& id, const std::string& output, const std::string& type,
             std::vector<std::string> inputs, Attrs attrs = {}) {
    LayerSpec l;
    l.id = id;
    l.output = output;
    l.type = type;
    l.inputs = std::move(inputs);
    l.attrs = std::move(attrs);
    def_.layers.push_back(std::move(l));
  }

  // 2D conv + frozen BN + in-place ReLU. The conv is "<block>_<branch>", the BN "<conv>_bn" and the
  // ReLU "<block>_relu_<relu_branch>". Returns the name holding the result.
  std::string conv_bn_relu(const std::string& block, const std::string& branch,
                           const std::string& input, int64_t channels, int64_t kernel,
                           int64_t stride = 1, int64_t pad = -1, std::string relu_branch = "") {
    const std::string conv = block + "_" + branch, bn = conv + "_bn";
    Attrs attrs{{"num_output", channels}, {"kernel_size", kernel}};
    if (pad < 0) pad = kernel / 2;
    if (pad > 0) attrs["pad"] = pad;
    if (stride != 1) attrs["stride"] = stride;
    layer(conv, conv, "Convolution", {input}, attrs);
    layer(bn, bn, "BN", {conv}, {{"frozen", true}});
    layer(block + "_relu_" + (relu_branch.empty() ? branch : relu_branch), bn, "ReLU", {bn});
    return bn;
  }

  std::string pool(const std::string& id, const std::string& input, const std::string& mode,
                   int64_t kernel, int64_t stride, int64_t pad) {
    Attrs attrs{{"kernel_size", kernel}, {"mode", mode}, {"stride", stride}};
    if (pad > 0) attrs["pad"] = pad;
    layer(id, id, "Pooling", {input}, attrs);
    return id;
  }

  // A 3D conv (k3, p1), and separately a trainable BN3d with its in-place ReLU. Without a bias
  // where the model has none (C3DRes18).
  void conv3d(const std::string& id, const std::string& input, int64_t channels, int64_t stride) {
    Attrs attrs{{"kernel_size", 3}, {"num_output", channels}, {"pad", 1}, {"stride", stride}};
    if (!conv3d_bias) attrs["bias_term"] = false;
    layer(id, id, "Conv3d", {input}, attrs);
  }
  std::string bn3d_relu(const std::string& bn, const std::string& relu, const std::string& input) {
    layer(bn, bn, "BN3d", {input}, {{"frozen", false}});
    layer(relu, bn, "ReLU", {bn});
    return bn;
  }

  bool conv3d_bias = true;

 private:
  ModelDefinition def_;
};

// The first two layers of a double-3x3 branch. For inception-3c it yields the 96-channel 28x28
// map that ECO feeds to its 3D head.
std::string double_3x3_head(Writer& w, const std::string& block, const std::string& input,
                            int64_t reduce, int64_t width) {
  w.conv_bn_relu(block, "double_3x3_reduce", input, reduce, 1);
  return w.conv_bn_relu(block, "double_3x3_1", block + "_double_3x3_reduce_bn", width, 3);
}

struct InceptionWidths {
  int64_t c1x1, c3x3_reduce, c3x3, double_reduce, double_3x3;
  std::string pool_mode;
  int64_t pool_proj;
};

// A BN-Inception block at unchanged resolution: 1x1, 3x3, double 3x3 and pool-projection branches.
std::string inception(Writer& w, const std::string& block, const std::string& input,
                      const InceptionWidths& c) {
  std::string a = w.conv_bn_relu(block, "1x1", input, c.c1x1, 1);
  w.conv_bn_relu(block, "3x3_reduce", input, c.c3x3_reduce, 1);
  std::string b = w.conv_bn_relu(block, "3x3", block + "_3x3_reduce_bn", c.c3x3, 3);
  double_3x3_head(w, block, input, c.double_reduce, c.double_3x3);
  std::string d = w.conv_bn_relu(block, "double_3x3_2", block + "_double_3x3_1_bn", c.double_3x3, 3);
  std::string pool = w.pool(block + "_pool", input, c.pool_mode, 3, 1, 1);
  std::string e = w.conv_bn_relu(block, "pool_proj", pool, c.pool_proj, 1);
  w.layer(block + "_output", block + "_output", "Concat", {a, b, d, e});
  return block + "_output";
}

// The BN-Inception stem and blocks 3a, 3b: (N*T, 3, 224, 224) -> (N*T, 320, 28, 28).
std::string bn_inception_stem(Writer& w) {
  std::string x = w.conv_bn_relu("conv1", "7x7_s2", "data", 64, 7, 2, 3, "7x7");
  x = w.pool("pool1_3x3_s2", x, "max", 3, 2, 0);
  x = w.conv_bn_relu("conv2", "3x3_reduce", x, 64, 1);
  x = w.conv_bn_relu("conv2", "3x3", x, 192, 3);
  x = w.pool("pool2_3x3_s2", x, "max", 3, 2, 0);
  x = inception(w, "inception_3a", x, {64, 64, 64, 64, 96, "ave", 32});
  return inception(w, "inception_3b", x, {64, 64, 96, 64, 96, "ave", 64});
}

// How a 3D ResNet-18 stage begins. ECO's first stage (res3) is a single convolution of the 2D
// maps; C3DRes18's first (res2) is a block at the stem's resolution whose shortcut is the stem's
// convolution before its BN; the others halve the resolution with a strided block and a strided
// projection shortcut.
enum class StageStart { single_conv, identity_block, strided_block };

// One ResNet-18 stage in 3D. As upstream, the shortcuts add pre-BN values and BN+ReLU follow each
// sum. `raw_input` is the pre-BN value an identity shortcut adds.
std::string resnet3d_stage(Writer& w, int stage, const std::string& input, int64_t channels,
                           StageStart start, const std::string& raw_input = "") {
  const std::string r = "res" + std::to_string(stage);
  std::string shortcut;
  if (start == StageStart::single_conv) {
    w.conv3d(r + "a_2", input, channels, 1);
    shortcut = r + "a_2";
  } else {
    const int64_t stride = start == StageStart::strided_block ? 2 : 1;
    w.conv3d(r + "a_1", input, channels, stride);
    w.bn3d_relu(r + "a_1_bn", r + "a_1_relu", r + "a_1");
    w.conv3d(r + "a_2", r + "a_1_bn", channels, 1);
    if (start == StageStart::strided_block) {
      w.conv3d(r + "a_down", input, channels, 2);
      w.layer(r + "a", r + "a", "Eltwise", {r + "a_2", r + "a_down"});
    } else {
      w.layer(r + "a", r + "a", "Eltwise", {raw_input, r + "a_2"});
    }
    shortcut = r + "a";
  }
  std::string a = w.bn3d_relu(r + "a_bn", r + "a_relu", shortcut);
  w.conv3d(r + "b_1", a, channels, 1);
  w.bn3d_relu(r + "b_1_bn", r + "b_1_relu", r + "b_1");
  w.conv3d(r + "b_2", r + "b_1_bn", channels, 1);
  w.layer(r + "b", r + "b", "Eltwise", {r + "b_2", shortcut});
  return w.bn3d_relu(r + "b_bn", r + "b_relu", r + "b");
}

std::string resnet3d_head(Writer& w, const std::string& input) {
  std::string x = resnet3d_stage(w, 3, input, 128, StageStart::single_conv);
  x = resnet3d_stage(w, 4, x, 256, StageStart::strided_block);
  return resnet3d_stage(w, 5, x, 512, StageStart::strided_block);
}

// A BN-Inception block that halves the resolution: a strided 3x3 branch, a strided double 3x3
// branch and a max pool. Written in two parts because ECO Full branches off between them.
struct ReduceWidths {
  int64_t c3x3_reduce, c3x3, double_reduce, double_3x3;
};

void inception_reduce_heads(Writer& w, const std::string& block, const std::string& input,
                            const ReduceWidths& c) {
  w.conv_bn_relu(block, "3x3_reduce", input, c.c3x3_reduce, 1);
  w.conv_bn_relu(block, "3x3", block + "_3x3_reduce_bn", c.c3x3, 3, 2);
  double_3x3_head(w, block, input, c.double_reduce, c.double_3x3);
}

std::string inception_reduce_tail(Writer& w, const std::string& block, const std::string& input,
                                  const ReduceWidths& c) {
  std::string b = w.conv_bn_relu(block, "double_3x3_2", block + "_double_3x3_1_bn", c.double_3x3, 3, 2);
  std::string pool = w.pool(block + "_pool", input, "max", 3, 2, 0);
  w.layer(block + "_output", block + "_output", "Concat", {block + "_3x3_bn", b, pool});
  return block + "_output";
}

void classifier(Writer& w, const std::string& input) {
  w.layer("fc_final", "fc_action", "InnerProduct", {input}, {{"num_output", 400}});
}

}  // namespace

ModelDefinition eco_lite_definition() {
  Writer w("ECO");
  std::string x = bn_inception_stem(w);
  x = double_3x3_head(w, "inception_3c", x, 64, 96);
  x = resnet3d_head(w, x);
  w.layer("global_pool", "global_pool", "Pooling3d", {x},
          {{"kernel_d", std::string("N/4")}, {"kernel_h", 7}, {"kernel_w", 7}, {"stride", 1},
           {"mode", std::string("ave")}});
  classifier(w, "global_pool");
  return w.take();
}

ModelDefinition eco_full_definition() {
  Writer w("ECOfull");
  std::string trunk = bn_inception_stem(w);
  const ReduceWidths c3{128, 160, 64, 96};
  inception_reduce_heads(w, "inception_3c", trunk, c3);
  std::string volume = resnet3d_head(w, "inception_3c_double_3x3_1_bn");
  std::string x = inception_reduce_tail(w, "inception_3c", trunk, c3);
  x = inception(w, "inception_4a", x, {224, 64, 96, 96, 128, "ave", 128});
  x = inception(w, "inception_4b", x, {192, 96, 128, 96, 128, "ave", 128});
  x = inception(w, "inception_4c", x, {160, 128, 160, 128, 160, "ave", 128});
  x = inception(w, "inception_4d", x, {96, 128, 192, 160, 192, "ave", 128});
  const ReduceWidths c4e{128, 192, 192, 256};
  inception_reduce_heads(w, "inception_4e", x, c4e);
  x = inception_reduce_tail(w, "inception_4e", x, c4e);
  x = inception(w, "inception_5a", x, {352, 192, 320, 160, 224, "ave", 128});
  x = inception(w, "inception_5b", x, {352, 192, 320, 192, 224, "max", 128});

  // Per-frame 1024-d features, averaged over the clip; the 3D features pooled over the clip.
  w.pool("global_pool2D_pre", x, "ave", 7, 1, 0);
  w.layer("global_pool2D_pre_drop", "global_pool2D_pre", "Dropout", {"global_pool2D_pre"},
          {{"dropout_ratio", 0.5}});
  w.layer("global_pool2D_reshape_consensus", "global_pool2D_reshape_consensus", "Pooling3d",
          {"global_pool2D_pre"},
          {{"kernel_d", std::string("N/1")}, {"kernel_h", 1}, {"kernel_w", 1}, {"stride", 1},
           {"mode", std::string("ave")}});
  w.layer("global_pool3D", "global_pool3D", "Pooling3d", {volume},
          {{"kernel_d", std::string("N/4")}, {"kernel_h", 7}, {"kernel_w", 7}, {"stride", 1},
           {"mode", std::string("ave")}});
  w.layer("global_pool3D_drop", "global_pool3D", "Dropout", {"global_pool3D"},
          {{"dropout_ratio", 0.3}});
  w.layer("global_pool", "global_pool", "Concat",
          {"global_pool2D_reshape_consensus", "global_pool3D"});
  classifier(w, "global_pool");
  return w.take();
}

// A 3D ResNet-18 on the frames themselves: a 3x7x7 stem convolution with stride 2 on every axis,
// four stages (res2 at the stem's resolution, res3 to res5 halving it), a 7x7 spatial average and
// the classifier. Its 3D convolutions have no bias.
ModelDefinition c3d_res18_definition() {
  Writer w("C3DRes18");
  w.conv3d_bias = false;
  w.layer("conv1", "conv1", "Conv3d", {"data"},
          {{"kernel_d", 3}, {"kernel_h", 7}, {"kernel_w", 7}, {"num_output", 64}, {"pad_d", 1},
           {"pad_h", 3}, {"pad_w", 3}, {"stride", 2}, {"bias_term", false}});
  std::string x = w.bn3d_relu("conv1_bn", "relu1", "conv1");
  x = resnet3d_stage(w, 2, x, 64, StageStart::identity_block, "conv1");
  x = resnet3d_stage(w, 3, x, 128, StageStart::strided_block);
  x = resnet3d_stage(w, 4, x, 256, StageStart::strided_block);
  x = resnet3d_stage(w, 5, x, 512, StageStart::strided_block);
  w.layer("global_pool", "global_pool", "Pooling3d", {x},
          {{"kernel_d", 1}, {"kernel_h", 7}, {"kernel_w", 7}, {"stride", 1}, {"mode", std::string("ave")}});
  w.layer("fc8", "fc_action", "InnerProduct", {"global_pool"}, {{"num_output", 400}});
  return w.take();
}

ModelDefinition builtin_definition(const std::string& arch) {
  if (arch == "ECO") return eco_lite_definition();
  if (arch == "ECOfull") return eco_full_definition();
  if (arch == "C3DRes18") return c3d_res18_definition();
  throw std::invalid_argument("unknown arch '" + arch + "' (known: " + builtin_arch_list() + ")");
}

std::vector<std::string> builtin_archs() { return {"ECO", "ECOfull", "C3DRes18"}; }

bool is_builtin_arch(const std::string& arch) {
  const auto archs = builtin_archs();
  return std::find(archs.begin(), archs.end(), arch) != archs.end();
}

std::string builtin_arch_list() {
  std::string list;
  for (const auto& arch : builtin_archs()) list += (list.empty() ? "" : ", ") + arch;
  return list;
}

}  // namespace ecocpu
