#pragma once
// The tensors a graph's layers need, keyed "<layer id>.<param>" (e.g. "res3a_2.weight").
#include <map>
#include <string>
#include <vector>

#include "graph/ir.hpp"
#include "tensor/tensor.hpp"

namespace ecocpu {

class WeightStore {
 public:
  void set(const std::string& key, Tensor tensor) { tensors_[key] = std::move(tensor); }
  void erase(const std::string& key) { tensors_.erase(key); }
  const Tensor* find(const std::string& key) const;
  std::size_t size() const { return tensors_.size(); }
  const std::map<std::string, Tensor>& all() const { return tensors_; }

 private:
  std::map<std::string, Tensor> tensors_;
};

std::string param_key(const Node& node, const ParamSpec& spec);

// Every problem at once: missing tensors, wrong shapes, and tensors no layer uses.
std::vector<std::string> check_weights(const Graph& graph, const WeightStore& weights);

// Bytes of every parameter and state tensor the graph needs.
int64_t weight_bytes(const Graph& graph);

}  // namespace ecocpu
