#include <trainscope/track/archive.h>
#include <trainscope/callbacks/lr_schedule.h>
#include <trainscope/error.h>

#include <cmath>
#include <cstdio>
#include <limits>

namespace trainscope::callbacks {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Sets beta1 (Adam, AdamW) or the momentum (SGD) of a parameter group; other optimizers have none.
void set_momentum(torch::optim::OptimizerParamGroup& group, double m) {
  auto& options = group.options();
  if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&options)) {
    adam->betas(std::make_tuple(m, std::get<1>(adam->betas())));
  } else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&options)) {
    adamw->betas(std::make_tuple(m, std::get<1>(adamw->betas())));
  } else if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&options)) {
    sgd->momentum(m);
  }
}

int64_t total_steps(const TrainState& s) {
  return std::max<int64_t>(1, s.max_epochs * s.batches_per_epoch);
}

}  // namespace

// --- LrSchedule ---------------------------------------------------------------------------------

void LrSchedule::on_fit_start(TrainState& state) {
  base_.clear();
  base_lrs(state);
}

const std::vector<double>& LrSchedule::base_lrs(TrainState& state) {
  if (state.optimizer == nullptr) return base_;
  auto& groups = state.optimizer->param_groups();
  for (size_t i = base_.size(); i < groups.size(); ++i) {
    double lr = groups[i].options().get_lr();
    // A group added later was set relative to the first group's lr of that moment (FineTuning:
    // the head's lr times a ratio): its base keeps that relation to the first group's base, so
    // the schedule does not scale it twice.
    const double first = groups.front().options().get_lr();
    if (i > 0 && first > 0) lr *= base_.front() / first;
    base_.push_back(lr);
  }
  return base_;
}

void LrSchedule::scale_all(TrainState& state, double factor) {
  const auto& base = base_lrs(state);
  auto& groups = state.optimizer->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base[i] * factor);
}

void LrSchedule::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& archive) {
  archive.write("base_lrs", torch::tensor(base_, torch::kFloat64), /*is_buffer=*/true);
  save_extra(archive);
}

void LrSchedule::on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& archive) {
  torch::Tensor base;
  archive.read("base_lrs", base, /*is_buffer=*/true);
  base = base.to(torch::kCPU, torch::kFloat64).contiguous();
  base_.assign(base.data_ptr<double>(), base.data_ptr<double>() + base.numel());
  if (state.resumed)
    for (auto& b : base_) b *= state.resumed->lr_scale;  // train.lr changed on resume
  load_extra(archive);
}

// --- StepLr -------------------------------------------------------------------------------------

StepLr::StepLr(int64_t step_size, double gamma) : step_size_(step_size), gamma_(gamma) {
  if (step_size_ < 1)
    throw ConfigError("step schedule: step_size " + std::to_string(step_size_) +
                      " is out of range; expected a positive number of epochs");
  if (!(gamma_ > 0))
    throw ConfigError("step schedule: gamma " + number(gamma_) +
                      " is out of range; expected a positive factor such as 0.1");
}

void StepLr::on_epoch_start(TrainState& state) {
  scale_all(state, std::pow(gamma_, static_cast<double>((state.epoch - 1) / step_size_)));
}

std::string StepLr::describe() const {
  return "step: x" + number(gamma_) + " every " + std::to_string(step_size_) + " epochs";
}

// --- CosineLr -----------------------------------------------------------------------------------

CosineLr::CosineLr(int64_t warmup_epochs, double min_lr, double warmup_start)
    : warmup_epochs_(warmup_epochs), min_lr_(min_lr), warmup_start_(warmup_start) {
  if (warmup_epochs_ < 0)
    throw ConfigError("cosine schedule: warmup_epochs " + std::to_string(warmup_epochs_) +
                      " is out of range; expected >= 0");
  if (!(min_lr_ >= 0))
    throw ConfigError("cosine schedule: min_lr " + number(min_lr_) +
                      " is out of range; expected >= 0");
  if (!(warmup_start_ > 0 && warmup_start_ <= 1))
    throw ConfigError("cosine schedule: warmup_start " + number(warmup_start_) +
                      " is out of range; expected a fraction in (0, 1]");
}

double CosineLr::lr_at(int64_t step, int64_t total, int64_t warmup, double base,
                       double warmup_start, double min_lr) {
  warmup = std::min(warmup, total);
  if (step < warmup)
    return base * (warmup_start + (1.0 - warmup_start) * static_cast<double>(step) / warmup);
  const double t = static_cast<double>(step - warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  return min_lr + (base - min_lr) * (1.0 + std::cos(kPi * t / span)) / 2.0;
}

void CosineLr::on_train_batch_start(TrainState& state) {
  const auto& base = base_lrs(state);
  const int64_t total = total_steps(state);
  const int64_t warmup = warmup_epochs_ * state.batches_per_epoch;
  auto& groups = state.optimizer->param_groups();
  for (size_t i = 0; i < groups.size(); ++i)
    groups[i].options().set_lr(
        lr_at(state.global_step, total, warmup, base[i], warmup_start_, min_lr_));
}

std::string CosineLr::describe() const {
  std::string s = "cosine to " + number(min_lr_);
  if (warmup_epochs_ > 0) s += " after " + std::to_string(warmup_epochs_) + " warm-up epochs";
  return s;
}

// --- OneCycleLr ---------------------------------------------------------------------------------

OneCycleLr::OneCycleLr(double max_lr, double pct_start, double div_factor, double final_div_factor)
    : max_lr_(max_lr),
      pct_start_(pct_start),
      div_factor_(div_factor),
      final_div_factor_(final_div_factor) {
  if (!(max_lr_ >= 0))
    throw ConfigError("onecycle schedule: max_lr " + number(max_lr_) +
                      " is out of range; expected > 0 (or 0: 10x the lr)");
  if (!(pct_start_ > 0 && pct_start_ < 1))
    throw ConfigError("onecycle schedule: pct_start " + number(pct_start_) +
                      " is out of range; expected a fraction in (0, 1)");
  if (!(div_factor_ > 0) || !(final_div_factor_ > 0))
    throw ConfigError("onecycle schedule: div_factor and final_div_factor must be positive");
}

std::pair<double, double> OneCycleLr::at(int64_t step, int64_t total, double max_lr,
                                         double pct_start, double div_factor,
                                         double final_div_factor) {
  constexpr double kMaxMomentum = 0.95, kBaseMomentum = 0.85;
  auto anneal = [](double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(kPi * pct) + 1.0);
  };
  const double initial = max_lr / div_factor, floor = initial / final_div_factor;
  const double step_num = static_cast<double>(std::min(step, total - 1));
  // torch's phase boundaries, including its float(pct_start * total) - 1.
  const double up_end = pct_start * static_cast<double>(total) - 1.0;
  const double down_end = static_cast<double>(total - 1);
  if (step_num <= up_end) {
    const double pct = step_num / up_end;
    return {anneal(initial, max_lr, pct), anneal(kMaxMomentum, kBaseMomentum, pct)};
  }
  const double pct = (step_num - up_end) / (down_end - up_end);
  return {anneal(max_lr, floor, pct), anneal(kBaseMomentum, kMaxMomentum, pct)};
}

void OneCycleLr::on_train_batch_start(TrainState& state) {
  const auto& base = base_lrs(state);
  const int64_t total = total_steps(state);
  auto& groups = state.optimizer->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    const double peak = max_lr_ > 0 ? max_lr_ : 10.0 * base[i];
    auto [lr, momentum] =
        at(state.global_step, total, peak, pct_start_, div_factor_, final_div_factor_);
    groups[i].options().set_lr(lr);
    set_momentum(groups[i], momentum);
  }
}

std::string OneCycleLr::describe() const {
  return "onecycle to " + (max_lr_ > 0 ? number(max_lr_) : std::string("10x lr")) + " at " +
         number(100 * pct_start_) + "% of the steps";
}

// --- ReduceLrOnPlateau --------------------------------------------------------------------------

ReduceLrOnPlateau::ReduceLrOnPlateau(const LrScheduleOptions& o)
    : monitor_(Monitor::parse(o.monitor, o.mode, "plateau schedule monitor")),
      factor_(o.factor),
      min_lr_(o.min_lr),
      threshold_(o.threshold),
      patience_(o.patience),
      cooldown_(o.cooldown) {
  if (!(factor_ > 0 && factor_ < 1))
    throw ConfigError("plateau schedule: factor " + number(factor_) +
                      " is out of range; expected a fraction in (0, 1) such as 0.1");
  if (patience_ < 0 || cooldown_ < 0)
    throw ConfigError("plateau schedule: patience and cooldown must be >= 0");
  if (!(threshold_ >= 0))
    throw ConfigError("plateau schedule: threshold " + number(threshold_) + " must be >= 0");
}

void ReduceLrOnPlateau::on_epoch_end(TrainState& state) {
  const std::optional<double> current = monitor_.value(state);
  if (!current || state.optimizer == nullptr) return;
  // torch's relative threshold: better than best * (1 -+ threshold).
  const double v = *current;
  const bool better = !has_best_ || (monitor_.maximize ? v > best_ * (1.0 + threshold_)
                                                       : v < best_ * (1.0 - threshold_));
  if (better) {
    best_ = v;
    has_best_ = true;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ > patience_) {
    for (auto& group : state.optimizer->param_groups()) {
      const double old_lr = group.options().get_lr();
      const double new_lr = std::max(old_lr * factor_, min_lr_);
      if (old_lr - new_lr > 1e-8) group.options().set_lr(new_lr);
    }
    cooldown_left_ = cooldown_;
    bad_epochs_ = 0;
  }
}

std::string ReduceLrOnPlateau::describe() const {
  return "plateau: x" + number(factor_) + " after " + std::to_string(patience_ + 1) +
         " epochs without a better " + monitor_.name;
}

void ReduceLrOnPlateau::save_extra(torch::serialize::OutputArchive& a) const {
  a.write("best", c10::IValue(best_));
  a.write("has_best", c10::IValue(has_best_));
  a.write("bad_epochs", c10::IValue(bad_epochs_));
  a.write("cooldown_left", c10::IValue(cooldown_left_));
}

void ReduceLrOnPlateau::load_extra(torch::serialize::InputArchive& a) {
  best_ = read_double(a, "best");
  has_best_ = read_bool(a, "has_best");
  bad_epochs_ = read_int(a, "bad_epochs");
  cooldown_left_ = read_int(a, "cooldown_left");
}

// --- factory ------------------------------------------------------------------------------------

std::shared_ptr<LrSchedule> make_lr_schedule(const LrScheduleOptions& o) {
  switch (o.kind) {
    case ScheduleKind::kNone:
      return nullptr;
    case ScheduleKind::kStep:
      return std::make_shared<StepLr>(o.step_size, o.gamma);
    case ScheduleKind::kCosine:
      return std::make_shared<CosineLr>(o.warmup_epochs, o.min_lr, o.warmup_start);
    case ScheduleKind::kOneCycle:
      return std::make_shared<OneCycleLr>(o.max_lr, o.pct_start, o.div_factor, o.final_div_factor);
    case ScheduleKind::kPlateau:
      return std::make_shared<ReduceLrOnPlateau>(o);
  }
  return nullptr;
}

}  // namespace trainscope::callbacks
