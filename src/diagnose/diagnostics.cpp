#include <trainscope/diagnose/diagnostics.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/models/transfer.h>
#include <trainscope/models/zoo.h>
#include <trainscope/track/run.h>

#include "core/rng_guard.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <sstream>

namespace trainscope::diagnose {
namespace {

struct ActivationProbe {
  std::string name, kind;
  torch::Tensor dead, saturated;  // 0-dim
};

// The share of dead units (a ReLU's output) or of saturated outputs (a sigmoid's or tanh's).
void measure(const std::string& kind, const std::string& name, const torch::Tensor& x,
             std::vector<ActivationProbe>& probes) {
  if (kind == "relu") {
    // A unit (a channel, or a feature) is dead when it fires for under 1% of the examples.
    std::vector<int64_t> reduce;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (d != 1) reduce.push_back(d);
    auto rate = x.dim() >= 2 ? (x > 0).to(torch::kFloat32).mean(reduce)
                             : (x > 0).to(torch::kFloat32).mean();
    probes.push_back(
        {name + ":relu", "relu", (rate < 0.01).to(torch::kFloat32).mean(), torch::zeros({})});
  } else if (kind == "sigmoid") {
    probes.push_back({name + ":sigmoid", "sigmoid", torch::zeros({}),
                      ((x < 0.01).logical_or(x > 0.99)).to(torch::kFloat32).mean()});
  } else if (kind == "tanh") {
    probes.push_back(
        {name + ":tanh", "tanh", torch::zeros({}), (x.abs() > 0.98).to(torch::kFloat32).mean()});
  }
}

// Runs `x` through a Sequential layer by layer, measuring each activation's output.
torch::Tensor walk(torch::nn::SequentialImpl& seq, torch::Tensor x, const std::string& prefix,
                   std::vector<ActivationProbe>& probes) {
  size_t i = 0;
  for (auto& any : seq) {
    const std::string name = prefix + std::to_string(i++);
    auto module = any.ptr();
    if (auto* inner = module->as<torch::nn::SequentialImpl>()) {
      x = walk(*inner, x, name + ".", probes);
      continue;
    }
    if (auto* traced = dynamic_cast<models::TracesActivations*>(module.get())) {
      x = traced->forward_traced(
          x, [&](const std::string& place, const std::string& kind, const torch::Tensor& out) {
            measure(kind, name + "." + place, out, probes);
          });
      continue;
    }
    x = any.forward(x);
    if (module->as<torch::nn::ReLUImpl>())
      measure("relu", name, x, probes);
    else if (module->as<torch::nn::SigmoidImpl>())
      measure("sigmoid", name, x, probes);
    else if (module->as<torch::nn::TanhImpl>())
      measure("tanh", name, x, probes);
  }
  return x;
}

// Adds the seconds from construction to destruction to `total`.
class Timed {
 public:
  explicit Timed(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Timed() {
    total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

Diagnostics::Diagnostics(DiagnosticsOptions options, std::FILE* out)
    : Diagnostics(options, default_detectors(options.thresholds), out) {}

Diagnostics::Diagnostics(DiagnosticsOptions options,
                         std::vector<std::unique_ptr<Detector>> detectors, std::FILE* out)
    : options_(options), detectors_(std::move(detectors)), out_(out) {
  for (const auto& d : detectors_) fresh_.push_back(d->save_state());
  if (options_.every < 1)
    throw ConfigError("diagnostics interval " + std::to_string(options_.every) + " must be >= 1");
}

void Diagnostics::add_preflight(std::vector<Finding> findings) {
  for (auto& f : findings) preflight_.push_back(std::move(f));
}

void Diagnostics::on_fit_start(TrainState& state) {
  // A TorchScript model's activations come from its graph; a Sequential is walked layer by layer.
  script_activations_ =
      options_.activations ? models::torchscript_activations(*state.model) : nullptr;
  names_.clear();
  params_.clear();
  for (const auto& item : state.model->module().named_parameters()) {
    if (!item.value().requires_grad()) continue;
    names_.push_back(item.key());
    params_.push_back(item.value());
  }
  findings_.clear();
  before_.clear();
  output_activation_ = models::output_activation(*state.model);  // once: reads a graph
  norm_stats_.clear();
  grad_sum_.clear();
  grad_sq_sum_ = noise_stats_ = torch::Tensor();
  grad_count_ = 0;
  noise_g2_sum_ = noise_trace_sum_ = 0.0;
  noise_count_ = 0;
  non_finite_ = torch::Tensor();
  target_var_sum_ = 0.0;
  target_var_count_ = 0;
  clipping_ = false;
  phase_epoch_ = 0;
  seconds_ = sharpness_seconds_ = 0.0;
  if (state.resumed) return;  // the findings so far come back with the checkpoint
  for (auto& f : preflight_) {
    findings_.push_back(f);
    if (state.run)
      state.run->store().add_finding({f.kind, to_string(f.severity), 0, 0, f.message,
                                      f.evidence_json(), f.remedy, track::wall_time_now()});
  }
}

void Diagnostics::start_phase(const TrainState& state) {
  if (state.phase_epoch <= phase_epoch_) return;
  phase_epoch_ = state.phase_epoch;
  for (size_t i = 0; i < detectors_.size() && i < fresh_.size(); ++i)
    detectors_[i]->load_state(fresh_[i]);
}

void Diagnostics::watch_trainable(TrainState& state) {
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
  for (const auto& item : state.model->module().named_parameters()) {
    if (!item.value().requires_grad()) continue;
    names.push_back(item.key());
    params.push_back(item.value());
  }
  if (names != names_) names_ = std::move(names), params_ = std::move(params);
}

void Diagnostics::on_after_backward(TrainState& state) {
  Timed timed(seconds_);
  auto bad = state.loss.detach().isfinite().logical_not();
  non_finite_ = non_finite_.defined() ? non_finite_.logical_or_(bad) : bad;
  accumulate_noise(state);
  if (!logging_step(state)) return;
  // Parameters unfrozen since the last logging step (fine-tuning) are watched from this one on.
  watch_trainable(state);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> rows;
  before_.clear();
  for (const auto& p : params_) {
    const auto& g = p.grad();
    auto w = p.detach();
    // How much a weight's units differ: the spread across rows, per input, over the mean |w|.
    auto spread = torch::ones({}, w.options());
    if (w.dim() >= 2 && w.size(0) > 1 && w.numel() > 0) {
      const auto rows_w = w.flatten(1);
      spread = rows_w.std(0, /*unbiased=*/false).mean() / (rows_w.abs().mean() + 1e-12);
    }
    if (g.defined())
      rows.push_back(torch::stack(
          {g.norm(), w.norm(), (g == 0).sum().to(w.scalar_type()), g.abs().sum(), spread}));
    else
      rows.push_back(torch::stack({torch::zeros({}, w.options()), w.norm(),
                                   torch::full({}, double(w.numel()), w.options()),
                                   torch::zeros({}, w.options()), spread}));
    before_.push_back(w.clone());
  }
  grad_stats_ = torch::stack(rows).to(torch::kFloat64);
}

void Diagnostics::accumulate_noise(const TrainState& state) {
  const int64_t window = std::min(options_.noise_window, options_.every);
  if (window < 2) return;
  // Steps until the next logging step: the window is the last `window` of them, the logging
  // step included.
  const int64_t to_log =
      (options_.every - (state.global_step + 1) % options_.every) % options_.every;
  if (to_log >= window) return;
  torch::NoGradGuard no_grad;
  if (to_log == window - 1) {
    grad_sum_.clear();
    grad_sq_sum_ = torch::Tensor();
    grad_count_ = 0;
  }
  // What trains now, by name: the same after a resume as in the fit that was not interrupted.
  std::vector<torch::Tensor> norms;
  for (const auto& item : state.model->module().named_parameters()) {
    const auto& g = item.value().grad();
    if (!item.value().requires_grad() || !g.defined()) continue;
    norms.push_back(g.norm().to(torch::kFloat64));
    auto& sum = grad_sum_[item.key()];
    // (A sum restored from a checkpoint is on the CPU until its first step here.)
    sum = sum.defined() ? sum.to(g.device()).add_(g) : g.detach().clone();
  }
  if (norms.empty()) return;
  auto sq = torch::stack(norms).pow(2).sum();
  grad_sq_sum_ = grad_sq_sum_.defined() ? grad_sq_sum_.to(sq.device()) + sq : sq;
  ++grad_count_;
  if (to_log != 0) return;
  // Batch B each step, kB their mean: |G_B|^2 = |G|^2 + tr(S) / B, and the same at kB; solved for
  // the two unknowns (McCandlish et al., eqs. A.2-A.3).
  noise_stats_ = torch::Tensor();
  if (grad_count_ < 2 || !state.batch_size) return;
  const double k = double(grad_count_);
  const double b = double(state.batch_size * std::max<int64_t>(1, options_.world_size));
  std::vector<torch::Tensor> mean_sq;
  for (const auto& [name, s] : grad_sum_)
    mean_sq.push_back((s / k).pow(2).sum().to(torch::kFloat64));
  const auto big = torch::stack(mean_sq).sum();  // |G_kB|^2
  const auto small = grad_sq_sum_ / k;           // mean |G_B|^2
  noise_stats_ = torch::stack({(k * big - small) / (k - 1), (small - big) * b * k / (k - 1)});
  noise_batch_ = int64_t(b);
  grad_sum_.clear();
}

void Diagnostics::on_before_optimizer_step(TrainState&) {
  Timed timed(seconds_);
  if (clipping_) torch::nn::utils::clip_grad_norm_(params_, options_.clip_norm);
}

std::vector<ActivationSignals> Diagnostics::activation_signals(TrainState& state) {
  auto seq = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(state.model->ptr());
  if (!options_.activations || (!seq && !script_activations_) || !state.inputs.defined()) return {};
  torch::NoGradGuard no_grad;
  // Eval mode: the probe must not move BatchNorm's running statistics.
  EvalModeGuard eval(*state.model);
  std::vector<ActivationProbe> probes;
  const int64_t n = std::min<int64_t>(256, state.inputs.size(0));
  if (seq) {
    walk(*seq, state.inputs.slice(0, 0, n), "", probes);
  } else {
    const auto named =
        state.named_inputs.map([n](const torch::Tensor& t) { return t.slice(0, 0, n); });
    for (const auto& [name, x] : script_activations_(state.inputs.slice(0, 0, n), named)) {
      const auto colon = name.find(':');
      measure(name.substr(colon + 1), name.substr(0, colon), x, probes);
    }
  }
  if (probes.empty()) return {};
  std::vector<torch::Tensor> values;
  for (const auto& p : probes) values.push_back(torch::stack({p.dead, p.saturated}));
  auto host = torch::stack(values)
                  .to(torch::kCPU, torch::kFloat64)
                  .contiguous();  // host sync, logging steps only
  auto a = host.accessor<double, 2>();
  std::vector<ActivationSignals> out;
  for (size_t i = 0; i < probes.size(); ++i)
    out.push_back({probes[i].name, probes[i].kind, a[i][0], a[i][1]});
  return out;
}

torch::Tensor Diagnostics::frozen_norm_drifts(TrainState& state, std::vector<std::string>& names) {
  const auto none = torch::zeros({0}, state.loss.options().dtype(torch::kFloat64));
  if (options_.frozen_norms_may_move) return none;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> drifts;
  for (const auto& item : state.model->module().named_modules("", /*include_self=*/false)) {
    const auto& m = *item.value();
    if (!models::is_batch_norm(m) || !m.is_training()) continue;
    const auto params = m.parameters(/*recurse=*/false);
    if (params.empty()) continue;
    bool frozen = true;
    for (const auto& p : params) frozen = frozen && !p.requires_grad();
    const auto* mean = m.named_buffers(/*recurse=*/false).find("running_mean");
    const auto* var = m.named_buffers(/*recurse=*/false).find("running_var");
    if (!frozen || !mean || !var || !mean->defined() || !var->defined()) continue;
    auto it = norm_stats_.find(item.key());
    if (it != norm_stats_.end()) {
      auto rel = [](const torch::Tensor& now, const torch::Tensor& before) {
        const auto was = before.to(now.device());
        return (now - was).norm() / (was.norm() + 1e-6);
      };
      names.push_back(item.key());
      drifts.push_back(torch::maximum(rel(*mean, it->second.first), rel(*var, it->second.second)));
    }
    norm_stats_[item.key()] = {mean->detach().clone(), var->detach().clone()};
  }
  if (drifts.empty()) return none;
  return torch::stack(drifts).to(none.device(), torch::kFloat64);
}

torch::Tensor Diagnostics::probe_step(TrainState& state) {
  if (options_.sharpness_examples <= 0 || !state.batch_loss || before_.empty() ||
      before_.size() != params_.size())
    return {};
  Timed timed(sharpness_seconds_);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> after;
  for (const auto& p : params_) after.push_back(p.detach().clone());
  // The forwards run in training mode, as the step did: BatchNorm's running statistics move and
  // are put back after each.
  std::vector<torch::Tensor> buffers, saved;
  for (const auto& b : state.model->module().buffers()) {
    buffers.push_back(b);
    saved.push_back(b.clone());
  }
  // One seed for the three forwards (the same dropout masks), the run's random stream kept.
  detail::RngGuard rng(state.loss.device());
  std::vector<torch::Tensor> losses;
  for (const double t : {1.0, 0.5, 0.0}) {
    for (size_t i = 0; i < params_.size(); ++i) {
      auto w = params_[i].detach();
      if (t == 0.0)
        w.copy_(before_[i]);
      else if (t == 0.5)
        w.copy_(torch::lerp(before_[i], after[i], 0.5));
    }
    rng.reseed(0x5eedULL + uint64_t(state.global_step));
    losses.push_back(state.batch_loss(options_.sharpness_examples).reshape({}));
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved[i]);
  }
  for (size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_(after[i]);  // exactly
  return torch::stack(losses).to(torch::kFloat64);
}

void Diagnostics::on_train_batch_end(TrainState& state) {
  Timed timed(seconds_);
  largest_batch_ = std::max(largest_batch_, state.batch_size);
  if (!state.targets.defined()) return;
  start_phase(state);
  if (state.outputs.defined() && state.outputs.dim() >= 2)
    num_outputs_ = state.outputs.size(state.task == Task::kSequence ? 2 : 1);
  // The loss of the best constant guess, on the first step of each interval (a sync): predicting
  // the mean scores the targets' variance (MSE); predicting each label's rate scores its binary
  // entropy (multilabel BCE).
  if (state.targets.is_floating_point() &&
      state.global_step % options_.every == 1 % options_.every) {
    if (state.task == Task::kMultilabel) {
      const auto p = state.targets.detach()
                         .to(torch::kFloat64)
                         .reshape({state.targets.size(0), -1})
                         .mean(0)
                         .clamp(1e-7, 1 - 1e-7);
      target_var_sum_ += (-(p * p.log() + (1 - p) * (1 - p).log())).mean().item<double>();
    } else {
      target_var_sum_ += state.targets.var(/*unbiased=*/false).item<double>();
    }
    ++target_var_count_;
  }
  if (state.global_step % options_.every != 0 || before_.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> updates;
  for (size_t i = 0; i < params_.size(); ++i)
    updates.push_back((params_[i].detach() - before_[i]).norm());
  // Classification outputs: min, max, worst row-sum error, share of zeros (1 row of 4 values).
  const bool classification = state.outputs.defined() && state.outputs.dim() == 2 &&
                              state.outputs.size(1) >= 2 && !state.targets.is_floating_point();
  torch::Tensor outputs = torch::zeros({4}, state.loss.options().dtype(torch::kFloat64));
  if (classification) {
    const auto o = state.outputs.detach().to(torch::kFloat64);
    outputs = torch::stack(
        {o.min(), o.max(), (o.sum(1) - 1).abs().max(), o.eq(0).to(torch::kFloat64).mean()});
  }
  // Regression outputs against a bounded activation's reach: outputs pinned at 0, 1 or -1, and
  // targets beyond them (1 row of 9 values).
  const bool regression = state.task == Task::kRegression && state.outputs.defined() &&
                          state.targets.is_floating_point() &&
                          state.outputs.numel() == state.targets.numel() &&
                          state.outputs.numel() > 0;
  torch::Tensor reach = torch::zeros({9}, state.loss.options().dtype(torch::kFloat64));
  if (regression) {
    const auto o = state.outputs.detach().to(torch::kFloat64).flatten();
    const auto t = state.targets.detach().to(torch::kFloat64).flatten();
    auto share = [](const torch::Tensor& mask) { return mask.to(torch::kFloat64).mean(); };
    reach = torch::stack({o.min(), o.max(), share(o.eq(0)), share(o >= 0.99),
                          share((o >= 0).logical_and(o <= 0.01)), share(o <= -0.99),
                          share(t > 1.01), share(t < -0.01), share(t < -1.01)});
  }
  const auto noise = noise_stats_.defined()
                         ? noise_stats_.to(state.loss.device())
                         : torch::full({2}, NAN, state.loss.options().dtype(torch::kFloat64));
  std::vector<std::string> norm_names;
  const auto drifts = frozen_norm_drifts(state, norm_names);
  auto probe = probe_step(state);
  if (!probe.defined()) probe = torch::full({3}, NAN, state.loss.options().dtype(torch::kFloat64));
  auto packed = torch::cat({grad_stats_.flatten(), torch::stack(updates).to(torch::kFloat64),
                            non_finite_.to(torch::kFloat64).reshape({1}),
                            state.loss.detach().to(torch::kFloat64).reshape({1}), outputs, reach,
                            noise, probe.to(state.loss.device()), drifts});
  auto host = packed.to(torch::kCPU).contiguous();  // host sync: one transfer per logging step
  const double* v = host.data_ptr<double>();
  before_.clear();
  non_finite_ = torch::Tensor();

  StepSignals s;
  s.step = state.global_step;
  s.epoch = state.epoch;
  s.lr = current_lr(state);
  const size_t n = params_.size();
  double sq = 0, abs_sum = 0, entries = 0;
  for (size_t i = 0; i < n; ++i) {
    const double* row = v + 5 * i;
    LayerSignals l;
    l.name = names_[i];
    l.grad_norm = row[0];
    l.weight_norm = row[1];
    l.zero_grad_fraction = row[2] / double(params_[i].numel());
    l.update_ratio = row[1] > 0 ? v[5 * n + i] / row[1] : 0.0;
    l.is_weight = params_[i].dim() >= 2;
    l.units = l.is_weight ? params_[i].size(0) : 0;
    l.unit_spread = row[4];
    sq += row[0] * row[0];
    abs_sum += row[3];
    entries += double(params_[i].numel());
    s.layers.push_back(l);
  }
  s.grad_norm = std::sqrt(sq);
  s.grad_abs_mean = entries > 0 ? abs_sum / entries : 0.0;
  const double* tail = v + 6 * n;  // after 5 values per parameter and one update norm each
  s.non_finite = tail[0] != 0;
  s.loss = tail[1];
  s.classification_outputs = classification;
  s.output_min = tail[2];
  s.output_max = tail[3];
  s.row_sum_error = tail[4];
  if (classification && state.outputs.scalar_type() == torch::kBFloat16)
    s.output_epsilon = 0.0078125;
  else if (classification && state.outputs.scalar_type() == torch::kHalf)
    s.output_epsilon = 0.0009765625;
  s.zero_fraction = tail[5];
  if (classification) {
    s.output_classes = state.outputs.size(-1);
    s.output_activation = output_activation_;
  }
  if (regression) {
    const double* r = tail + 6;
    s.regression_outputs = true;
    s.output_count = state.outputs.numel();
    s.output_min = r[0];
    s.output_max = r[1];
    s.zero_fraction = r[2];
    s.near_one = r[3];
    s.near_zero = r[4];
    s.near_minus_one = r[5];
    s.targets_above_one = r[6];
    s.targets_below_zero = r[7];
    s.targets_below_minus_one = r[8];
    s.output_activation = output_activation_;
  }
  s.noise_gradient_sq = tail[15];
  s.noise_trace = tail[16];
  s.noise_batch = noise_batch_;
  noise_stats_ = torch::Tensor();
  if (std::isfinite(s.noise_gradient_sq) && std::isfinite(s.noise_trace)) {
    noise_g2_sum_ += s.noise_gradient_sq;
    noise_trace_sum_ += s.noise_trace;
    ++noise_count_;
  }
  s.activations = activation_signals(state);
  // The parabola through the losses at t = 1, 1/2, 0 along the step: L0 + slope t + c t^2 / 2.
  const double l1 = tail[17], lh = tail[18], l0 = tail[19];
  double step_sq = 0;
  for (size_t i = 0; i < n; ++i) step_sq += v[5 * n + i] * v[5 * n + i];
  if (std::isfinite(l0) && std::isfinite(lh) && std::isfinite(l1) && step_sq > 0) {
    s.step_slope = 4 * lh - 3 * l0 - l1;
    s.step_curvature = 4 * (l1 - 2 * lh + l0);
    s.step_norm = std::sqrt(step_sq);
  }
  for (size_t i = 0; i < norm_names.size(); ++i)
    s.frozen_norms.push_back({norm_names[i], tail[20 + i]});

  if (state.run) {
    auto& store = state.run->store();
    const double now = track::wall_time_now();
    auto put = [&](const std::string& tag, double value) {
      store.add_metric({s.step, s.epoch, "train", tag, value, now});
    };
    put("grad_norm", s.grad_norm);
    put("grad_abs_mean", s.grad_abs_mean);
    if (noise_count_ > 0 && noise_g2_sum_ > 0 && noise_trace_sum_ > 0)
      put("noise_scale", noise_trace_sum_ / noise_g2_sum_);  // the epoch's estimate so far
    // Sharpness along the step against the 2 / lr_eff it may reach before the step overshoots.
    if (std::isfinite(s.step_curvature) && s.step_slope < 0) {
      const double sq = s.step_norm * s.step_norm;
      put("sharpness/step", s.step_curvature / sq);
      put("sharpness/limit", 2 * -s.step_slope / sq);
    }
    for (const auto& l : s.layers) {
      put("grad_norm/" + l.name, l.grad_norm);
      put("weight_norm/" + l.name, l.weight_norm);
      put("update_ratio/" + l.name, l.update_ratio);
      put("zero_grad/" + l.name, l.zero_grad_fraction);
    }
    for (const auto& a : s.activations) {
      if (a.kind == "relu")
        put("dead_relu/" + a.name, a.dead_fraction);
      else
        put("saturated/" + a.name, a.saturated_fraction);
    }
  }
  for (auto& d : detectors_)
    if (auto f = d->on_step(s)) report(state, std::move(*f));
}

void Diagnostics::on_epoch_end(TrainState& state) {
  start_phase(state);
  EpochSignals e;
  e.epoch = state.epoch;
  e.step = state.global_step;
  e.max_epochs = state.max_epochs;
  e.restores_best = options_.restores_best;
  e.augmented = options_.augmentation && state.augment_batches;
  e.phase_epoch = state.phase_epoch;
  e.train = state.train_metrics;
  e.val = state.val_metrics;
  e.classification = class_indices(state.task) && state.train_metrics.count("accuracy") > 0;
  int64_t frozen = 0, all = 0;
  for (const auto& p : state.model->parameters()) {
    all += p.numel();
    if (!p.requires_grad()) frozen += p.numel();
  }
  e.frozen_fraction = all > 0 ? static_cast<double>(frozen) / all : 0.0;
  e.steps_per_epoch = state.batches_per_epoch;
  e.batch_size = largest_batch_;
  largest_batch_ = 0;
  e.examples_per_step = e.batch_size * std::max<int64_t>(1, options_.world_size);
  e.lr = current_lr(state);
  e.noise_samples = noise_count_;
  if (noise_count_ > 0 && noise_g2_sum_ > 0 && noise_trace_sum_ > 0)
    e.noise_scale = noise_trace_sum_ / noise_g2_sum_;
  noise_g2_sum_ = noise_trace_sum_ = 0.0;
  noise_count_ = 0;
  if (e.classification) {
    // The model's output width is the number of classes; a uniform guess scores log C.
    e.num_classes = num_outputs_;
    e.trivial_loss = e.num_classes > 1 ? std::log(double(e.num_classes)) : 0.0;
  } else if (target_var_count_ > 0) {
    e.trivial_loss = target_var_sum_ / double(target_var_count_);
  }
  if (state.best.by.split == "val") {  // the best of the fit, by its monitor
    e.best_epoch = state.best.epoch;
    e.best_val_loss = state.best.val_loss;
  }
  for (auto& d : detectors_)
    if (auto f = d->on_epoch(e)) report(state, std::move(*f));
}

void Diagnostics::on_fit_end(TrainState& state) {
  if (state.run) {
    const double fit =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - state.fit_start).count();
    state.run->store().put_result(
        "diagnose", "cost",
        nlohmann::json{
            {"seconds", seconds_}, {"sharpness_seconds", sharpness_seconds_}, {"fit_seconds", fit}}
            .dump());
  }
  if (!options_.print || findings_.empty() || !out_) return;
  int problems = 0;
  for (const auto& f : findings_) problems += f.kind != "remedy";
  std::fprintf(out_, "diagnostics: %d finding%s (trainscope diagnose %s prints them again)\n",
               problems, problems == 1 ? "" : "s", state.run ? state.run->dir().c_str() : "RUN");
  std::fflush(out_);
}

void Diagnostics::report(TrainState& state, Finding finding) {
  // Each problem once, unless it gets worse (an info-level loss gap, later a falling val accuracy).
  for (const auto& seen : findings_)
    if (seen.kind == finding.kind && seen.severity >= finding.severity) return;
  if (options_.print && out_) {
    // On a terminal the progress bar owns the current line: clear it first.
    std::fprintf(out_, "%s%s\n", isatty(fileno(out_)) ? "\r\033[2K" : "",
                 finding.to_text(options_.name_setting).c_str());
    std::fflush(out_);
  }
  if (state.run)
    state.run->store().add_finding({finding.kind, to_string(finding.severity), finding.step,
                                    finding.epoch, finding.message, finding.evidence_json(),
                                    finding.remedy, track::wall_time_now()});
  findings_.push_back(finding);
  if (options_.auto_remedy) apply_remedy(state, finding);
}

void Diagnostics::apply_remedy(TrainState& state, const Finding& f) {
  std::string action;
  if (f.kind == "non_finite") {
    state.request_stop(StopReason::kDiagnosis, "stopped by the auto-remedy: " +
                                                   name_settings(f.message, options_.name_setting));
    action = "stopped the run; the weights are no longer finite";
  } else if (f.kind == "exploding_gradients" && !clipping_) {
    clipping_ = true;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", options_.clip_norm);
    action = std::string("clipping gradients at norm ") + buf + " from step " +
             std::to_string(state.global_step + 1);
  } else if (f.kind == "oscillating_loss" ||
             (f.kind == "learning_rate" && f.message.find("too high") != std::string::npos) ||
             (f.kind == "underfitting" && f.message.find("less than 1%") != std::string::npos)) {
    if (!state.optimizer) return;
    double lr = 0;
    for (auto& group : state.optimizer->param_groups()) {
      lr = group.options().get_lr() * 0.1;
      group.options().set_lr(lr);
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", lr);
    action = std::string("lowered the learning rate 10x to ") + buf;
  } else if (f.kind == "overfitting" && f.severity != Severity::kInfo) {
    state.request_stop(StopReason::kDiagnosis, "stopped by the auto-remedy: " +
                                                   name_settings(f.message, options_.name_setting));
    action = "stopped the run at epoch " + std::to_string(state.epoch) +
             "; early stopping restores the best epoch";
  } else {
    return;
  }
  Finding r{"remedy",
            Severity::kInfo,
            state.global_step,
            state.epoch,
            "auto-remedy for " + f.kind + ": " + action,
            {},
            "applied because " + setting_ref("diagnose.auto_remedy", "true")};
  findings_.push_back(r);
  if (options_.print && out_) std::fprintf(out_, "%s\n", r.to_text(options_.name_setting).c_str());
  if (state.run)
    state.run->store().add_finding({r.kind, to_string(r.severity), r.step, r.epoch, r.message, "{}",
                                    r.remedy, track::wall_time_now()});
}

void Diagnostics::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& archive) {
  nlohmann::json findings = nlohmann::json::array();
  for (const auto& f : findings_)
    findings.push_back({{"kind", f.kind},
                        {"severity", static_cast<int>(f.severity)},
                        {"step", f.step},
                        {"epoch", f.epoch},
                        {"message", f.message},
                        {"evidence", f.evidence},
                        {"remedy", f.remedy}});
  nlohmann::json detectors = nlohmann::json::array();
  for (const auto& d : detectors_) detectors.push_back(d->save_state());
  nlohmann::json state = {{"findings", findings},
                          {"detectors", detectors},
                          {"target_var_sum", target_var_sum_},
                          {"target_var_count", target_var_count_},
                          {"num_outputs", num_outputs_},
                          {"clipping", clipping_},
                          {"phase_epoch", phase_epoch_},
                          {"largest_batch", largest_batch_},
                          {"noise_g2_sum", noise_g2_sum_},
                          {"noise_trace_sum", noise_trace_sum_},
                          {"noise_count", noise_count_},
                          {"noise_batch", noise_batch_},
                          {"grad_count", grad_count_}};
  // The noise window in progress and the frozen BatchNorm statistics last seen, so that a resumed
  // fit measures what the uninterrupted one would.
  nlohmann::json window = nlohmann::json::array();
  for (const auto& [name, sum] : grad_sum_) {
    archive.write("noise_sum_" + std::to_string(window.size()), sum, /*is_buffer=*/true);
    window.push_back(name);
  }
  state["noise_window"] = window;
  if (grad_sq_sum_.defined()) archive.write("noise_sq_sum", grad_sq_sum_, /*is_buffer=*/true);
  nlohmann::json norms = nlohmann::json::array();
  for (const auto& [name, stats] : norm_stats_) {
    archive.write("norm_mean_" + std::to_string(norms.size()), stats.first, true);
    archive.write("norm_var_" + std::to_string(norms.size()), stats.second, true);
    norms.push_back(name);
  }
  state["norm_stats"] = norms;
  archive.write("state", c10::IValue(state.dump()));
  if (non_finite_.defined()) archive.write("non_finite", non_finite_, /*is_buffer=*/true);
}

void Diagnostics::on_checkpoint_load(TrainState&, torch::serialize::InputArchive& archive) {
  c10::IValue text;
  archive.read("state", text);
  const auto state = nlohmann::json::parse(text.toStringRef());
  findings_.clear();
  for (const auto& f : state.at("findings")) {
    Finding finding;
    finding.kind = f.at("kind").get<std::string>();
    finding.severity = static_cast<Severity>(f.at("severity").get<int>());
    finding.step = f.at("step").get<int64_t>();
    finding.epoch = f.at("epoch").get<int64_t>();
    finding.message = f.at("message").get<std::string>();
    for (const auto& [key, value] : f.at("evidence").items())
      finding.evidence[key] = value.is_null() ? std::nan("") : value.get<double>();
    finding.remedy = f.at("remedy").get<std::string>();
    findings_.push_back(std::move(finding));
  }
  const auto& detectors = state.at("detectors");
  // Detectors added since the checkpoint was taken come last and start fresh.
  if (detectors.size() > detectors_.size())
    throw CheckpointError("the checkpoint's diagnostics ran " + std::to_string(detectors.size()) +
                          " detectors, this fit runs " + std::to_string(detectors_.size()));
  for (size_t i = 0; i < detectors.size(); ++i)
    detectors_[i]->load_state(detectors[i].get<std::string>());
  target_var_sum_ = state.at("target_var_sum").get<double>();
  target_var_count_ = state.at("target_var_count").get<int64_t>();
  num_outputs_ = state.at("num_outputs").get<int64_t>();
  clipping_ = state.at("clipping").get<bool>();
  phase_epoch_ = state.value("phase_epoch", int64_t{0});
  largest_batch_ = state.value("largest_batch", int64_t{0});
  noise_g2_sum_ = state.value("noise_g2_sum", 0.0);
  noise_trace_sum_ = state.value("noise_trace_sum", 0.0);
  noise_count_ = state.value("noise_count", int64_t{0});
  noise_batch_ = state.value("noise_batch", int64_t{0});
  grad_count_ = state.value("grad_count", int64_t{0});
  grad_sum_.clear();
  if (state.contains("noise_window"))
    for (size_t i = 0; i < state.at("noise_window").size(); ++i) {
      torch::Tensor t;
      archive.read("noise_sum_" + std::to_string(i), t, /*is_buffer=*/true);
      grad_sum_[state.at("noise_window")[i].get<std::string>()] = t.clone();
    }
  torch::Tensor sq;
  grad_sq_sum_ =
      archive.try_read("noise_sq_sum", sq, /*is_buffer=*/true) ? sq.clone() : torch::Tensor();
  norm_stats_.clear();
  if (state.contains("norm_stats"))
    for (size_t i = 0; i < state.at("norm_stats").size(); ++i) {
      torch::Tensor mean, var;
      archive.read("norm_mean_" + std::to_string(i), mean, true);
      archive.read("norm_var_" + std::to_string(i), var, true);
      norm_stats_[state.at("norm_stats")[i].get<std::string>()] = {mean.clone(), var.clone()};
    }
  torch::Tensor non_finite;
  non_finite_ = archive.try_read("non_finite", non_finite, /*is_buffer=*/true) ? non_finite.clone()
                                                                               : torch::Tensor();
}

std::string diagnose_report(const std::string& run_dir, const SettingNamer& namer) {
  const std::filesystem::path file = std::filesystem::path(run_dir) / "run.sqlite";
  if (!std::filesystem::exists(file))
    throw Error("no run at " + run_dir +
                " (it has no run.sqlite); give a run directory such as runs/cnn-20261128-101500");
  track::RunStore store(file, track::RunStore::Mode::kReadOnly);
  std::ostringstream o;
  auto meta = [&](const char* key) { return store.meta(key).value_or("?"); };
  o << "run " << meta("name") << ": " << meta("status");
  if (auto reason = store.meta("stop_message")) o << " (" << *reason << ")";
  o << "; " << meta("epochs") << " epochs, best epoch " << meta("best_epoch") << " (val_loss "
    << meta("best_val_loss") << ")\n";
  auto findings = store.findings();
  if (findings.empty()) {
    o << "no problems found: no detector fired";
    if (meta("status") == "running") o << " so far";
    o << "\n";
    return o.str();
  }
  o << findings.size() << " finding" << (findings.size() == 1 ? "" : "s") << ":\n";
  for (const auto& f : findings) {
    o << "- " << f.severity << " " << f.kind;
    if (f.epoch > 0 || f.step > 0)
      o << " (epoch " << f.epoch << ", step " << f.step << ")";
    else
      o << " (pre-flight)";
    o << ": " << name_settings(f.message, namer) << "\n  evidence: " << f.evidence_json
      << "\n  remedy: " << name_settings(f.remedy, namer) << "\n";
  }
  return o.str();
}

}  // namespace trainscope::diagnose
