#pragma once
// TorchScript models: a model exported from Python (torch.jit.script or torch.jit.trace, then
// .save) used as a trainscope Model, for inference or as a backbone to fine-tune.
#include <trainscope/models/model.h>

#include <filesystem>
#include <functional>
#include <utility>
#include <vector>
#include <string>

namespace trainscope::models {

// Loads `file` with torch::jit::load. The Model's module mirrors the scripted one: the same
// parameter and buffer tensors under the same names ("features.0.weight"), train()/eval() reach
// the scripted code's `training` flag, and forward() calls the scripted forward with the batch's
// input and expects one tensor back. A forward(self, x, lengths, ...) takes the batch's named
// inputs by argument name (Model::takes_inputs()); a missing one without a default, or one the
// forward has no argument for, is a ShapeError naming the file and the signature. Named after
// the file's stem. Throws CheckpointError naming the file when it cannot be read as TorchScript,
// ShapeError when its forward takes no input.
Model load_torchscript(const std::filesystem::path& file);

// Writes the TorchScript module behind `model` (one load_torchscript gave) with its current
// weights to `file`, atomically: torch.jit.load in Python and torch::jit::load in C++ read it.
// Throws ConfigError when `model` is not a TorchScript model (zoo models export as state dicts).
void save_torchscript(const Model& model, const std::filesystem::path& file);

// The model's last operation when it is a bounded activation: "sigmoid", "tanh", "relu" (ReLU,
// ReLU6) or "softplus", read from the last module of a Sequential (descending into a trailing
// Sequential) or from the graph of a TorchScript model's forward, inlined; "" when it is
// another operation or cannot be told (a custom C++ module). Diagnostics uses it to know the
// range a regression output can reach.
std::string output_activation(const Model& model);

// Each activation's output in a TorchScript model's forward, for diagnostics on models that are
// not a Sequential: a function from a batch's input (and named inputs) to the outputs of every
// relu, sigmoid and tanh of the forward's inlined graph (nn.ReLU modules and F.relu calls alike;
// not those inside if/loop blocks), in graph order, named "<n>:relu", "<n>:tanh"... with n their
// order. Null when `model` is not TorchScript or its forward has none of them. The function
// runs the graph (built once here) without its output; not thread-safe.
using ActivationOutputs = std::function<std::vector<std::pair<std::string, torch::Tensor>>(
    const torch::Tensor& x, const TensorMap& inputs)>;
ActivationOutputs torchscript_activations(const Model& model);

// True when `file` looks like a TorchScript archive (a zip with code/ and constants.pkl entries)
// rather than a trainscope checkpoint.
bool is_torchscript_file(const std::filesystem::path& file);

}  // namespace trainscope::models
