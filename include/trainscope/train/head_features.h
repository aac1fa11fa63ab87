#pragma once
// The head phase of fine-tuning on cached features. While only a model's head (a Linear layer)
// trains and nothing augments the inputs, the frozen backbone is a fixed map: its features can be
// computed once per example and the head trained on them alone, at the cost of a Linear layer per
// step instead of the whole network's forward.
#include <trainscope/data/dataset.h>
#include <trainscope/models/model.h>
#include <trainscope/models/transfer.h>

#include <string>

namespace trainscope {

// What the head receives for each example of a dataset, in order, with the targets beside them.
struct HeadFeatures {
  torch::Tensor features;  // [N, in_features], float32, on the CPU
  torch::Tensor targets;   // as the dataset gives them, on the CPU
  double seconds = 0.0;    // to compute them
};

// The model's forward in eval mode, without gradients, `batch_size` examples at a time, with the
// head standing in for the identity (models::head_inputs). `transform`, when given, maps each
// batch of inputs first (a normalization probe's candidate).
HeadFeatures head_features(
    const Model& model, const models::LinearLayer& head, const data::Dataset& dataset,
    int64_t batch_size, const torch::Device& device,
    const std::function<torch::Tensor(const torch::Tensor&)>& transform = {});

// The head alone, as a Model over features: the Linear map with the head's own weight and bias,
// shared with `model` (training it trains the model's head), on `model`'s module (train(),
// eval() and the layers kept in eval are the model's).
Model head_model(const Model& model, const models::LinearLayer& head);

// Empty when `model`'s outputs for `x` are its head's outputs for its features (float tolerance),
// else why not: what follows the head changes the values (a softmax, a scale), or the forward
// cannot run with the head as the identity. Eval mode, no gradients.
std::string check_head_outputs(const Model& model, const models::LinearLayer& head,
                               const torch::Tensor& x);

}  // namespace trainscope
