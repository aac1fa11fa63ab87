#pragma once
// Losses as callables: from the model's outputs and the batch's targets to the batch's mean loss
// (0-dim). The built-ins come from make_loss; any function of the same signature works
// (TrainerOptions::loss_function).
#include <trainscope/config.h>
#include <trainscope/train/metrics.h>

#include <functional>
#include <vector>

namespace trainscope {

using LossFunction =
    std::function<torch::Tensor(const torch::Tensor& output, const torch::Tensor& target)>;

// kAuto: cross-entropy for classification, segmentation and sequence, BCE-with-logits for
// multilabel, MSE for regression.
enum class Loss { kAuto, kCrossEntropy, kBce, kMse, kL1, kHuber };
inline constexpr EnumName<Loss> kLossNames[] = {
    {Loss::kAuto, "auto"}, {Loss::kCrossEntropy, "cross_entropy"},
    {Loss::kBce, "bce"},   {Loss::kMse, "mse"},
    {Loss::kL1, "l1"},     {Loss::kHuber, "huber"}};

struct LossOptions {
  Loss kind = Loss::kAuto;
  // Cross-entropy: a weight per class (empty: all 1), as torch's `weight`: the mean is over the
  // weights of the batch's targets. BCE: a weight per label for its positive examples, as
  // torch's `pos_weight` (3.0 counts each positive of that label three times).
  std::vector<double> class_weights;
  // Cross-entropy: the target puts 1 - s on its class and s spread over all classes. BCE: each
  // 0/1 target moves s/2 towards 1/2.
  double label_smoothing = 0.0;
  double huber_delta = 1.0;  // huber: quadratic within +-delta of the target, linear beyond
};

// The built-in loss for `task` (train/state.h says what each task's outputs and targets are):
// cross_entropy on [batch, classes] logits and class indices (or class probabilities, as mixup
// gives), per pixel for segmentation and per step for sequence (padding, -100, left out); bce
// (sigmoid and binary cross-entropy in one, numerically stable) on multilabel logits; mse, l1 or
// huber on values (the targets reshaped to the output and cast to its type). Throws ConfigError
// naming the loss and the task when they do not fit (mse for classification, cross_entropy for
// regression, ...) and for out-of-range options; the returned function throws ShapeError when
// the class weights do not match the outputs.
LossFunction make_loss(Task task, const LossOptions& options);

// Inverse-frequency class weights, n / (classes x count) per class (sklearn's and Keras's
// "balanced"), from the training labels; a class without examples gets 0.
std::vector<double> balanced_class_weights(const torch::Tensor& labels, int64_t classes);

}  // namespace trainscope
