// Times loading ECO checkpoints into a WeightStore: reading the file (memory map, pickle, zip or
// legacy layout), matching every tensor to the graph and converting where needed. "touched" adds
// one pass over every weight, so page faults of the lazily mapped file are paid too.
//
// usage: bench_checkpoint_load [google-benchmark flags]
// The checkpoints are the PyTorch reference data ctest writes (build/tests/torch_reference);
// ECOCPU_CHECKPOINT_DIR overrides the folder.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include "eco/checkpoint/checkpoint.hpp"
#include "eco/model.hpp"

namespace {

using namespace ecocpu;

std::string checkpoint_path(const std::string& name) {
  const char* dir = std::getenv("ECOCPU_CHECKPOINT_DIR");
  return std::string(dir ? dir : ECOCPU_DEFAULT_CHECKPOINT_DIR) + "/" + name;
}

void bench_load(benchmark::State& state, const std::string& name, const std::string& arch,
                int64_t segments, int64_t classes, bool touch) {
  const std::string path = checkpoint_path(name);
  if (!std::filesystem::exists(path)) {
    state.SkipWithError((path + " is missing: run ctest -R torch_reference first").c_str());
    return;
  }
  ModelConfig config;
  config.arch = arch;
  config.segments = segments;
  config.classes = classes;
  Graph graph = build_model(config);
  double checksum = 0;
  for (auto _ : state) {
    EcoCheckpoint c = read_checkpoint(path);
    WeightStore w = load_weights(c, graph);
    if (touch) {
      for (const auto& [key, t] : w.all()) {
        for (int64_t i = 0; i < t.numel(); i += 1024) checksum += t.data()[i];
      }
    }
    benchmark::DoNotOptimize(w);
  }
  benchmark::DoNotOptimize(checksum);
  state.counters["MB"] = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
}

}  // namespace

BENCHMARK_CAPTURE(bench_load, eco_zip_150MB, std::string("eco16_400_zip.pth.tar"), std::string("ECO"), 16, 400, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_load, eco_zip_150MB_touched, std::string("eco16_400_zip.pth.tar"), std::string("ECO"), 16, 400, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_load, eco_legacy_150MB, std::string("eco4_legacy_training_module.pth.tar"), std::string("ECO"), 4, 400, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_load, eco_legacy_fp16, std::string("eco4_legacy_float16.pth.tar"), std::string("ECO"), 4, 400, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bench_load, ecofull_zip_190MB, std::string("ecofull16_101_zip.pth.tar"), std::string("ECOfull"), 16, 101, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
