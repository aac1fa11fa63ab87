#pragma once
// The learning-rate range test (Smith 2017; fastai's lr_find): train with an lr growing
// exponentially from 1e-7 to 10 and read a good lr off the smoothed loss curve.

#include <trainscope/data/dataset.h>
#include <trainscope/models/model.h>
#include <trainscope/train/metrics.h>

#include <filesystem>
#include <string>
#include <vector>

namespace trainscope::tune {

struct LrFinderOptions {
  double start_lr = 1e-7;
  double end_lr = 10.0;
  int64_t steps = 100;
  int64_t batch_size = 128;
  double smoothing = 0.98;      // EMA factor of the loss (debiased)
  double diverge_factor = 4.0;  // stop once the smoothed loss exceeds 4x its best
  double fallback_lr = 1e-3;    // suggested when the curve is too noisy to read
  Task task = Task::kClassification;
  torch::Device device = torch::kCPU;
};

struct LrCurve {
  std::vector<double> lrs, losses, smoothed;
};

struct LrSuggestion {
  double lr = 0.0;
  bool confident = false;
  std::string reason;  // "steepest descent of the smoothed loss at 3.2e-03", or why it fell back
};

// Reads the suggestion off a curve: the lr at the steepest descent of the smoothed loss (per
// decade), between the start and the minimum. Falls back to `fallback_lr`, not confident, when
// the loss never fell by 10% or the steepest stretch is a single noisy point.
LrSuggestion suggest_lr(const LrCurve& curve, double fallback_lr = 1e-3);

// Runs the sweep with Adam on `model` (restored afterwards) over shuffled batches of `data`.
LrCurve lr_range_test(Model& model, const data::Dataset& data, const LrFinderOptions& options = {});

// A PNG plot of the smoothed loss against log10(lr) with the suggestion marked.
void plot_lr_curve(const LrCurve& curve, const LrSuggestion& suggestion,
                   const std::filesystem::path& file);

}  // namespace trainscope::tune
