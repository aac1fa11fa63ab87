#pragma once
// Pre-flight checks: test the setup in seconds before spending the epochs (the "overfit one batch
// first" recipe and Lightning's fast_dev_run / overfit_batches, made automatic).

#include <trainscope/data/dataset.h>
#include <trainscope/diagnose/finding.h>
#include <trainscope/models/model.h>
#include <trainscope/train/metrics.h>
#include <trainscope/train/trainer.h>

#include <vector>

namespace trainscope::diagnose {

struct PreflightOptions {
  Task task = Task::kClassification;
  int64_t num_classes = 0;      // classification; 0: the model's output width
  int64_t batch_size = 32;      // the batch to overfit
  int64_t overfit_steps = 100;  // Adam steps allowed to overfit it, at 3x the training lr
  double lr = 1e-3;             // the training lr
  torch::Device device = torch::kCPU;
  // The fit's own step (a loss or step of your own, TrainerOptions::step), whose loss the
  // gradient and overfit checks then use; null: the task's built-in loss. With one, the
  // initial-loss check, which knows the built-in losses only, is left out.
  StepFunction step = nullptr;
};

// Runs: labels in range for the head and class balance (largest/smallest class <= 10);
// inputs normalized (|mean| <= 1, 0.2 <= std <= 5); a fresh classifier's initial loss near log C;
// every trainable parameter receives a gradient; one batch can be overfit to under a tenth of its
// initial loss. Returns a Finding (kind "preflight_<check>") for each failed check; empty when all
// pass. Leaves the model's weights, buffers, mode and torch's RNG state as it found them.
std::vector<Finding> preflight(Model& model, const data::Dataset& train,
                               const PreflightOptions& options = {});

}  // namespace trainscope::diagnose
