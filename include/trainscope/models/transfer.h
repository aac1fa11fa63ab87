#pragma once
// Transfer learning: find a model's head (its last Linear layer), give it a new size for a new
// task, freeze the backbone (no gradients, out of the optimizer, BatchNorm statistics fixed) and
// unfreeze it, by module name or name prefix. Works on zoo models, user Sequentials and
// TorchScript models (models/torchscript.h) alike, since all are torch::nn::Module trees.
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

// The head: the layer named `name`, or, when `name` is empty, the model's last layer (its last
// leaf module in registration order) when that is a Linear. Throws ConfigError when the name is
// unknown or not a Linear, or when the last layer is not a Linear (a softmax, a pooling layer):
// the message lists the Linear layers to choose from.
LinearLayer find_head(const Model& model, const std::string& name = "");

// Replaces the head's weights with freshly initialized ones for `outputs` outputs (torch's
// Linear initialization: uniform in +-1/sqrt(in_features), from the global generator), keeping
// its input size and whether it has a bias. The model forwards as before with `outputs` values
// per example. Returns the new head.
LinearLayer replace_head(const Model& model, int64_t outputs, const std::string& name = "");

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
