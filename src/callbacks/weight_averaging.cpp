#include <trainscope/callbacks/weight_averaging.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>
#include <trainscope/track/archive.h>

#include <algorithm>
#include <string>
#include <unordered_map>

namespace trainscope::callbacks {

namespace {

// As Model::snapshot orders them: the parameters, then the buffers.
std::vector<torch::Tensor> tensors_of(const Model& model) {
  std::vector<torch::Tensor> out = model.module().parameters();
  for (const auto& b : model.module().buffers()) out.push_back(b);
  return out;
}

}  // namespace

WeightAveraging::WeightAveraging(WeightAveragingOptions options) : options_(options) {
  if (!(options_.decay >= 0.0 && options_.decay < 1.0))
    throw ConfigError("weight averaging decay " + std::to_string(options_.decay) +
                      " is out of range; expected a number in [0, 1) such as 0.99");
  if (options_.start_epoch < 1)
    throw ConfigError("weight averaging start_epoch " + std::to_string(options_.start_epoch) +
                      " is out of range; expected a positive epoch");
}

void WeightAveraging::on_fit_start(TrainState&) {
  average_.clear();
  own_.clear();
  moving_.clear();
  moving_epoch_ = 0;
  updates_ = 0;
}

void WeightAveraging::on_epoch_start(TrainState& state) { give_back(state); }

void WeightAveraging::on_train_batch_end(TrainState& state) {
  if (state.epoch < options_.start_epoch || state.model == nullptr) return;
  torch::NoGradGuard no_grad;
  if (moving_epoch_ != state.epoch) find_moving(state);
  const double n = static_cast<double>(updates_);
  const double weight = 1.0 - std::min(options_.decay, (1.0 + n) / (10.0 + n));
  for (const auto& [i, t] : moving_) {
    torch::Tensor& a = average_[i];
    if (!a.defined())
      a = t.clone();  // its first step: the average starts at the value it reached
    else if (a.is_floating_point())
      a.lerp_(t, weight);
    else
      a.copy_(t);
  }
  ++updates_;
}

// What can move in this epoch's steps: the parameters that require gradients and the buffers of
// layers in training mode (a layer in eval mode, such as a frozen BatchNorm, keeps its running
// statistics). Nothing else has an average of its own: it is its value. So a head phase on
// cached features costs the head, not the frozen backbone (11M values for a ResNet-18), in each
// step, at each validation and in each checkpoint. Found at each epoch's first step, once
// fine-tuning has unfrozen what it unfreezes.
void WeightAveraging::find_moving(TrainState& state) {
  moving_.clear();
  moving_epoch_ = state.epoch;
  const auto& module = state.model->module();
  const auto all = tensors_of(*state.model);
  average_.resize(all.size());
  std::unordered_map<const void*, size_t> index;
  for (size_t i = 0; i < all.size(); ++i) index.emplace(all[i].unsafeGetTensorImpl(), i);
  for (const auto& p : module.parameters())
    if (p.requires_grad()) moving_.emplace_back(index.at(p.unsafeGetTensorImpl()), p);
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (!m->is_training()) continue;
    for (const auto& b : m->buffers(/*recurse=*/false)) {
      auto it = index.find(b.unsafeGetTensorImpl());
      if (it != index.end()) moving_.emplace_back(it->second, b);
    }
  }
}

void WeightAveraging::on_validation_start(TrainState& state) { take_average(state); }

void WeightAveraging::on_epoch_end(TrainState& state) { take_average(state); }

void WeightAveraging::take_average(TrainState& state) {
  if (holding_ || average_.empty() || state.model == nullptr) return;
  torch::NoGradGuard no_grad;
  const auto all = tensors_of(*state.model);
  own_.assign(all.size(), torch::Tensor());
  for (size_t i = 0; i < average_.size() && i < all.size(); ++i) {
    if (!average_[i].defined()) continue;
    own_[i] = all[i].detach().clone();
    all[i].detach().copy_(average_[i]);
  }
  holding_ = true;
}

void WeightAveraging::give_back(TrainState& state) {
  if (!holding_ || state.model == nullptr) return;
  torch::NoGradGuard no_grad;
  const auto all = tensors_of(*state.model);
  for (size_t i = 0; i < own_.size() && i < all.size(); ++i)
    if (own_[i].defined()) all[i].detach().copy_(own_[i]);
  own_.clear();
  holding_ = false;
}

void WeightAveraging::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& archive) {
  std::vector<int64_t> averaged;
  for (size_t i = 0; i < average_.size(); ++i)
    if (average_[i].defined()) averaged.push_back(static_cast<int64_t>(i));
  archive.write("updates", c10::IValue(updates_));
  archive.write("holding", c10::IValue(holding_));
  archive.write("averaged", c10::IValue(averaged));
  for (int64_t i : averaged) {
    const auto key = std::to_string(i);
    archive.write("average/" + key, average_[static_cast<size_t>(i)], /*is_buffer=*/true);
    if (holding_) archive.write("own/" + key, own_[static_cast<size_t>(i)], /*is_buffer=*/true);
  }
}

void WeightAveraging::on_checkpoint_load(TrainState& state,
                                         torch::serialize::InputArchive& archive) {
  updates_ = read_int(archive, "updates");
  holding_ = read_bool(archive, "holding");
  c10::IValue v;
  archive.read("averaged", v);
  const size_t size = state.model ? tensors_of(*state.model).size() : 0;
  average_.assign(size, torch::Tensor());
  own_.assign(holding_ ? size : 0, torch::Tensor());
  for (int64_t i : v.toIntVector()) {
    if (i < 0 || static_cast<size_t>(i) >= size)
      throw CheckpointError("weight_averaging: the checkpoint averages tensor " +
                            std::to_string(i) + " of a model with " + std::to_string(size));
    const auto key = std::to_string(i);
    torch::Tensor t;
    archive.read("average/" + key, t, /*is_buffer=*/true);
    average_[static_cast<size_t>(i)] = t.clone();
    if (holding_) {
      archive.read("own/" + key, t, /*is_buffer=*/true);
      own_[static_cast<size_t>(i)] = t.clone();
    }
  }
  moving_.clear();
  moving_epoch_ = 0;
}

}  // namespace trainscope::callbacks
