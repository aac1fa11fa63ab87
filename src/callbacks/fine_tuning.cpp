#include <trainscope/callbacks/fine_tuning.h>
#include <trainscope/error.h>
#include <trainscope/track/archive.h>
#include <trainscope/models/model.h>
#include <trainscope/models/transfer.h>

#include <cstdio>

namespace trainscope::callbacks {

FineTuning::FineTuning(FineTuningOptions options, std::FILE* out)
    : options_(std::move(options)), out_(out) {
  if (options_.unfreeze_at_epoch < 0)
    throw ConfigError("finetune.unfreeze_at_epoch " + std::to_string(options_.unfreeze_at_epoch) +
                      " is out of range; expected >= 0 (0: the backbone stays frozen)");
  if (!(options_.backbone_lr_ratio > 0))
    throw ConfigError("finetune.backbone_lr_ratio " + std::to_string(options_.backbone_lr_ratio) +
                      " is out of range; expected a positive factor such as 0.1");
  if (options_.unfreeze_every < 1)
    throw ConfigError("finetune.unfreeze_every " + std::to_string(options_.unfreeze_every) +
                      " is out of range; expected a positive number of epochs");
}

void FineTuning::on_fit_start(TrainState& state) {
  groups_.clear();
  unfrozen_ = 0;
  std::vector<std::string> frozen;
  for (const auto& item : state.model->module().named_parameters())
    if (!item.value().requires_grad()) frozen.push_back(item.key());
  if (options_.groups.empty()) {
    if (!frozen.empty()) groups_.push_back(frozen);
    return;
  }
  for (const auto& prefix : options_.groups) {
    std::vector<std::string> names;
    for (const auto& name : models::parameter_names(*state.model, {prefix}))
      if (std::find(frozen.begin(), frozen.end(), name) != frozen.end()) names.push_back(name);
    if (names.empty())
      throw ConfigError("finetune.groups: '" + prefix + "' matches no frozen parameter of " +
                        state.model->name() + " (frozen: " + std::to_string(frozen.size()) +
                        " tensors, such as '" + (frozen.empty() ? "" : frozen.front()) + "')");
    groups_.push_back(names);
  }
}

void FineTuning::unfreeze_group(TrainState& state, size_t group, bool quiet) {
  auto params = state.model->module().named_parameters();
  std::vector<torch::Tensor> tensors;
  int64_t values = 0;
  for (const auto& name : groups_[group]) {
    torch::Tensor& t = params[name];
    t.set_requires_grad(true);
    tensors.push_back(t);
    values += t.numel();
  }
  if (options_.train_bn) {
    std::vector<std::string> prefixes;
    for (const auto& name : groups_[group]) prefixes.push_back(name.substr(0, name.rfind('.')));
    models::unfreeze(*state.model, prefixes, /*release_norm_stats=*/true);
  }
  auto& groups = state.optimizer->param_groups();
  auto options = groups.front().options().clone();
  const double lr = groups.front().options().get_lr() * options_.backbone_lr_ratio;
  options->set_lr(lr);
  state.optimizer->add_param_group(torch::optim::OptimizerParamGroup(tensors, std::move(options)));
  if (!quiet && out_) {
    const std::string which = options_.groups.empty()
                                  ? std::string("the backbone")
                                  : "backbone group '" + options_.groups[group] + "'";
    std::fprintf(out_, "epoch %lld: unfroze %s (%zu tensors, %lld values) at lr %g\n",
                 static_cast<long long>(state.epoch), which.c_str(), tensors.size(),
                 static_cast<long long>(values), lr);
    std::fflush(out_);
  }
}

void FineTuning::on_epoch_start(TrainState& state) {
  if (options_.unfreeze_at_epoch == 0 || state.optimizer == nullptr) return;
  while (unfrozen_ < static_cast<int64_t>(groups_.size()) &&
         state.epoch >= options_.unfreeze_at_epoch + unfrozen_ * options_.unfreeze_every)
    unfreeze_group(state, static_cast<size_t>(unfrozen_++), false);
}

void FineTuning::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& archive) {
  archive.write("unfrozen", c10::IValue(unfrozen_));
}

void FineTuning::on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) {
  const int64_t unfrozen = read_int(archive, "unfrozen");
  // The groups come back before the optimizer's state, which refers to them.
  for (int64_t g = unfrozen_; g < unfrozen && g < static_cast<int64_t>(groups_.size()); ++g)
    unfreeze_group(state, static_cast<size_t>(g), /*quiet=*/true);
  unfrozen_ = unfrozen;
}

}  // namespace trainscope::callbacks
