#include "eco/checkpoint/checkpoint.hpp"

#include <map>
#include <set>

namespace ecocpu {

namespace {

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

bool holds_tensors(const PyObject& dict) {
  for (const auto& [k, v] : dict.entries) {
    if (v->type == PyType::Tensor) return true;
  }
  return false;
}

std::string top_level_keys(const PyObject& dict) {
  std::string keys;
  for (const auto& [k, v] : dict.entries) {
    if (k->type == PyType::Str) keys += (keys.empty() ? "" : ", ") + k->text;
  }
  return keys.empty() ? "none" : keys;
}

const PyObject& state_dict_of(const TorchFile& file) {
  const PyObject& root = file.root();
  if (root.type != PyType::Dict) {
    throw FileError(file.path() + ": the checkpoint holds a " + root.type_name() +
                    ", not a state_dict or a training checkpoint dict");
  }
  if (const PyObject* sd = root.get("state_dict")) {
    if (sd->type != PyType::Dict) throw FileError(file.path() + ": 'state_dict' is a " + sd->type_name());
    return *sd;
  }
  if (!holds_tensors(root)) {
    throw FileError(file.path() + ": no 'state_dict' and no tensors at the top level (keys: " +
                    top_level_keys(root) + ")");
  }
  return root;
}

std::optional<double> number_of(const TorchFile& file, const PyObject* v) {
  if (!v) return std::nullopt;
  if (v->type == PyType::Float) return v->real;
  if (v->type == PyType::Int) return static_cast<double>(v->integer);
  if (v->type == PyType::Tensor && tensor_numel(*v->tensor) == 1) {  // e.g. best_prec1 saved as a 0-d tensor
    try {
      Tensor t = file.to_float32(*v->tensor, "best_prec1");
      if (t.numel() == 1) return t.data()[0];
    } catch (const FileError&) {
    }
  }
  return std::nullopt;
}

}  // namespace

std::string canonical_name(const std::string& stored) {
  std::string name = stored;
  for (const char* prefix : {"module.", "base_model."}) {
    if (name.starts_with(prefix)) name = name.substr(std::char_traits<char>::length(prefix));
  }
  return name;
}

EcoCheckpoint read_checkpoint(const std::string& path) { return read_checkpoint(TorchFile::open(path)); }

EcoCheckpoint read_checkpoint(TorchFile file) {
  const std::string path = file.path();
  EcoCheckpoint c{std::move(file), {}, {}, {}, {}};
  const PyObject& root = c.file.root();
  if (root.type == PyType::Dict) {
    if (const PyObject* e = root.get("epoch"); e && e->type == PyType::Int) c.epoch = e->integer;
    if (const PyObject* a = root.get("arch"); a && a->type == PyType::Str) c.arch = a->text;
    c.best_prec1 = number_of(c.file, root.get("best_prec1"));
  }
  const PyObject& sd = state_dict_of(c.file);
  for (const auto& [k, v] : sd.entries) {
    if (k->type != PyType::Str) throw FileError(path + ": a state_dict key is a " + k->type_name());
    if (v->type != PyType::Tensor) {
      throw FileError(path + ": state_dict entry '" + k->text + "' is a " + v->type_name() + ", not a tensor");
    }
    c.entries.push_back({k->text, canonical_name(k->text), v->tensor.get()});
  }
  return c;
}

ClassifierInfo find_classifier(const EcoCheckpoint& c, const std::string& last_layer) {
  for (const std::string& layer : {std::string("new_fc"), last_layer}) {
    for (const auto& e : c.entries) {
      if (e.canonical == layer + ".weight" && e.tensor->shape.size() == 2) return {layer, e.tensor->shape[0]};
    }
  }
  throw FileError(c.file.path() + ": no classifier in the state_dict (expected new_fc.weight or base_model." +
                  last_layer + ".weight)");
}

WeightStore load_weights(const EcoCheckpoint& c, const Graph& graph) {
  std::map<std::string, const CheckpointEntry*> by_name;
  for (const auto& e : c.entries) {
    if (e.canonical.ends_with(".num_batches_tracked")) continue;
    by_name[e.canonical] = &e;
  }
  std::vector<std::string> problems;
  std::set<std::string> used;
  WeightStore store;
  for (const auto& node : graph.nodes) {
    for (const auto& spec : node.params) {
      const std::string key = param_key(node, spec);
      auto it = by_name.find(key);
      if (it == by_name.end()) {
        problems.push_back("missing " + key + " " + spec.shape.str());
        continue;
      }
      used.insert(key);
      const TensorRef& t = *it->second->tensor;  // its data is checked, finite values included, when converted
      const std::vector<int64_t> want(spec.shape.begin(), spec.shape.end());
      if (t.shape != want) {
        problems.push_back("shape of " + it->second->name + " is " + shape_text(t.shape) +
                           ", the model needs " + spec.shape.str());
        continue;
      }
      try {
        store.set(key, c.file.to_float32(t, it->second->name));
      } catch (const FileError& e) {
        problems.push_back(std::string(e.what()).substr(c.file.path().size() + 2));
      }
    }
  }
  for (const auto& [name, entry] : by_name) {
    if (!used.count(name)) problems.push_back("unexpected " + entry->name + " " + shape_text(entry->tensor->shape));
  }
  if (!problems.empty()) {
    std::string text = c.file.path() + ": does not fit the model (" + std::to_string(problems.size()) + " problem(s)): ";
    for (std::size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    throw FileError(text);
  }
  return store;
}

}  // namespace ecocpu
