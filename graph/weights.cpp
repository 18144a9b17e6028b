#include "graph/weights.hpp"

#include "tensor/checked.hpp"

#include <set>

namespace ecocpu {

const Tensor* WeightStore::find(const std::string& key) const {
  auto it = tensors_.find(key);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::string param_key(const Node& node, const ParamSpec& spec) { return node.id + "." + spec.name; }

std::vector<std::string> check_weights(const Graph& graph, const WeightStore& weights) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  for (const auto& node : graph.nodes) {
    for (const auto& spec : node.params) {
      std::string key = param_key(node, spec);
      expected.insert(key);
      const Tensor* t = weights.find(key);
      if (!t) {
        problems.push_back("missing " + key + " " + spec.shape.str());
      } else if (t->shape() != spec.shape) {
        problems.push_back("shape of " + key + " is " + t->shape().str() + ", expected " +
                           spec.shape.str());
      }
    }
  }
  for (const auto& [key, tensor] : weights.all()) {
    if (!expected.count(key)) problems.push_back("unexpected " + key + " " + tensor.shape().str());
  }
  return problems;
}

int64_t weight_bytes(const Graph& graph) {
  int64_t n = 0;
  for (const auto& node : graph.nodes) {
    for (const auto& spec : node.params) n = checked_add(n, spec.shape.numel(), "the weights' size");
  }
  return checked_mul(n, sizeof(float), "the weights' size");
}

}  // namespace ecocpu
