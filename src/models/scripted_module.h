#pragma once
// Internal: a TorchScript module seen as a torch::nn::Module tree, so that everything the Trainer
// and the transfer-learning functions do with modules (parameters by name, train/eval, to(device),
// save/load, freezing) works on a model exported from Python.
#include <torch/script.h>
#include <torch/torch.h>

#include <string>

namespace trainscope::models::detail {

// Mirrors one scripted (sub)module: registers the very tensors of its parameters and buffers
// under the same names, and one child per scripted child, so "features.0.weight" is the same
// tensor on both sides. train() sets the scripted module's training flag too (dropout and
// BatchNorm read it). Holds the scripted module; not thread-safe.
class ScriptedModule : public torch::nn::Module {
 public:
  explicit ScriptedModule(torch::jit::Module module);
  void train(bool on = true) override;
  // The scripted type's name without its package: "Linear", "BatchNorm2d", "ResNet".
  const std::string& kind() const { return kind_; }
  torch::jit::Module& scripted() { return module_; }

 private:
  torch::jit::Module module_;
  std::string kind_;
};

// "Linear" for torch::nn::Linear, the scripted type's name for a ScriptedModule, else the module's
// C++ name without namespace and "Impl" ("BatchNorm2d", "ReLU").
std::string layer_kind(const torch::nn::Module& module);

}  // namespace trainscope::models::detail
