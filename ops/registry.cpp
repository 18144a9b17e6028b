#include "ops/registry.hpp"

#include <functional>
#include <map>

#include "ops/batchnorm/batchnorm.hpp"
#include "ops/concat/concat.hpp"
#include "ops/conv/conv.hpp"
#include "ops/dropout/dropout.hpp"
#include "ops/eltwise/eltwise.hpp"
#include "ops/inner_product/inner_product.hpp"
#include "ops/pool/pool.hpp"
#include "ops/relu/relu.hpp"

namespace ecocpu {

namespace {

using Factory = std::function<std::unique_ptr<Op>(AttrReader&)>;

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> table = {
      {"Convolution", [](AttrReader& a) { return Conv::create(a, 2); }},
      {"Conv3d", [](AttrReader& a) { return Conv::create(a, 3); }},
      {"BN", [](AttrReader& a) { return BatchNorm::create(a, 2); }},
      {"BN3d", [](AttrReader& a) { return BatchNorm::create(a, 3); }},
      {"Pooling", [](AttrReader& a) { return Pool::create(a, 2); }},
      {"Pooling3d", [](AttrReader& a) { return Pool::create(a, 3); }},
      {"ReLU", [](AttrReader& a) { return ReLU::create(a); }},
      {"Concat", [](AttrReader& a) { return Concat::create(a); }},
      {"Eltwise", [](AttrReader& a) { return Eltwise::create(a); }},
      {"InnerProduct", [](AttrReader& a) { return InnerProduct::create(a); }},
      {"Dropout", [](AttrReader& a) { return Dropout::create(a); }},
  };
  return table;
}

}  // namespace

std::unique_ptr<Op> create_op(const std::string& type, const Attrs& attrs, int64_t segments) {
  auto it = factories().find(type);
  if (it == factories().end()) {
    std::string known;
    for (const auto& name : known_op_types()) known += (known.empty() ? "" : ", ") + name;
    throw AttrError("unknown op '" + type + "' (known: " + known + ")");
  }
  AttrReader reader(attrs, segments);
  auto op = it->second(reader);
  reader.finish();
  return op;
}

std::vector<std::string> known_op_types() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

}  // namespace ecocpu
