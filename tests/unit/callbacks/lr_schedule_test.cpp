// The lr schedules against PyTorch's schedulers (golden values from
// golden/make_lr_schedule_golden.py), driven the way the Trainer calls them, on an Adam with two
// parameter groups.
#include <trainscope/callbacks/lr_schedule.h>
#include <trainscope/error.h>

#include <gtest/gtest.h>

#include "../round_trip.h"

#include "golden/lr_schedule_golden.inc"

namespace ts = trainscope;
namespace cb = trainscope::callbacks;

namespace {

// An Adam whose two groups start at lr 0.1 and 0.01, in a TrainState of `epochs` x `batches`.
struct Fit {
  Fit(int64_t epochs, int64_t batches) {
    a = torch::zeros({2}, torch::requires_grad());
    b = torch::zeros({2}, torch::requires_grad());
    optimizer = std::make_unique<torch::optim::Adam>(std::vector<torch::Tensor>{a},
                                                     torch::optim::AdamOptions(0.1));
    optimizer->add_param_group(
        torch::optim::OptimizerParamGroup({b}, std::make_unique<torch::optim::AdamOptions>(0.01)));
    state.optimizer = optimizer.get();
    state.max_epochs = epochs;
    state.batches_per_epoch = batches;
  }
  double lr(size_t group) const { return optimizer->param_groups()[group].options().get_lr(); }
  double beta1(size_t group) const {
    auto& o = static_cast<torch::optim::AdamOptions&>(optimizer->param_groups()[group].options());
    return std::get<0>(o.betas());
  }
  torch::Tensor a, b;
  std::unique_ptr<torch::optim::Adam> optimizer;
  ts::TrainState state;
};

// The lr of both groups before every step, as the Trainer would run `schedule`.
std::vector<double> per_step(cb::LrSchedule& schedule, Fit& fit, bool momentum = false) {
  std::vector<double> out;
  schedule.on_fit_start(fit.state);
  for (fit.state.epoch = 1; fit.state.epoch <= fit.state.max_epochs; ++fit.state.epoch) {
    schedule.on_epoch_start(fit.state);
    for (fit.state.batch_in_epoch = 0; fit.state.batch_in_epoch < fit.state.batches_per_epoch;
         ++fit.state.batch_in_epoch) {
      schedule.on_train_batch_start(fit.state);
      out.push_back(fit.lr(0));
      out.push_back(fit.lr(1));
      if (momentum) {
        out.push_back(fit.beta1(0));
        out.push_back(fit.beta1(1));
      }
      ++fit.state.global_step;
    }
    schedule.on_epoch_end(fit.state);
  }
  return out;
}

void expect_golden(const std::vector<double>& got, const double* golden, size_t n,
                   const std::string& what) {
  ASSERT_EQ(got.size(), n) << what;
  for (size_t i = 0; i < n; ++i)
    EXPECT_NEAR(got[i], golden[i], 1e-12 + 1e-9 * std::abs(golden[i])) << what << " value " << i;
}

}  // namespace

TEST(LrSchedule, StepMatchesTorchStepLR) {
  Fit fit(7, 1);
  cb::StepLr schedule(2, 0.5);
  expect_golden(per_step(schedule, fit), kStep2Half, std::size(kStep2Half), "step");
}

TEST(LrSchedule, CosineMatchesTorchCosineAnnealingLR) {
  Fit fit(8, 5);
  cb::CosineLr schedule(0, 0.0);
  expect_golden(per_step(schedule, fit), kCosine40, std::size(kCosine40), "cosine");
}

TEST(LrSchedule, WarmupThenCosineMatchesTorchLinearLRThenCosine) {
  Fit fit(8, 5);
  cb::CosineLr schedule(/*warmup_epochs=*/2, /*min_lr=*/1e-4, /*warmup_start=*/0.01);
  expect_golden(per_step(schedule, fit), kWarmup10Cosine40, std::size(kWarmup10Cosine40),
                "warm-up + cosine");
}

TEST(LrSchedule, OneCycleMatchesTorchOneCycleLRWithItsMomentum) {
  Fit fit(8, 5);
  cb::OneCycleLr schedule;  // max_lr 0: ten times each group's lr, as the golden run asks
  expect_golden(per_step(schedule, fit, /*momentum=*/true), kOneCycle40, std::size(kOneCycle40),
                "onecycle");
}

TEST(LrSchedule, PlateauMatchesTorchReduceLROnPlateau) {
  for (bool maximize : {false, true}) {
    SCOPED_TRACE(maximize ? "max mode" : "min mode");
    cb::LrScheduleOptions o;
    o.kind = cb::ScheduleKind::kPlateau;
    if (maximize) {
      o.monitor = "val_accuracy";  // auto: max
      o.factor = 0.1;
      o.patience = 0;
    } else {
      o.factor = 0.5;
      o.patience = 1;
      o.cooldown = 1;
      o.min_lr = 0.004;
    }
    auto schedule = cb::make_lr_schedule(o);
    Fit fit(1, 1);
    schedule->on_fit_start(fit.state);
    const double* metrics = maximize ? kPlateauAccuracy : kPlateauMetrics;
    const size_t n = maximize ? std::size(kPlateauAccuracy) : std::size(kPlateauMetrics);
    std::vector<double> got;
    for (size_t e = 0; e < n; ++e) {
      fit.state.epoch = static_cast<int64_t>(e) + 1;
      fit.state.val_metrics = {{maximize ? "accuracy" : "loss", metrics[e]}};
      schedule->on_epoch_end(fit.state);
      got.push_back(fit.lr(0));
      got.push_back(fit.lr(1));
    }
    if (maximize)
      expect_golden(got, kPlateauMax, std::size(kPlateauMax), "plateau max");
    else
      expect_golden(got, kPlateauMin, std::size(kPlateauMin), "plateau min");
  }
}

// A group added mid-fit (a backbone unfrozen with lr / 10) is scheduled from its own lr.
TEST(LrSchedule, AGroupAddedLaterIsScheduledFromItsOwnLr) {
  auto a = torch::zeros({2}, torch::requires_grad());
  torch::optim::Adam adam(std::vector<torch::Tensor>{a}, torch::optim::AdamOptions(0.1));
  ts::TrainState s;
  s.optimizer = &adam;
  s.max_epochs = 4;
  s.batches_per_epoch = 10;
  cb::CosineLr schedule;
  schedule.on_fit_start(s);
  s.global_step = 20;
  auto b = torch::zeros({2}, torch::requires_grad());
  adam.add_param_group(
      torch::optim::OptimizerParamGroup({b}, std::make_unique<torch::optim::AdamOptions>(0.01)));
  schedule.on_train_batch_start(s);
  EXPECT_NEAR(adam.param_groups()[0].options().get_lr(), 0.05, 1e-12);  // half way: cos = 0
  EXPECT_NEAR(adam.param_groups()[1].options().get_lr(), 0.005, 1e-12);
}

// Counters and base lrs go into checkpoints: a restored plateau schedule acts when the original
// would have.
TEST(LrSchedule, PlateauStateSurvivesACheckpoint) {
  cb::LrScheduleOptions o;
  o.kind = cb::ScheduleKind::kPlateau;
  o.patience = 2;
  auto schedule = cb::make_lr_schedule(o);
  Fit fit(1, 1);
  schedule->on_fit_start(fit.state);
  for (double loss : {1.0, 1.1, 1.2}) {  // two bad epochs: one more lowers the lr
    fit.state.val_metrics = {{"loss", loss}};
    schedule->on_epoch_end(fit.state);
  }
  torch::serialize::OutputArchive out;
  schedule->on_checkpoint_save(fit.state, out);
  auto in = trainscope::testing::round_trip(out);
  Fit other(1, 1);
  auto restored = cb::make_lr_schedule(o);
  restored->on_fit_start(other.state);
  restored->on_checkpoint_load(other.state, in);
  other.state.val_metrics = {{"loss", 1.3}};
  restored->on_epoch_end(other.state);
  EXPECT_NEAR(other.lr(0), 0.01, 1e-15);
  EXPECT_NEAR(other.lr(1), 0.001, 1e-15);
}

TEST(LrSchedule, BadParametersAreConfigErrorsNamingThem) {
  cb::LrScheduleOptions o;  // an unknown kind is a settings error (config_test)
  EXPECT_THROW(cb::StepLr(0, 0.1), ts::ConfigError);
  EXPECT_THROW(cb::OneCycleLr(0.1, 1.5), ts::ConfigError);
  o.kind = cb::ScheduleKind::kPlateau;
  o.factor = 2.0;
  EXPECT_THROW(cb::make_lr_schedule(o), ts::ConfigError);
  EXPECT_EQ(cb::make_lr_schedule(cb::LrScheduleOptions{}), nullptr) << "none: no callback";
}
