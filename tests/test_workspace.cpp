// The planned workspace (tensor/workspace.hpp): every fast kernel run in a fixed workspace of
// exactly the size its size function reports gives, bit for bit, what it gives in the growing
// fallback; a workspace a line too small, or for too few threads, is refused; two workspaces serve
// two passes on two threads at once. The convolution cases are named `conv ...` so that ctest's
// conv_paths_avx2 / conv_paths_sse2 runs repeat them with the other register tiles, which change
// how the tap GEMM and Winograd block their work and so what they need.
#include <doctest/doctest.h>
#include <omp.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

#include "oracles.hpp"
#include "ops/conv/channels_last.hpp"
#include "ops/conv/conv.hpp"
#include "ops/conv/conv_fast.hpp"
#include "ops/gemm/gemm.hpp"
#include "ops/pool/channels_last/pool_channels_last.hpp"
#include "ops/pool/pool.hpp"
#include "tensor/scratch.hpp"
#include "tensor/workspace.hpp"
#include "test_support.hpp"

using namespace ecocpu;
using test::make_window;
using test::random_tensor;

namespace {

using Kernel = std::function<void(float* out)>;

// `kernel` writing `floats` floats, run with the calling thread's fallback workspace.
std::vector<float> run_with_fallback(int64_t floats, const Kernel& kernel) {
  std::vector<float> out(static_cast<std::size_t>(floats), -7.0f);
  kernel(out.data());
  return out;
}

// The same in a fixed workspace of `size`.
std::vector<float> run_planned(const ScratchSize& size, int64_t floats, const Kernel& kernel) {
  Workspace workspace(size);
  const WorkspaceScope scope(workspace);
  std::vector<float> out(static_cast<std::size_t>(floats), -7.0f);
  kernel(out.data());
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The kernel in a workspace of exactly `size` does not throw and gives the fallback's result.
void check_planned(const ScratchSize& size, int64_t floats, const Kernel& kernel) {
  const std::vector<float> expect = run_with_fallback(floats, kernel);
  std::vector<float> got;
  CHECK_NOTHROW(got = run_planned(size, floats, kernel));
  CHECK(same_bits(got, expect));
}

// The message of the std::logic_error the kernel throws in a workspace of `size`.
std::string refusal(const ScratchSize& size, const Kernel& kernel) {
  return test::error_of<std::logic_error>([&] { run_planned(size, 1 << 20, kernel); });
}

int threads() { return omp_get_max_threads(); }

struct ConvCase {
  fast::ConvAlgo algo;
  int rank;
  int64_t n, cin, cout, d, h, w;
  std::array<int64_t, 3> k, s, p;
};

// A convolution ready to run: its prepared form, input, epilogue terms, output shape.
struct ConvSetup {
  fast::PreparedConv conv;
  Tensor in, bias, residual, scale, shift;
  Tensor in_scale, in_shift;  // an input BatchNorm applied on the way into the channels-last copy
  Shape out_shape;
};

ConvSetup setup(const ConvCase& c, uint64_t seed) {
  Conv op(c.cout, make_window(c.rank, c.k, c.s, c.p));
  const Shape in_shape = c.rank == 2 ? Shape{c.n, c.cin, c.h, c.w} : Shape{c.n, c.cin, c.d, c.h, c.w};
  Shape w_shape{c.cout, c.cin};
  for (int a = 3 - c.rank; a < 3; ++a) w_shape.push_back(c.k[a]);
  ConvSetup s;
  s.out_shape = op.output_shape(std::span(&in_shape, 1));
  const Tensor weight = random_tensor(w_shape, seed);
  s.conv = fast::prepare_conv(op.problem(in_shape, s.out_shape), c.algo, weight.data());
  s.in = random_tensor(in_shape, seed + 1);
  s.bias = random_tensor(Shape{c.cout}, seed + 2);
  s.residual = random_tensor(s.out_shape, seed + 3);
  s.scale = random_tensor(Shape{c.cout}, seed + 4);
  s.shift = random_tensor(Shape{c.cout}, seed + 5);
  s.in_scale = random_tensor(Shape{c.cin}, seed + 6);
  s.in_shift = random_tensor(Shape{c.cin}, seed + 7);
  return s;
}

fast::ConvEpilogue full_epilogue(const ConvSetup& s) {
  fast::ConvEpilogue e;
  e.bias = s.bias.data();
  e.residual = s.residual.data();
  e.scale = s.scale.data();
  e.shift = s.shift.data();
  e.relu = true;
  return e;
}

// The output as the next convolution's padded channels-last copy (a 3x3(x3) pad-1 reader).
fast::PaddedInput next_layout(const fast::PreparedConv& conv) {
  const auto& p = conv.problem;
  fast::PaddedInput l;
  l.inner = p.out_extent;
  l.lead = {p.out_extent[0] > 1 ? 1 : 0, 1, 1};
  for (int a = 0; a < 3; ++a) l.extent[a] = l.inner[a] + 2 * l.lead[a];
  l.channels = p.out_channels;
  return l;
}

std::vector<float> channels_last_copy(const fast::PreparedConv& conv, const float* in) {
  const fast::PaddedInput layout = fast::input_layout(conv);
  std::vector<float> copy(static_cast<std::size_t>(conv.problem.batch * layout.floats()));
  fast::to_channels_last(conv.problem, layout, in, copy.data());
  return copy;
}

// Every way the engine runs the convolution, each in a workspace of exactly what conv_scratch
// reports for it.
void check_conv_paths(const ConvSetup& s) {
  const fast::PreparedConv& conv = s.conv;
  const int64_t out_floats = s.out_shape.numel();
  const ScratchSize planes = fast::conv_scratch(conv, threads(), false);
  CHECK(planes.bytes() == fast::conv_scratch_bytes(conv, threads(), false));
  check_planned(planes, out_floats,
                [&](float* out) { fast::run_conv(conv, s.in.data(), full_epilogue(s), out); });
  const int64_t batch = conv.problem.batch, image = s.out_shape.numel_from(1);
  if (batch > 1) {  // a range of images, as the pooled steps run them
    check_planned(planes, (batch - 1) * image, [&](float* out) {
      fast::run_conv_images(conv, 1, batch - 1, s.in.data(), full_epilogue(s), out);
    });
  }
  if (fast::takes_channels_last(conv)) {
    const std::vector<float> copy = channels_last_copy(conv, s.in.data());
    const ScratchSize handed = fast::conv_scratch(conv, threads(), true);
    CHECK(handed.shared == 0);
    check_planned(handed, out_floats,
                  [&](float* out) { fast::run_conv(conv, copy.data(), full_epilogue(s), out, true); });
    // The copy the executor makes with an input BatchNorm, then the convolution on it.
    const fast::ChannelAffine affine{s.in_scale.data(), s.in_shift.data(), true};
    check_planned(planes, out_floats, [&](float* out) {
      const float* in = fast::channels_last_input(conv.problem, fast::input_layout(conv), s.in.data(), false, &affine);
      fast::run_conv(conv, in, full_epilogue(s), out, true);
    });
  }
  if (fast::writes_channels_last(conv)) {
    const fast::PaddedInput layout = next_layout(conv);
    fast::ConvEpilogue e;
    e.bias = s.bias.data();
    e.relu = true;
    e.channels_last_out = &layout;
    check_planned(planes, batch * layout.floats(), [&](float* out) { fast::run_conv(conv, s.in.data(), e, out); });
  }
}

const ConvCase kConvCases[] = {
    // Winograd 2D (odd sizes: tiles overhang the output) and 3D, batch 1 and several.
    {fast::ConvAlgo::Winograd, 2, 3, 16, 20, 1, 13, 11, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    {fast::ConvAlgo::Winograd, 2, 1, 24, 40, 1, 28, 28, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    {fast::ConvAlgo::Winograd, 3, 2, 16, 17, 5, 9, 7, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
    {fast::ConvAlgo::Winograd, 3, 1, 33, 24, 4, 14, 14, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
    // Tap GEMM: strided 2D and 3D, conv1's 7x7 stride-2 (A read in place), output rows of 3 (A
    // copied into tiles), two depth blocks (300 channels), more panels than a group.
    {fast::ConvAlgo::TapGemm, 2, 3, 20, 40, 1, 9, 8, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
    {fast::ConvAlgo::TapGemm, 3, 2, 16, 33, 6, 9, 11, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
    {fast::ConvAlgo::TapGemm, 2, 2, 3, 20, 1, 40, 38, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},
    {fast::ConvAlgo::TapGemm, 2, 2, 16, 20, 1, 9, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
    {fast::ConvAlgo::TapGemm, 3, 1, 300, 300, 3, 5, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
    {fast::ConvAlgo::TapGemm, 2, 1, 20, 20, 1, 15, 17, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    // im2col GEMM: small planes (several images per product, blocks across images) and large
    // ones (image by image), strided, 3D.
    {fast::ConvAlgo::Im2colGemm, 2, 3, 3, 7, 1, 9, 8, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
    {fast::ConvAlgo::Im2colGemm, 2, 2, 3, 5, 1, 70, 66, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    {fast::ConvAlgo::Im2colGemm, 3, 2, 3, 5, 6, 9, 8, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
    {fast::ConvAlgo::Im2colGemm, 2, 9, 40, 19, 1, 15, 17, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    // 1x1 GEMM: panels across images (14x14, 7x5), a 3D input, large planes, many rows.
    {fast::ConvAlgo::Direct1x1Gemm, 2, 3, 30, 40, 1, 14, 14, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
    {fast::ConvAlgo::Direct1x1Gemm, 2, 6, 300, 20, 1, 7, 5, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
    {fast::ConvAlgo::Direct1x1Gemm, 3, 1, 9, 24, 3, 6, 13, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
    {fast::ConvAlgo::Direct1x1Gemm, 2, 1, 4, 300, 1, 70, 66, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
    // A strided 1x1: not pointwise, so a tap GEMM (or im2col below 16 channels).
    {fast::ConvAlgo::TapGemm, 2, 2, 16, 12, 1, 8, 8, {1, 1, 1}, {1, 2, 2}, {0, 0, 0}},
    {fast::ConvAlgo::Im2colGemm, 2, 2, 4, 6, 1, 8, 8, {1, 1, 1}, {1, 2, 2}, {0, 0, 0}},
    // Winograd on the input's phases: conv1's 7x7 stride 2 (F(4x4, 4x4)), a 5x5 (F(4x4, 3x3)).
    {fast::ConvAlgo::PhaseWinograd, 2, 2, 3, 20, 1, 40, 38, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}},
    {fast::ConvAlgo::PhaseWinograd, 2, 3, 5, 17, 1, 13, 11, {1, 5, 5}, {1, 2, 2}, {0, 2, 2}},
};

Tensor run_pool_fast(const Pool& pool, const Tensor& in, float* out) {
  const Shape in_shape = in.shape();
  Tensor view = Tensor::view(out, pool.output_shape(std::span(&in_shape, 1)));
  const Tensor* inputs[] = {&in};
  pool.run_fast(inputs, {}, view);
  return view;
}

struct PoolCase {
  reference::PoolMode mode;
  int rank;
  Shape in;
  std::array<int64_t, 3> k, s, p;
};

const PoolCase kPoolCases[] = {
    // inception's 3x3 stride-1 pools, max and average; pool1/pool2's 3x3 stride 2 (ceil mode);
    // a global pool; 3D with a pass along depth; a 2x2 average; odd plane counts.
    {reference::PoolMode::Max, 2, Shape{3, 7, 14, 14}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    {reference::PoolMode::Average, 2, Shape{2, 19, 28, 28}, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
    {reference::PoolMode::Max, 2, Shape{2, 5, 57, 57}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
    {reference::PoolMode::Average, 2, Shape{3, 33, 7, 7}, {1, 7, 7}, {1, 1, 1}, {0, 0, 0}},
    {reference::PoolMode::Max, 3, Shape{1, 6, 5, 9, 11}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
    {reference::PoolMode::Average, 3, Shape{2, 3, 4, 7, 7}, {4, 7, 7}, {1, 1, 1}, {0, 0, 0}},
    {reference::PoolMode::Average, 2, Shape{1, 9, 13, 10}, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},
    {reference::PoolMode::Max, 2, Shape{1, 3, 112, 112}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
};

ScratchSize pool_scratch(const Pool& pool, const Shape& in) {
  const Shape out = pool.output_shape(std::span(&in, 1));
  return pool.fast_scratch(std::span(&in, 1), out, threads());
}

struct PooledConvCase {
  fast::ConvAlgo algo;
  int64_t n, cin, cout, h, w;
  std::array<int64_t, 3> k, s, p, pk, ps, pp;
};

const PooledConvCase kPooledCases[] = {
    // conv1 + pool1's geometry; 320-wide product rows (bands of 2 pooled rows that carry a row
    // over); rows of 3 (A copied); conv2 + pool2's (Winograd, chunks written channels-last), and
    // conv1 + pool1's on the phases (the same chunks).
    {fast::ConvAlgo::TapGemm, 2, 3, 20, 40, 38, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
    {fast::ConvAlgo::TapGemm, 1, 6, 300, 23, 40, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
    {fast::ConvAlgo::TapGemm, 3, 16, 20, 9, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
    {fast::ConvAlgo::Winograd, 3, 16, 24, 21, 19, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
    {fast::ConvAlgo::PhaseWinograd, 3, 3, 20, 40, 38, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}},
};

struct PooledSetup {
  ConvSetup conv;
  Pool pool;
  reference::PoolProblem problem;
};

PooledSetup pooled_setup(const PooledConvCase& c, uint64_t seed) {
  const ConvCase cc{c.algo, 2, c.n, c.cin, c.cout, 1, c.h, c.w, c.k, c.s, c.p};
  PooledSetup s{setup(cc, seed), Pool(reference::PoolMode::Max, make_window(2, c.pk, c.ps, c.pp)), {}};
  const Shape pooled = s.pool.output_shape(std::span(&s.conv.out_shape, 1));
  s.problem = s.pool.problem(s.conv.out_shape, pooled);
  return s;
}

fast::ConvEpilogue plain_epilogue(const ConvSetup& s) {
  fast::ConvEpilogue e;
  e.bias = s.bias.data();
  e.scale = s.scale.data();
  e.shift = s.shift.data();
  e.relu = true;
  return e;
}

int64_t pooled_floats(const PooledSetup& s) { return s.problem.planes * s.problem.out_extent[1] * s.problem.out_extent[2]; }

// The Winograd step of a plan followed by a 2D max pool: a chunk of images written channels-last,
// then pooled into planes (graph/plan.cpp's run_conv_max_pooled).
void winograd_then_pool(const PooledSetup& s, int64_t first, int64_t count, float* out) {
  const auto& p = s.conv.conv.problem;
  fast::PaddedInput layout;
  layout.extent = layout.inner = p.out_extent;
  layout.channels = p.out_channels;
  std::vector<float> chunk(static_cast<std::size_t>(count * layout.floats()));
  fast::ConvEpilogue e = plain_epilogue(s.conv);
  e.channels_last_out = &layout;
  fast::run_conv_images(s.conv.conv, first, count, s.conv.in.data(), e, chunk.data());
  reference::PoolProblem part = s.problem;
  part.planes = count * p.out_channels;
  fast::max_pool_channels_last(part, p.out_channels, chunk.data(), out);
}

}  // namespace

TEST_CASE("workspace: regions on whole lines, slabs apart, arenas counted while they live") {
  ScratchLayout layout;
  const Region<float> a = layout.add<float>(3);
  const Region<char> b = layout.add<char>(65);
  const Region<double> c = layout.add<double>(0);
  const Region<double> d = layout.add<double>(8);
  CHECK(a.offset == 0);
  CHECK(b.offset == 64);
  CHECK(c.offset == 192);
  CHECK(d.offset == 192);
  CHECK(layout.bytes() == 256);

  const int64_t before = scratch_bytes();
  {
    Workspace fixed(ScratchSize{3, 640, layout.bytes()});
    CHECK_FALSE(fixed.grows());
    CHECK(fixed.capacity().bytes() == 640 + 3 * 256);
    CHECK(scratch_bytes() == before + 640 + 3 * 256);
    const Slabs slabs = fixed.slabs("test", 3, layout.bytes());
    CHECK(reinterpret_cast<std::uintptr_t>(slabs.at(0, a)) % 64 == 0);
    CHECK(reinterpret_cast<char*>(slabs.at(1, a)) - reinterpret_cast<char*>(slabs.at(0, a)) == 256);
    CHECK(reinterpret_cast<char*>(slabs.at(2, d)) - reinterpret_cast<char*>(slabs.at(0, a)) == 2 * 256 + 192);
    float* shared = fixed.shared<float>("test", 160);
    CHECK(reinterpret_cast<char*>(slabs.at(0, a)) - reinterpret_cast<char*>(shared) == 640);
    CHECK(test::contains(test::error_of<std::logic_error>([&] { fixed.shared<float>("big copy", 161); }),
                         "big copy needs 704 shared scratch bytes; the workspace was planned with 640"));
    CHECK(test::contains(test::error_of<std::logic_error>([&] { fixed.slabs("wide", 4, 64); }),
                         "wide needs 4 threads x 64 scratch bytes; the workspace was planned with 3 x 256"));
    CHECK(test::contains(test::error_of<std::logic_error>([&] { fixed.slabs("deep", 1, 320); }), "1 threads x 320"));
  }
  CHECK(scratch_bytes() == before);
  {
    Workspace growing;
    CHECK(growing.grows());
    growing.slabs("test", 2, 128);
    CHECK(growing.capacity().per_thread == 128);
    growing.slabs("test", 1, 512);
    CHECK(growing.capacity().threads == 2);
    CHECK(growing.capacity().per_thread == 512);
    growing.shared<char>("test", 100);
    CHECK(growing.capacity().shared == 128);
    CHECK(scratch_bytes() == before + 2 * 512 + 128);
    CHECK(scratch_peak_bytes() >= before + 2 * 512 + 128);
  }
  CHECK(scratch_bytes() == before);
  // A size off whole lines holds the lines below it.
  Workspace odd(ScratchSize{1, 100, 130});
  CHECK(odd.capacity().shared == 64);
  CHECK(odd.capacity().per_thread == 128);
  CHECK(max_size({1, 5, 9}, {2, 3, 10}).bytes() == 5 + 2 * 10);
}

TEST_CASE("workspace: large buffers that ask for huge pages start on one and fill theirs, small ones stay on lines") {
  const auto at = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
  const int64_t big = 2 * kHugePageBytes / 4 + 5;  // floats: 4 MB and a bit
  const std::shared_ptr<float> huge = shared_floats(big, Pages::huge);
  CHECK(at(huge.get()) % kHugePageBytes == 0);
  huge.get()[0] = 1.0f;
  huge.get()[big - 1] = 2.0f;  // the whole request is usable
  CHECK(huge.get()[big - 1] == 2.0f);
  // Below two huge pages a request keeps its lines (a 2 MB page for a small buffer would waste most of it).
  for (const int64_t floats : {int64_t{1}, int64_t{1000}, 2 * kHugePageBytes / 4 - 1}) {
    CAPTURE(floats);
    const std::shared_ptr<float> small = shared_floats(floats, Pages::huge);
    CHECK(at(small.get()) % 64 == 0);
    small.get()[floats - 1] = 3.0f;
  }
  CHECK(at(shared_floats(big).get()) % 64 == 0);
  // A workspace's arena is such a buffer; its shared zone starts it.
  Workspace fixed(ScratchSize{1, 3 * kHugePageBytes, 64});
  CHECK(at(fixed.shared<char>("test", 3 * kHugePageBytes)) % kHugePageBytes == 0);
  CHECK_THROWS_AS(shared_floats(std::numeric_limits<int64_t>::max() / 4, Pages::huge), std::bad_alloc);
}

namespace {

// The VmFlags of the mapping that holds `address` (/proc/self/smaps), or "" if none does.
std::string mapping_flags(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long long begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &begin, &end) == 2 && line.find(':') > line.find(' ')) {
      inside = begin <= at && at < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("workspace: a buffer that asks for huge pages has its whole ones advised, its tail left on ordinary pages") {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled")) return;  // a kernel without them
  const int64_t floats = 2 * kHugePageBytes / 4 + 1000;  // two huge pages and 4000 bytes
  const std::shared_ptr<float> buffer = shared_floats(floats, Pages::huge);
  CHECK(mapping_flags(buffer.get()).find(" hg") != std::string::npos);
  // The tail: a huge page there would hold 2 MB of memory for its 4000 bytes.
  CHECK(mapping_flags(buffer.get() + floats - 1).find(" hg") == std::string::npos);
}

TEST_CASE("workspace: a buffer in memory advised before has its ends put back on ordinary pages") {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled")) return;  // a kernel without them
  // What malloc hands out after a freed buffer's advice: a mapping advised as a whole.
  const std::size_t bytes = 6 * static_cast<std::size_t>(kHugePageBytes);
  void* mapped = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(mapped != MAP_FAILED);
  REQUIRE(madvise(mapped, bytes, MADV_HUGEPAGE) == 0);
  const auto start = (reinterpret_cast<std::uintptr_t>(mapped) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  auto* buffer = reinterpret_cast<std::byte*>(start) + 1000;  // starts and ends inside huge pages
  const int64_t size = 2 * kHugePageBytes + 4000;
  advise_huge_pages(buffer, size);
  CHECK(mapping_flags(buffer + kHugePageBytes).find(" hg") != std::string::npos);  // a whole huge page inside
  CHECK(mapping_flags(buffer).find(" hg") == std::string::npos);
  CHECK(mapping_flags(buffer + size - 1).find(" hg") == std::string::npos);
  munmap(mapped, bytes);
}

TEST_CASE("workspace: a written buffer advised for huge pages keeps its contents, its whole huge pages advised") {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled")) return;  // a kernel without them
  // A mapping of its own, which nothing advised before.
  const int64_t bytes = 3 * kHugePageBytes + 400;
  void* mapped = mmap(nullptr, static_cast<std::size_t>(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(mapped != MAP_FAILED);
  auto* buffer = static_cast<float*>(mapped);
  const int64_t floats = bytes / 4;
  for (int64_t i = 0; i < floats; ++i) buffer[i] = static_cast<float>(i % 1000);
  const auto begin = reinterpret_cast<std::uintptr_t>(buffer), page = static_cast<std::uintptr_t>(kHugePageBytes);
  const auto* inside = reinterpret_cast<const char*>((begin + page - 1) / page * page);  // its first whole huge page
  CHECK(mapping_flags(inside).find(" hg") == std::string::npos);
  advise_huge_pages(buffer, bytes);
  CHECK(mapping_flags(inside).find(" hg") != std::string::npos);
  // The part before its first whole huge page is not advised (unless the buffer starts on one).
  if (begin % page != 0) CHECK(mapping_flags(buffer).find(" hg") == std::string::npos);
  bool same = true;
  for (int64_t i = 0; i < floats; ++i) same = same && buffer[i] == static_cast<float>(i % 1000);
  CHECK(same);
  munmap(mapped, static_cast<std::size_t>(bytes));
}

TEST_CASE("workspace: a scope binds it on its thread only, and restores the one before") {
  Workspace outer(ScratchSize{1, 0, 64}), inner(ScratchSize{1, 0, 64});
  Workspace* fallback = &current_workspace();
  CHECK(fallback->grows());
  {
    const WorkspaceScope a(outer);
    CHECK(&current_workspace() == &outer);
    {
      const WorkspaceScope b(inner);
      CHECK(&current_workspace() == &inner);
      Workspace* seen = nullptr;
      std::thread([&] { seen = &current_workspace(); }).join();
      CHECK(seen != &inner);  // another thread's own
    }
    CHECK(&current_workspace() == &outer);
  }
  CHECK(&current_workspace() == fallback);
}

TEST_CASE("conv workspace: every algorithm runs in exactly the scratch it reports, as with the fallback") {
  uint64_t seed = 9100;
  for (const auto& c : kConvCases) {
    CAPTURE(fast::conv_algo_name(c.algo));
    CAPTURE(c.rank);
    CAPTURE(c.n);
    CAPTURE(c.cin);
    CAPTURE(c.h);
    check_conv_paths(setup(c, seed));
    seed += 10;
  }
}

TEST_CASE("conv workspace: a convolution and its pooling run in exactly the scratch reported") {
  // conv_pooled_scratch covers the way pools_band_by_band names (at 2 threads the 3-image cases go
  // by chunks, the others band by band); each band-wise kernel also runs in its own report.
  uint64_t seed = 9400;
  int band_wise = 0, chunked = 0;
  for (const auto& c : kPooledCases) {
    CAPTURE(fast::conv_algo_name(c.algo));
    CAPTURE(c.h);
    const PooledSetup s = pooled_setup(c, seed);
    seed += 10;
    const auto& conv = s.conv.conv;
    const ScratchSize covering = fast::conv_pooled_scratch(conv, s.problem, threads(), false);
    const bool bands = fast::pools_band_by_band(conv, s.problem, threads());
    band_wise += bands;
    chunked += !bands;
    if (c.algo == fast::ConvAlgo::TapGemm) {
      const ScratchSize own = fast::conv_taps_max_pooled_scratch(conv.problem, s.problem, threads(), false);
      const auto run = [&](float* out) {
        fast::conv_taps_max_pooled(conv.problem, conv.taps, s.conv.in.data(), plain_epilogue(s.conv), s.problem, out);
      };
      check_planned(own, pooled_floats(s), run);
      if (bands) check_planned(covering, pooled_floats(s), run);
      // The input handed over channels-last: no copy per image.
      const std::vector<float> copy = channels_last_copy(conv, s.conv.in.data());
      const ScratchSize handed = fast::conv_taps_max_pooled_scratch(conv.problem, s.problem, threads(), true);
      CHECK(handed.per_thread < own.per_thread);
      check_planned(handed, pooled_floats(s), [&](float* out) {
        fast::conv_taps_max_pooled(conv.problem, conv.taps, copy.data(), plain_epilogue(s.conv), s.problem, out, true);
      });
      if (!bands) {  // chunks: the product, then the pooling's own fast kernel
        check_planned(covering, pooled_floats(s), [&](float* out) {
          Tensor product(s.conv.out_shape);
          fast::run_conv(conv, s.conv.in.data(), plain_epilogue(s.conv), product.data());
          run_pool_fast(s.pool, product, out);
        });
      }
    } else if (!bands) {  // Winograd chunks written channels-last, then pooled
      const int64_t n = conv.problem.batch, pooled_image = pooled_floats(s) / n;
      check_planned(covering, pooled_floats(s), [&](float* out) {
        winograd_then_pool(s, 0, 2, out);
        winograd_then_pool(s, 2, n - 2, out + 2 * pooled_image);
      });
    }
    if (c.algo == fast::ConvAlgo::PhaseWinograd) {  // band by band, an image per thread
      const ScratchSize own = fast::conv_phase_winograd_max_pooled_scratch(conv.problem, conv.winograd, s.problem, threads());
      const auto run = [&](float* out) {
        fast::conv_phase_winograd_max_pooled(conv.problem, conv.winograd, s.conv.in.data(), plain_epilogue(s.conv),
                                             s.problem, out);
      };
      check_planned(own, pooled_floats(s), run);
      if (bands) check_planned(covering, pooled_floats(s), run);
    }
    if (c.algo == fast::ConvAlgo::Winograd) {  // band by band, from planes and from the handed-over copy
      const ScratchSize own = fast::winograd_max_pooled_scratch(conv.problem, conv.winograd, s.problem, threads());
      const std::vector<float> copy = channels_last_copy(conv, s.conv.in.data());
      for (const bool handed : {false, true}) {
        const auto run = [&](float* out) {
          fast::conv_winograd_max_pooled(conv.problem, conv.winograd, handed ? copy.data() : s.conv.in.data(),
                                         plain_epilogue(s.conv), s.problem, out, handed);
        };
        check_planned(own, pooled_floats(s), run);
        if (bands) check_planned(covering, pooled_floats(s), run);
      }
    }
  }
  if (threads() == 2) {
    CHECK(band_wise > 0);
    CHECK(chunked > 0);
  }
}

TEST_CASE("conv workspace: band by band where the images fill the threads, in 2D max poolings after tap GEMM or float Winograd") {
  const PooledSetup taps = pooled_setup(kPooledCases[0], 9500);  // 2 images
  const PooledSetup phases = pooled_setup(kPooledCases[std::size(kPooledCases) - 1], 9510);  // 3 images
  CHECK(fast::pools_band_by_band(taps.conv.conv, taps.problem, 1));
  CHECK(fast::pools_band_by_band(taps.conv.conv, taps.problem, 2));
  CHECK_FALSE(fast::pools_band_by_band(taps.conv.conv, taps.problem, 3));  // 2 images, 3 threads
  CHECK(fast::pools_band_by_band(phases.conv.conv, phases.problem, 3));
  CHECK_FALSE(fast::pools_band_by_band(phases.conv.conv, phases.problem, 2));  // 3 images, 2 threads
  CHECK(fast::pools_band_by_band(phases.conv.conv, phases.problem, 1));
  reference::PoolProblem average = taps.problem;
  average.mode = reference::PoolMode::Average;
  CHECK_FALSE(fast::pools_band_by_band(taps.conv.conv, average, 2));
}

TEST_CASE("workspace: the pooling kernels run in exactly the scratch they report, as with the fallback") {
  uint64_t seed = 9600;
  for (const auto& c : kPoolCases) {
    CAPTURE(c.in.str());
    CAPTURE(c.k[2]);
    const Pool pool(c.mode, make_window(c.rank, c.k, c.s, c.p));
    const Tensor in = random_tensor(c.in, seed++);
    const Shape out_shape = pool.output_shape(std::span(&c.in, 1));
    check_planned(pool_scratch(pool, c.in), out_shape.numel(), [&](float* out) { run_pool_fast(pool, in, out); });
    if (c.mode != reference::PoolMode::Max || c.rank != 2) continue;
    // The same pooling from a channels-last batch (as after a Winograd convolution).
    const int64_t n = c.in[0], ch = c.in[1], plane = c.in[2] * c.in[3];
    std::vector<float> cl(static_cast<std::size_t>(in.numel()));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < ch; ++k)
        for (int64_t q = 0; q < plane; ++q) cl[(i * plane + q) * ch + k] = in.data()[(i * ch + k) * plane + q];
    const reference::PoolProblem p = pool.problem(c.in, out_shape);
    check_planned(fast::max_pool_channels_last_scratch(p, ch, threads()), out_shape.numel(),
                  [&](float* out) { fast::max_pool_channels_last(p, ch, cl.data(), out); });
  }
}

TEST_CASE("workspace: the GEMM, whole and batched, runs in exactly the scratch it reports") {
  struct Product {
    int64_t m, n, k, images;
  };
  // Few columns (rows split), many columns (columns split), two depth blocks, panels across images.
  const Product cases[] = {{300, 20, 40, 1}, {13, 1100, 300, 1}, {64, 196, 576, 3}, {7, 49, 5, 16}};
  uint64_t seed = 9650;
  for (const auto& kernel : available_gemm_kernels()) {
    for (const auto& t : cases) {
      CAPTURE(kernel.name);
      CAPTURE(t.m);
      CAPTURE(t.n);
      const Tensor a = random_tensor(Shape{t.m * t.k}, seed++), b = random_tensor(Shape{t.images * t.k * t.n}, seed++);
      const PackedMatrix packed = kernel.pack(a.data(), t.m, t.k, t.k, nullptr);
      check_planned(kernel.run_scratch(t.m, t.n, t.k, false, threads()), t.m * t.n, [&](float* c) {
        kernel.run({t.m, t.n, t.k, a.data(), t.k, b.data(), t.n, c, t.n}, {});
      });
      check_planned(kernel.run_scratch(t.m, t.n, t.k, true, threads()), t.m * t.n, [&](float* c) {
        kernel.run_packed(packed, {t.m, t.n, t.k, nullptr, 0, b.data(), t.n, c, t.n}, {});
      });
      ScratchLayout layout;
      const BatchedScratch r = kernel.batched_scratch(layout, t.m, t.k, t.images * t.n, false, threads());
      const ScratchSize batched{r.threads, 0, layout.bytes()};
      check_planned(batched, t.images * t.m * t.n, [&](float* c) {
        const int64_t image = t.m * t.n;
        kernel.run_packed_batched(packed, {t.images, t.n, b.data(), t.n, t.k * t.n, c, t.n, image, image}, {});
      });
    }
  }
}

TEST_CASE("conv workspace: a workspace a float too small, or for too few threads, is refused") {
  // Per thread: the separable pooling and the pooled tap GEMM.
  const Pool pool(reference::PoolMode::Average, make_window(2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}));
  const Shape in_shape{2, 9, 28, 28};
  const Tensor in = random_tensor(in_shape, 9700);
  ScratchSize size = pool_scratch(pool, in_shape);
  REQUIRE(size.per_thread > 0);
  size.per_thread -= 4;
  const auto pool_kernel = [&](float* out) { run_pool_fast(pool, in, out); };
  const std::string message = refusal(size, pool_kernel);
  CHECK(test::contains(message, "pool_separable needs"));
  CHECK(test::contains(message, std::to_string(size.per_thread + 4)));
  CHECK(test::contains(message, std::to_string(size.per_thread + 4 - 64)));

  const PooledSetup s = pooled_setup(kPooledCases[0], 9710);
  const auto& conv = s.conv.conv;
  size = fast::conv_taps_max_pooled_scratch(conv.problem, s.problem, threads(), false);
  size.per_thread -= 4;
  CHECK(test::contains(refusal(size,
                               [&](float* out) {
                                 fast::conv_taps_max_pooled(conv.problem, conv.taps, s.conv.in.data(),
                                                            plain_epilogue(s.conv), s.problem, out);
                               }),
                       "tap_gemm max-pooled needs"));

  // Shared: a Winograd convolution's channels-last copy of its input.
  const ConvSetup w = setup(kConvCases[0], 9720);
  size = fast::conv_scratch(w.conv, threads(), false);
  REQUIRE(size.shared > 0);
  size.shared -= 4;
  const auto winograd = [&](float* out) { fast::run_conv(w.conv, w.in.data(), full_epilogue(w), out); };
  CHECK(test::contains(refusal(size, winograd), "channels-last copy needs"));

  if (threads() >= 2) {  // slabs for fewer threads than the pass runs
    size = fast::conv_scratch(w.conv, threads(), false);
    size.threads = threads() - 1;
    CHECK(test::contains(refusal(size, winograd), "winograd needs " + std::to_string(threads()) + " threads"));
  }
}

TEST_CASE("conv workspace: inside a scope no memory comes from anywhere else") {
  // A fresh thread has an empty fallback, and so do its OpenMP team's threads: had any kernel, on
  // any thread, used one, the bytes held would grow.
  const ConvSetup taps = setup(kConvCases[6], 9800), winograd = setup(kConvCases[2], 9810);
  const ConvSetup pointwise = setup(kConvCases[14], 9820);
  const ConvSetup phases = setup(kConvCases[std::size(kConvCases) - 2], 9825);
  const PooledSetup pooled = pooled_setup(kPooledCases[0], 9830);
  const PooledSetup pooled_phases = pooled_setup(kPooledCases[std::size(kPooledCases) - 1], 9835);
  const Pool pool(reference::PoolMode::Max, make_window(2, {1, 3, 3}, {1, 2, 2}, {0, 0, 0}));
  const Tensor pool_in = random_tensor(Shape{2, 5, 57, 57}, 9840);
  ScratchSize size = fast::conv_scratch(taps.conv, threads(), false);
  for (const ConvSetup* s : {&winograd, &pointwise, &phases}) {
    size = max_size(size, fast::conv_scratch(s->conv, threads(), false));
  }
  size = max_size(size, fast::conv_pooled_scratch(pooled.conv.conv, pooled.problem, threads(), false));
  size = max_size(size, fast::conv_pooled_scratch(pooled_phases.conv.conv, pooled_phases.problem, threads(), false));
  size = max_size(size, pool_scratch(pool, pool_in.shape()));
  std::vector<float> out(1 << 20);
  const auto run_all = [&] {
    for (const ConvSetup* s : {&taps, &winograd, &pointwise, &phases}) {
      fast::run_conv(s->conv, s->in.data(), full_epilogue(*s), out.data());
    }
    const fast::PaddedInput layout = next_layout(pointwise.conv);
    fast::ConvEpilogue e;
    e.channels_last_out = &layout;
    fast::run_conv(pointwise.conv, pointwise.in.data(), e, out.data());
    const auto& c = pooled.conv.conv;
    fast::conv_taps_max_pooled(c.problem, c.taps, pooled.conv.in.data(), plain_epilogue(pooled.conv), pooled.problem,
                               out.data());
    const auto& ph = pooled_phases.conv.conv;
    fast::conv_phase_winograd_max_pooled(ph.problem, ph.winograd, pooled_phases.conv.in.data(),
                                         plain_epilogue(pooled_phases.conv), pooled_phases.problem, out.data());
    run_pool_fast(pool, pool_in, out.data());
  };
  int64_t planned_growth = -1, fallback_growth = -1;
  std::thread([&] {
    Workspace workspace(size);
    const int64_t before = scratch_bytes();
    {
      const WorkspaceScope scope(workspace);
      run_all();
    }
    planned_growth = scratch_bytes() - before;
    run_all();  // the check's own check: without the scope the fallbacks grow
    fallback_growth = scratch_bytes() - before;
  }).join();
  CHECK(planned_growth == 0);
  CHECK(fallback_growth > 0);
}

TEST_CASE("conv workspace: two workspaces on two threads at once give the sequential results") {
  const ConvSetup winograd = setup(kConvCases[3], 9900), taps = setup(kConvCases[5], 9910);
  const ConvSetup pointwise = setup(kConvCases[14], 9920);
  const Pool pool(reference::PoolMode::Average, make_window(2, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}));
  const ConvSetup* convs[] = {&winograd, &taps, &pointwise};
  ScratchSize size = pool_scratch(pool, pointwise.out_shape);
  for (const ConvSetup* s : convs) size = max_size(size, fast::conv_scratch(s->conv, threads(), false));
  // One pass: the three convolutions on inputs scaled by `gain`, then the pooling.
  const auto pass = [&](float gain) {
    std::vector<float> result;
    for (const ConvSetup* s : convs) {
      Tensor in = s->in.clone(), out(s->out_shape);
      for (int64_t i = 0; i < in.numel(); ++i) in.data()[i] *= gain;
      fast::run_conv(s->conv, in.data(), full_epilogue(*s), out.data());
      if (s == &pointwise) {
        const Shape pooled_shape = pool.output_shape(std::span(&s->out_shape, 1));
        Tensor pooled(pooled_shape);
        run_pool_fast(pool, out, pooled.data());
        out = pooled;
      }
      result.insert(result.end(), out.data(), out.data() + out.numel());
    }
    return result;
  };
  const float gains[] = {1.0f, -0.5f, 2.0f, 0.25f};
  std::vector<std::vector<float>> sequential;
  for (const float g : gains) sequential.push_back(pass(g));
  // Each thread runs every pass a few times in its own workspace, in a different order.
  std::vector<std::vector<float>> results[2];
  const auto worker = [&](int id) {
    Workspace workspace(size);
    const WorkspaceScope scope(workspace);
    for (int round = 0; round < 3; ++round)
      for (int i = 0; i < 4; ++i) results[id].push_back(pass(gains[id == 0 ? i : 3 - i]));
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  for (int id = 0; id < 2; ++id) {
    REQUIRE(results[id].size() == 12);
    for (int j = 0; j < 12; ++j) {
      const int i = id == 0 ? j % 4 : 3 - j % 4;
      CHECK(same_bits(results[id][static_cast<std::size_t>(j)], sequential[static_cast<std::size_t>(i)]));
    }
  }
}
