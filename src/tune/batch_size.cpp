#include <trainscope/error.h>
#include <trainscope/tune/batch_size.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <new>
#include <tuple>
#include <sstream>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define TRAINSCOPE_HAS_CUDA_ALLOCATOR 1
#endif

#include "core/rng_guard.h"

namespace trainscope::tune {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A field of /proc/self/status or /proc/meminfo in bytes ("VmHWM:  12345 kB").
double proc_kb_field(const char* file, const std::string& field) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream fields(line.substr(field.size() + 1));
      double kb = 0;
      fields >> kb;
      return kb * 1024.0;
    }
  return 0.0;
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

// One trial of `b`, which fits only when its peak stays under the budget less the headroom.
BatchTrial trial_within_budget(BatchProbe& probe, int64_t b, const BatchSizeOptions& o,
                               double budget_bytes) {
  BatchTrial t = probe.run(b);
  t.batch = b;
  if (t.fits && budget_bytes > 0 && t.peak_bytes > (1.0 - o.headroom) * budget_bytes) {
    t.fits = false;
    t.note = "peak " + mib(t.peak_bytes) + " is over the budget of " + mib(budget_bytes) +
             " less " + std::to_string(int(o.headroom * 100)) + "% headroom";
  }
  return t;
}

}  // namespace

double cpu_memory_budget(double share) {
  return share * proc_kb_field("/proc/meminfo", "MemAvailable");
}

double scale_lr(double base_lr, int64_t base_batch, int64_t batch, const std::string& rule) {
  const double ratio = double(batch) / double(base_batch);
  if (rule == "keep") return base_lr;
  if (rule == "linear") return base_lr * ratio;           // Goyal et al. 2017, for SGD
  if (rule == "sqrt") return base_lr * std::sqrt(ratio);  // Hoffer et al. 2017; Krizhevsky 2014
  throw ConfigError("lr scaling rule \"" + rule + "\" is not known; expected keep, linear or sqrt");
}

BatchSizeResult find_batch_size(BatchProbe& probe, const BatchSizeOptions& o, double budget_bytes,
                                int64_t limit) {
  const auto t0 = std::chrono::steady_clock::now();
  BatchSizeResult r;
  r.budget_bytes = budget_bytes;
  const int64_t top = std::max<int64_t>(1, std::min(o.max, limit));
  auto attempt = [&](int64_t b) {
    r.trials.push_back(trial_within_budget(probe, b, o, budget_bytes));
    return r.trials.back();
  };

  int64_t b = std::min(std::max<int64_t>(1, o.start), top), last_fit = 0, first_fail = 0;
  // The first trial of a process also pays for thread pools and allocator growth: run it once
  // unrecorded, so that the smallest size is not measured slow and growth not overrated.
  probe.run(b);
  int best = -1;  // the last size that improved throughput enough
  bool plateau = false, out_of_time = false;
  double plateau_gain = 0;
  while (true) {
    if (since(t0) > o.time_budget_s) {
      out_of_time = true;
      break;
    }
    BatchTrial t = attempt(b);
    if (!t.fits) {
      first_fail = b;
      break;
    }
    last_fit = b;
    if (best >= 0 && t.samples_per_s < r.trials[best].samples_per_s * (1.0 + o.min_gain)) {
      plateau = true;
      plateau_gain = t.samples_per_s / r.trials[best].samples_per_s - 1.0;
      break;
    }
    best = static_cast<int>(r.trials.size()) - 1;
    if (b >= top) break;
    b = std::min(b * 2, top);
  }
  // Between the last size that fit and the first that did not.
  if (first_fail > 0 && last_fit > 0 && !plateau) {
    int64_t lo = last_fit, hi = first_fail;
    while (hi - lo > std::max<int64_t>(1, lo / 8) && since(t0) <= o.time_budget_s) {
      int64_t mid = lo + (hi - lo) / 2;
      if (mid > 8) mid -= mid % 8;  // multiples of 8 suit the kernels
      if (mid <= lo) break;
      (attempt(mid).fits ? lo : hi) = mid;
    }
    last_fit = lo;
  }
  if (last_fit == 0)
    throw Error("batch-size search: even a batch of " + std::to_string(std::min(o.start, top)) +
                " does not fit (" + r.trials.back().note +
                "); set train.batch_size to a small number or free memory");

  char buf[256];
  if (plateau) {
    const BatchTrial& chosen = r.trials[best];
    r.batch_size = chosen.batch;
    std::snprintf(buf, sizeof buf,
                  "throughput stopped improving: %.0f samples/s at %lld, %+.0f%% at %lld (growth "
                  "needs %+.0f%%)",
                  chosen.samples_per_s, static_cast<long long>(chosen.batch), 100 * plateau_gain,
                  static_cast<long long>(r.trials.back().batch), 100 * o.min_gain);
  } else if (first_fail > 0) {
    r.batch_size = last_fit;
    for (const auto& t : r.trials)
      if (t.batch == first_fail)
        std::snprintf(buf, sizeof buf, "the largest that fits in memory (%lld did not: %s)",
                      static_cast<long long>(first_fail), t.note.c_str());
  } else if (out_of_time) {
    r.batch_size = last_fit;
    std::snprintf(buf, sizeof buf, "the largest tried within the %.0f s search budget",
                  o.time_budget_s);
  } else {
    r.batch_size = last_fit;
    std::snprintf(buf, sizeof buf, "the largest allowed (%lld: max %lld, %lld training examples)",
                  static_cast<long long>(top), static_cast<long long>(o.max),
                  static_cast<long long>(limit));
  }
  r.reason = buf;
  r.seconds = since(t0);
  return r;
}

BatchSizeResult choose_cpu_batch(BatchProbe& probe, const BatchSizeOptions& o, double budget_bytes,
                                 int64_t train_size) {
  const auto t0 = std::chrono::steady_clock::now();
  BatchSizeResult r;
  r.budget_bytes = budget_bytes;
  const int64_t n = std::max<int64_t>(1, train_size);
  const int64_t by_steps = n / std::max<int64_t>(1, o.min_steps);
  auto pow2_floor = [](int64_t v) {
    int64_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
  };
  const int64_t cap = pow2_floor(std::max<int64_t>(1, o.cpu_batch));
  int64_t b =
      std::max(pow2_floor(std::min(cap, std::max<int64_t>(1, by_steps))), std::min<int64_t>(8, n));
  char buf[256];
  if (b >= cap)
    std::snprintf(buf, sizeof buf,
                  "CPU rule: %lld, where CPU throughput levels off (tune.cpu_batch)",
                  static_cast<long long>(b));
  else
    std::snprintf(buf, sizeof buf,
                  "CPU rule: %lld, so that %lld training examples give at least %lld steps per "
                  "epoch (tune.min_steps)",
                  static_cast<long long>(b), static_cast<long long>(n),
                  static_cast<long long>(std::min<int64_t>(o.min_steps, n / b)));
  std::string reason = buf;
  while (true) {
    const BatchTrial t = trial_within_budget(probe, b, o, budget_bytes);
    r.trials.push_back(t);
    if (t.fits) break;
    if (b == 1)
      throw Error("batch-size rule: even a batch of 1 does not fit (" + t.note +
                  "); free memory or raise tune.memory_share");
    reason += "; " + std::to_string(b) + " does not fit (" + t.note + ")";
    b /= 2;
  }
  r.batch_size = b;
  r.reason = reason;
  r.seconds = since(t0);
  return r;
}

TrainingProbe::TrainingProbe(Model& model, const data::Dataset& data, Task task,
                             torch::Device device, int64_t steps, double budget_bytes,
                             StepFunction step)
    : model_(model),
      data_(data),
      task_(task),
      device_(device),
      steps_(steps),
      budget_bytes_(budget_bytes),
      step_(std::move(step)) {}

BatchTrial TrainingProbe::run(int64_t batch) {
  detail::RngGuard rng;
  const auto saved = model_.snapshot();
  const bool was_training = model_.is_training();
  BatchTrial t;
  t.batch = batch;
  try {
    // Each step gathers its own batch from the data set, as the loader does in the step loop,
    // so that the per-step cost small batches pay is part of their throughput.
    const int64_t n = data_.size(), size = std::min(batch, n);
    int64_t position = 0;
    auto next_batch = [&]() {
      if (position + size > n) position = 0;
      auto b = data_.get_batch(torch::arange(position, position + size));
      position += size;
      return b.map([&](const torch::Tensor& t) { return t.to(device_); });
    };
    data::Batch b = next_batch();
    double baseline = 0;
    if (device_.is_cpu()) {
      std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current resident set
      baseline = proc_kb_field("/proc/self/status", "VmRSS");
    }
#ifdef TRAINSCOPE_HAS_CUDA_ALLOCATOR
    if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
    model_.train();
    torch::optim::Adam opt(model_.parameters(), torch::optim::AdamOptions(1e-3));
    std::chrono::steady_clock::time_point start;
    int64_t timed = 0;
    // Step 0 warms up the allocator; then at least `steps_` steps and a quarter of a second, so
    // that a trial's throughput is not one noisy step.
    for (int64_t i = 0; i <= steps_ || (since(start) < 0.25 && i <= 64); ++i) {
      if (i == 1) start = std::chrono::steady_clock::now();
      if (i > 0) b = next_batch();
      opt.zero_grad();
      auto loss =
          step_ ? step_(model_, b).loss : task_loss(task_, model_.forward(b.x, b.inputs), b.y);
      loss.backward();
      opt.step();
      if (device_.is_cuda()) loss.item<float>();  // sync so the time is the device's
      if (i > 0) timed += b.x.size(0);
    }
    const double seconds = since(start);
    {
      torch::NoGradGuard no_grad;
      EvalModeGuard eval(model_);
      model_.forward(b.x, b.inputs);
    }
    t.samples_per_s = seconds > 0 ? double(timed) / seconds : 0.0;
    if (device_.is_cpu())
      t.peak_bytes = std::max(0.0, proc_kb_field("/proc/self/status", "VmHWM") - baseline);
#ifdef TRAINSCOPE_HAS_CUDA_ALLOCATOR
    if (device_.is_cuda())
      t.peak_bytes = double(
          c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index()).allocated_bytes[0].peak);
#endif
    t.fits = true;
  } catch (const std::bad_alloc&) {
    t.fits = false;
    t.note = "out of memory";
  } catch (const c10::Error& e) {
    if (std::string(e.what()).find("out of memory") == std::string::npos) throw;
    t.fits = false;
    t.note = "out of memory";
  }
  for (auto& p : model_.parameters()) p.mutable_grad() = torch::Tensor();
#ifdef TRAINSCOPE_HAS_CUDA_ALLOCATOR
  if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  model_.restore(saved);
  model_.train(was_training);
  return t;
}

}  // namespace trainscope::tune
