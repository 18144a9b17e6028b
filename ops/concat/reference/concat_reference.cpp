#include "ops/concat/reference/concat_reference.hpp"

#include <algorithm>
#include <numeric>

namespace ecocpu::reference {

void concat_channels(int64_t outer, int64_t inner, const std::vector<const float*>& inputs,
                     const std::vector<int64_t>& channels, float* out) {
  const int64_t total = std::accumulate(channels.begin(), channels.end(), int64_t{0});
  for (int64_t n = 0; n < outer; ++n) {
    int64_t offset = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const float* src = inputs[i] + n * channels[i] * inner;
      std::copy(src, src + channels[i] * inner, out + (n * total + offset) * inner);
      offset += channels[i];
    }
  }
}

}  // namespace ecocpu::reference
