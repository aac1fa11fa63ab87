#pragma once
// Model: a torch::nn::Module together with its forward function, so that the Trainer can take
// any module (a zoo model, a user's Sequential, a custom Module) without templates.

#include <trainscope/tensor_map.h>

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace trainscope {

// Shares ownership of the module with whoever built it: training a Model trains the module.
// Copies are cheap and refer to the same module. Not thread-safe.
class Model {
 public:
  using Forward = std::function<torch::Tensor(const torch::Tensor&)>;
  // A forward that also takes the batch's named inputs (data::Batch::inputs): images and
  // tabular features, tokens and lengths.
  using ForwardWithInputs =
      std::function<torch::Tensor(const torch::Tensor& x, const TensorMap& inputs)>;

  Model() = default;
  Model(std::shared_ptr<torch::nn::Module> module, Forward forward, std::string name = "model")
      : module_(std::move(module)), forward_(std::move(forward)), name_(std::move(name)) {}
  Model(std::shared_ptr<torch::nn::Module> module, ForwardWithInputs forward,
        std::string name = "model")
      : module_(std::move(module)), with_inputs_(std::move(forward)), name_(std::move(name)) {}

  // From any module holder with `Tensor forward(Tensor)`: Model(torch::nn::Sequential(...)).
  template <typename ModuleType>
  Model(torch::nn::ModuleHolder<ModuleType> holder, std::string name = "model")  // NOLINT
      : Model(holder.ptr(),
              Forward([m = holder.ptr()](const torch::Tensor& x) { return m->forward(x); }),
              std::move(name)) {}

  // A forward of (x, inputs) gets no named inputs here (TensorMap::at names what is missing).
  torch::Tensor forward(const torch::Tensor& x) const {
    return with_inputs_ ? with_inputs_(x, {}) : forward_(x);
  }
  // Throws ShapeError when the batch carries named inputs that a forward of x alone would drop.
  torch::Tensor forward(const torch::Tensor& x, const TensorMap& inputs) const;
  torch::Tensor operator()(const torch::Tensor& x) const { return forward(x); }
  bool takes_inputs() const { return static_cast<bool>(with_inputs_); }

  // This model (the same module, the same layers kept in eval mode) with another forward.
  Model with_forward(Forward forward) const {
    Model m = *this;
    m.forward_ = std::move(forward);
    m.with_inputs_ = nullptr;
    return m;
  }

  torch::nn::Module& module() const { return *module_; }
  const std::shared_ptr<torch::nn::Module>& ptr() const { return module_; }
  const std::string& name() const { return name_; }
  bool defined() const { return module_ != nullptr; }

  // Sets training mode on the whole module; the modules kept in eval mode (below) stay in it.
  void train(bool on = true) const;
  void eval() const { train(false); }
  // Keeps `module` (a part of this model) in eval mode whatever train() is asked: a frozen
  // backbone's BatchNorm layers keep their running statistics. release_from_eval() undoes it.
  void keep_in_eval(const std::shared_ptr<torch::nn::Module>& module) const;
  void release_from_eval(const std::shared_ptr<torch::nn::Module>& module) const;
  const std::vector<std::shared_ptr<torch::nn::Module>>& kept_in_eval() const { return *kept_; }
  bool is_training() const { return module_->is_training(); }
  void to(const torch::Device& device) const { module_->to(device); }
  std::vector<torch::Tensor> parameters() const { return module_->parameters(); }
  int64_t num_parameters() const;
  // A copy of every parameter and buffer (in module order), and its inverse: weights and
  // statistics such as BatchNorm's running mean come back exactly.
  std::vector<torch::Tensor> snapshot() const;
  void restore(const std::vector<torch::Tensor>& snapshot) const;

 private:
  std::shared_ptr<torch::nn::Module> module_;
  Forward forward_;
  ForwardWithInputs with_inputs_;  // set instead of forward_
  std::string name_;
  // Shared by copies, like the module.
  std::shared_ptr<std::vector<std::shared_ptr<torch::nn::Module>>> kept_ =
      std::make_shared<std::vector<std::shared_ptr<torch::nn::Module>>>();
};

// Switches a model to eval mode for a scope and restores the previous mode on exit.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(const Model& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  const Model& model_;
  bool was_training_;
};

}  // namespace trainscope
