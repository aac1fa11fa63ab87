#pragma once
// Transfer learning: find a model's head (its last Linear layer), give it a new size for a new
// task, freeze the backbone (no gradients, out of the optimizer, BatchNorm statistics fixed) and
// unfreeze it, by module name or name prefix. Works on zoo models, user Sequentials and
// TorchScript models (models/torchscript.h) alike, since all are torch::nn::Module trees.
#include <trainscope/config.h>
#include <trainscope/models/model.h>

#include <filesystem>
#include <string>
#include <vector>

namespace trainscope::models {

// A Linear layer of a model, by its module name ("11", "fc", "classifier.6").
struct LinearLayer {
  std::string name;
  int64_t in_features = 0;
  int64_t out_features = 0;
  std::string describe() const;  // "fc (512 -> 10)"
};

// Every Linear layer, in module order.
std::vector<LinearLayer> linear_layers(const Model& model);

// The head: the layer named `name`, or, when `name` is empty, the model's last Linear layer in
// registration order when only layers without parameters that keep the values as they are
// follow it (Dropout, Flatten, Identity, Unflatten). That covers torchvision's `fc` and
// `classifier.N`, timm's `head` and `head.fc`, and a Sequential's last Linear. Throws
// ConfigError when the name is unknown or not a Linear, or when another layer comes last (a
// softmax, a pooling or normalization layer): the message lists the Linear layers to choose from.
LinearLayer find_head(const Model& model, const std::string& name = "");

// How a new head starts. kZero: weight and bias 0, so that the first outputs are all 0 and a
// classifier's first loss is exactly log(classes), whatever the size of the frozen features
// (a random head over large features starts far off and spends its first steps undoing that).
// kTorch: torch's Linear initialization, uniform in +-1/sqrt(in_features) from the global
// generator.
enum class HeadInit { kZero, kTorch };
inline constexpr EnumName<HeadInit> kHeadInitNames[] = {{HeadInit::kZero, "zero"},
                                                        {HeadInit::kTorch, "torch"}};

// Replaces the head's weights with new ones for `outputs` outputs, keeping its input size and
// whether it has a bias. The model forwards as before with `outputs` values per example. Returns
// the new head.
LinearLayer replace_head(const Model& model, int64_t outputs, const std::string& name = "",
                         HeadInit init = HeadInit::kZero);

// The head's parameters, shared with the model (bias undefined when it has none).
struct HeadParameters {
  torch::Tensor weight, bias;
};
HeadParameters head_parameters(const Model& model, const LinearLayer& head);

// Other weights in the head for a scope: `weight` and `bias` (any sizes the forward takes) until
// the scope ends, however it ends; then the head's own again, the same tensors. No gradients.
class HeadWeightsScope {
 public:
  HeadWeightsScope(const Model& model, const LinearLayer& head, const torch::Tensor& weight,
                   const torch::Tensor& bias);
  ~HeadWeightsScope();
  HeadWeightsScope(const HeadWeightsScope&) = delete;
  HeadWeightsScope& operator=(const HeadWeightsScope&) = delete;

 private:
  HeadParameters params_;
  torch::Tensor weight_, bias_;  // the head's own data
};

// The head's inputs for the examples `x`: the backbone's features, [N, in_features]. Runs the
// model's own forward, in the mode it is in and without gradients, with the head standing in
// for the identity map for the call (weight I, bias 0; x * 1 + 0 is exact, so the features are
// those the head receives). Works on any model whose head is a Linear layer: zoo, Sequential
// and TorchScript alike.
torch::Tensor head_inputs(const Model& model, const LinearLayer& head, const torch::Tensor& x);

// Whether `module` is a BatchNorm layer (1d, 2d or 3d; a LibTorch one or a TorchScript one).
bool is_batch_norm(const torch::nn::Module& module);

// The model's BatchNorm layers that keep running statistics, in registration order.
std::vector<std::string> batch_norm_layers(const Model& model);

// How far the inputs `x` give the BatchNorm layer `name` statistics other than the running ones
// it recorded in training: sum over channels of (mean - running_mean)^2 / running_var +
// (var - running_var)^2 / running_var^2, times an unknown constant (1 / momentum^2) that is the
// same for every `x`, so that values rank inputs by how close they come to the training
// distribution. Runs the forward in eval mode with that layer alone in training mode, then puts
// its statistics and mode back.
double batch_norm_mismatch(const Model& model, const std::string& name, const torch::Tensor& x);

// Parameters whose names are `prefix` or start with `prefix` + "." (every parameter when
// `prefixes` is empty).
std::vector<std::string> parameter_names(const Model& model,
                                         const std::vector<std::string>& prefixes = {});

// Stops the matching parameters from training (requires_grad false: no gradients, and the
// Trainer leaves them out of the optimizer); with `freeze_norm_stats`, BatchNorm layers among
// them keep their running statistics (Model::keep_in_eval). Returns the number of tensors.
int64_t freeze(const Model& model, const std::vector<std::string>& prefixes = {},
               bool freeze_norm_stats = true);
// The inverse; `release_norm_stats` lets their BatchNorm statistics move again.
int64_t unfreeze(const Model& model, const std::vector<std::string>& prefixes = {},
                 bool release_norm_stats = false);
// Freezes everything but `head`: the backbone. Returns the number of frozen tensors.
int64_t freeze_backbone(const Model& model, const LinearLayer& head, bool train_bn = false);

// Loads every parameter and buffer of `model` except those of the layer `skip` (the head, whose
// size changed) from the model part of checkpoint `file` (.ckpt, verified) or weights file.
// Throws CheckpointError naming the file and the first tensor that is missing or has another
// shape (another architecture, or inputs of another size).
void load_backbone(const Model& model, const std::filesystem::path& file, const std::string& skip);

}  // namespace trainscope::models
