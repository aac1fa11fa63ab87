#pragma once
// TensorMap: named tensors, as a batch's further inputs (tabular features beside images, lengths
// beside tokens) or further targets (a second task's labels) carry them.

#include <trainscope/error.h>

#include <torch/torch.h>

#include <map>
#include <string>

namespace trainscope {

// Ordered by name. Copies share the tensors, as torch::Tensor copies do.
class TensorMap {
 public:
  TensorMap() = default;
  TensorMap(std::initializer_list<std::pair<const std::string, torch::Tensor>> items)
      : items_(items) {}

  // The tensor named `name`. Throws ShapeError naming it and the names there are: a model's
  // forward that asks for an input the batch does not carry says so.
  const torch::Tensor& at(const std::string& name) const {
    auto it = items_.find(name);
    if (it == items_.end()) {
      std::string names;
      for (const auto& [k, v] : items_) names += (names.empty() ? "" : ", ") + k;
      throw ShapeError("the batch has no input or target named \"" + name + "\"; it has " +
                       (names.empty() ? std::string("none") : names) +
                       " (data::TensorDataset's inputs and targets name them)");
    }
    return it->second;
  }
  void set(const std::string& name, torch::Tensor tensor) { items_[name] = std::move(tensor); }
  bool contains(const std::string& name) const { return items_.count(name) > 0; }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  // Every tensor with `f` applied (a device move, an index_select), under the same names.
  template <typename F>
  TensorMap map(F&& f) const {
    TensorMap out;
    for (const auto& [k, v] : items_) out.items_[k] = f(v);
    return out;
  }

 private:
  std::map<std::string, torch::Tensor> items_;
};

}  // namespace trainscope
