#include <trainscope/callbacks/fine_tuning.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>
#include <trainscope/models/transfer.h>
#include <trainscope/track/archive.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace trainscope::callbacks {

FineTuning::FineTuning(FineTuningOptions options, std::FILE* out)
    : options_(std::move(options)), out_(out) {
  auto fail = [](const std::string& field, const std::string& value, const std::string& expected) {
    throw ConfigError("finetune." + field + " " + value + " is out of range; expected " + expected);
  };
  if (options_.unfreeze_at_epoch < 0)
    fail("unfreeze_at_epoch", std::to_string(options_.unfreeze_at_epoch),
         ">= 0 (0: when the head has converged)");
  if (!(options_.backbone_lr_ratio > 0))
    fail("backbone_lr_ratio", std::to_string(options_.backbone_lr_ratio),
         "a positive factor such as 0.1");
  if (options_.unfreeze_every < 1)
    fail("unfreeze_every", std::to_string(options_.unfreeze_every), "a positive number of epochs");
  if (options_.head_epochs < 1)
    fail("head_epochs", std::to_string(options_.head_epochs), "a positive number of epochs");
  if (options_.head_patience < 1)
    fail("head_patience", std::to_string(options_.head_patience), "a positive number of epochs");
  if (!(options_.lr >= 0)) fail("lr", std::to_string(options_.lr), ">= 0 (0: the head's own)");
  if (options_.warmup_steps < 0)
    fail("warmup_steps", std::to_string(options_.warmup_steps), ">= 0 (0: no warm-up)");
}

void FineTuning::on_fit_start(TrainState& state) {
  groups_.clear();
  unfrozen_ = unfreeze_at_ = 0;
  target_lrs_.clear();
  start_steps_.clear();
  recipe_.clear();
  why_.clear();
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
  // The head's lr for the whole-model phase, once, with the first group.
  if (group == 0 && options_.lr > 0 && !quiet) groups.front().options().set_lr(options_.lr);
  auto options = groups.front().options().clone();
  const double lr = groups.front().options().get_lr() * options_.backbone_lr_ratio;
  options->set_lr(options_.warmup_steps > 0 ? 0.0 : lr);
  state.optimizer->add_param_group(torch::optim::OptimizerParamGroup(tensors, std::move(options)));
  if (quiet) return;
  if (group == 0) head_lr_ = groups.front().options().get_lr();
  target_lrs_.push_back(lr);
  start_steps_.push_back(state.global_step);
  if (!out_) return;
  const std::string which = options_.groups.empty()
                                ? std::string("the backbone")
                                : "backbone group '" + options_.groups[group] + "'";
  std::string warmup;
  if (options_.warmup_steps > 0)
    warmup = ", reached over " + std::to_string(options_.warmup_steps) + " warm-up steps";
  if (options_.anneal && state.max_epochs > 0)
    warmup += ", every lr then annealed along a cosine to 0 at the end of epoch " +
              std::to_string(state.max_epochs);
  std::fprintf(
      out_, "epoch %lld: unfroze %s (%zu tensors, %lld values) at lr %g%s; head at lr %g%s\n",
      static_cast<long long>(state.epoch), which.c_str(), tensors.size(),
      static_cast<long long>(values), lr, warmup.c_str(), groups.front().options().get_lr(),
      group == 0 && !why_.empty() ? (" (" + why_ + ")").c_str() : "");
  std::fflush(out_);
}

void FineTuning::on_epoch_start(TrainState& state) {
  if (options_.head_only || state.optimizer == nullptr || groups_.empty()) return;
  if (unfreeze_at_ == 0) {
    const int64_t done = state.epoch - 1;  // head epochs so far
    const BestEpoch& best = state.best;
    char buf[192];
    if (options_.unfreeze_at_epoch > 0) {
      if (state.epoch >= options_.unfreeze_at_epoch) {
        unfreeze_at_ = options_.unfreeze_at_epoch;
        why_ = "finetune.unfreeze_at_epoch";
      }
    } else if (best.epoch > 0 && done - best.epoch >= options_.head_patience) {
      unfreeze_at_ = state.epoch;
      std::snprintf(buf, sizeof buf, "the head's %s has not improved for %lld epochs",
                    best.by.name.c_str(), static_cast<long long>(done - best.epoch));
      why_ = buf;
    } else if (done >= options_.head_epochs) {
      unfreeze_at_ = state.epoch;
      std::snprintf(buf, sizeof buf, "%lld head epochs (finetune.head_epochs)",
                    static_cast<long long>(done));
      why_ = buf;
    }
    if (unfreeze_at_ == 0) return;
    head_best_value_ = best.value;
    state.phase_epoch = unfreeze_at_;
  }
  while (unfrozen_ < static_cast<int64_t>(groups_.size()) &&
         state.epoch >= unfreeze_at_ + unfrozen_ * options_.unfreeze_every)
    unfreeze_group(state, static_cast<size_t>(unfrozen_++), false);
}

void FineTuning::on_train_batch_start(TrainState& state) {
  if (unfrozen_ == 0 || state.optimizer == nullptr || start_steps_.empty()) return;
  // head_lr_ is 0 for checkpoints from before the anneal: they resume as they ran.
  const bool anneal =
      options_.anneal && head_lr_ > 0 && state.max_epochs > 0 && state.batches_per_epoch > 0;
  if (options_.warmup_steps == 0 && !anneal) return;
  // From the first unfreezing to the end of the budget: 1 down to 0 along a cosine.
  double cosine = 1.0;
  if (anneal) {
    const int64_t end = state.max_epochs * state.batches_per_epoch;
    const double span = static_cast<double>(std::max<int64_t>(1, end - start_steps_.front()));
    const double t = std::clamp((state.global_step - start_steps_.front()) / span, 0.0, 1.0);
    cosine = 0.5 * (1.0 + std::cos(M_PI * t));
  }
  auto& groups = state.optimizer->param_groups();
  if (anneal && head_lr_ > 0) groups.front().options().set_lr(head_lr_ * cosine);
  // Each group rises from its own unfreezing, so that groups unfrozen later warm up too.
  const double steps = static_cast<double>(std::max<int64_t>(1, options_.warmup_steps));
  for (size_t g = 0; g < target_lrs_.size() && g + 1 < groups.size(); ++g) {
    const int64_t done = state.global_step - start_steps_[g];
    const double warm = options_.warmup_steps == 0 ? 1.0 : std::min(1.0, (done + 1) / steps);
    if (!anneal && done > options_.warmup_steps) continue;  // warmed up: its lr as set
    groups[g + 1].options().set_lr(target_lrs_[g] * warm * cosine);
  }
}

void FineTuning::on_fit_end(TrainState& state) {
  const BestEpoch& best = state.best;
  if (best.epoch == 0) return;
  char buf[320];
  if (unfreeze_at_ == 0 || best.epoch < unfreeze_at_) {
    recipe_ = "head";
    if (unfreeze_at_ == 0)
      std::snprintf(buf, sizeof buf, "fine-tuning: head only%s; best %s %.4g at epoch %lld",
                    options_.head_only ? " (finetune.head_only)" : ", the backbone never unfroze",
                    best.by.name.c_str(), best.value, static_cast<long long>(best.epoch));
    else
      std::snprintf(buf, sizeof buf,
                    "fine-tuning: head only; training the backbone from epoch %lld did not beat "
                    "the head phase's best %s %.4g (epoch %lld): its weights are the result",
                    static_cast<long long>(unfreeze_at_), best.by.name.c_str(), best.value,
                    static_cast<long long>(best.epoch));
  } else {
    recipe_ = "head+backbone";
    std::snprintf(buf, sizeof buf,
                  "fine-tuning: head, then the whole model from epoch %lld: best %s %.4g at epoch "
                  "%lld, against %.4g at the end of the head phase",
                  static_cast<long long>(unfreeze_at_), best.by.name.c_str(), best.value,
                  static_cast<long long>(best.epoch), head_best_value_);
  }
  if (state.run) state.run->store().set_meta("finetune.recipe", buf + 13);
  if (out_) {
    std::fprintf(out_, "%s\n", buf);
    std::fflush(out_);
  }
}

void FineTuning::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& archive) {
  archive.write("unfrozen", c10::IValue(unfrozen_));
  archive.write("unfreeze_at", c10::IValue(unfreeze_at_));
  archive.write("head_best_value", c10::IValue(head_best_value_));
  archive.write("why", c10::IValue(why_));
  archive.write("target_lrs", c10::IValue(target_lrs_));
  archive.write("start_steps", c10::IValue(start_steps_));
  archive.write("head_lr", c10::IValue(head_lr_));
}

void FineTuning::on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) {
  const int64_t unfrozen = read_int(archive, "unfrozen");
  c10::IValue v;
  if (archive.try_read("unfreeze_at", v)) {
    unfreeze_at_ = v.toInt();
    head_best_value_ = read_double(archive, "head_best_value");
    why_ = read_string(archive, "why");
    archive.read("target_lrs", v);
    target_lrs_ = v.toDoubleVector();
    archive.read("start_steps", v);
    start_steps_ = v.toIntVector();
    // Checkpoints from before the anneal: the head keeps the lr it has.
    head_lr_ = archive.try_read("head_lr", v) ? v.toDouble() : 0.0;
    if (state.resumed) {  // train.lr changed on resume
      head_lr_ *= state.resumed->lr_scale;
      for (auto& lr : target_lrs_) lr *= state.resumed->lr_scale;
    }
  } else if (unfrozen > 0) {
    unfreeze_at_ = options_.unfreeze_at_epoch;  // a checkpoint from before the auto recipe
  }
  if (unfreeze_at_ > 0) state.phase_epoch = unfreeze_at_;
  // The groups come back before the optimizer's state, which refers to them (with the lrs it
  // saved).
  for (int64_t g = unfrozen_; g < unfrozen && g < static_cast<int64_t>(groups_.size()); ++g)
    unfreeze_group(state, static_cast<size_t>(g), /*quiet=*/true);
  unfrozen_ = unfrozen;
}

}  // namespace trainscope::callbacks
