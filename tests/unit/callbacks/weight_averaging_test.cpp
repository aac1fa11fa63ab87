// WeightAveraging: the average follows every optimizer step with its warm-up decay; validation,
// the best epoch and the model after the fit are the average, while the optimizer keeps stepping
// the model's own weights.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

#include <algorithm>

namespace ts = trainscope;

namespace {

std::shared_ptr<ts::data::TensorDataset> blobs(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto y = torch::randint(0, 3, {n}, torch::kInt64);
  auto x = torch::randn({n, 4}) * 0.8 + y.unsqueeze(1).to(torch::kFloat32);
  return std::make_shared<ts::data::TensorDataset>(x, y);
}

// BatchNorm's running statistics are floating-point buffers (averaged), its step count an integer
// one (copied).
ts::Model net() {
  torch::manual_seed(5);
  return ts::Model(torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::BatchNorm1d(16),
                                         torch::nn::ReLU(), torch::nn::Linear(16, 3)),
                   "net");
}

// Before WeightAveraging (order kDistributed < kWeights): the model's own weights after each
// step, the batch losses, and the model's weights when validation starts.
class Recorder : public ts::Callback {
 public:
  std::string name() const override { return "recorder"; }
  ts::CallbackOrder order() const override { return ts::CallbackOrder::kDistributed; }
  void on_train_batch_end(ts::TrainState& s) override {
    steps.push_back(s.model->snapshot());
    losses.push_back(s.loss.item<double>());
  }
  std::vector<std::vector<torch::Tensor>> steps;
  std::vector<double> losses;
};

// After WeightAveraging: what validation is given.
class Validated : public ts::Callback {
 public:
  std::string name() const override { return "validated"; }
  void on_validation_start(ts::TrainState& s) override { weights.push_back(s.model->snapshot()); }
  std::vector<std::vector<torch::Tensor>> weights;
};

ts::TrainerOptions options() {
  return ts::TrainerOptions().runs_dir("").max_epochs(3).batch_size(32).lr(1e-2);
}

}  // namespace

TEST(WeightAveraging, TheAverageFollowsEachStepWithItsWarmUpDecay) {
  auto train = blobs(160, 1), val = blobs(64, 2);
  ts::Model model = net();
  auto recorder = std::make_shared<Recorder>();
  auto validated = std::make_shared<Validated>();
  auto averaging = std::make_shared<ts::callbacks::WeightAveraging>(
      ts::callbacks::WeightAveragingOptions{.decay = 0.9});
  ts::Trainer trainer(options());
  trainer.add_callback(recorder);
  trainer.add_callback(validated);
  trainer.add_callback(averaging);
  trainer.fit(model, train, val);
  ASSERT_EQ(recorder->steps.size(), 15u);  // 5 steps an epoch
  EXPECT_EQ(averaging->updates(), 15);

  // By hand: the first update copies, the n-th moves by 1 - min(0.9, (1 + n) / (10 + n)).
  std::vector<torch::Tensor> average;
  for (const auto& t : recorder->steps[0]) average.push_back(t.clone());
  std::vector<std::vector<torch::Tensor>> at_epoch_end;
  for (size_t n = 1; n < recorder->steps.size(); ++n) {
    const double decay = std::min(0.9, (1.0 + n) / (10.0 + n));
    for (size_t i = 0; i < average.size(); ++i) {
      if (average[i].is_floating_point())
        average[i].lerp_(recorder->steps[n][i], 1.0 - decay);
      else
        average[i].copy_(recorder->steps[n][i]);
    }
    if ((n + 1) % 5 == 0) {
      at_epoch_end.emplace_back();
      for (const auto& t : average) at_epoch_end.back().push_back(t.clone());
    }
  }
  ASSERT_EQ(validated->weights.size(), 3u);
  for (size_t e = 0; e < 3; ++e)
    for (size_t i = 0; i < average.size(); ++i)
      EXPECT_TRUE(torch::allclose(validated->weights[e][i], at_epoch_end[e][i], 1e-6, 1e-7))
          << "epoch " << e + 1 << ", tensor " << i;
  // The average is not the weights: it lags them.
  EXPECT_FALSE(torch::allclose(validated->weights[2][0], recorder->steps[14][0]));
  // After the fit the model holds the last epoch's average (no early stopping here).
  const auto final_weights = model.snapshot();
  for (size_t i = 0; i < average.size(); ++i)
    EXPECT_TRUE(torch::equal(final_weights[i], validated->weights[2][i])) << "tensor " << i;
}

TEST(WeightAveraging, TheOptimizerStepsTheModelsOwnWeightsAsWithout) {
  auto train = blobs(160, 1), val = blobs(64, 2);
  auto fit = [&](bool average) {
    ts::Model model = net();
    auto recorder = std::make_shared<Recorder>();
    ts::Trainer trainer(options());
    trainer.add_callback(recorder);
    if (average)
      trainer.add_callback(std::make_shared<ts::callbacks::WeightAveraging>(
          ts::callbacks::WeightAveragingOptions{.decay = 0.9}));
    const ts::FitResult result = trainer.fit(model, train, val);
    return std::make_pair(recorder, result);
  };
  auto [plain, plain_fit] = fit(false);
  auto [averaged, averaged_fit] = fit(true);
  // Each batch's loss and the weights after each step: bit for bit the same fit.
  EXPECT_EQ(plain->losses, averaged->losses);
  for (size_t n = 0; n < plain->steps.size(); ++n)
    for (size_t i = 0; i < plain->steps[n].size(); ++i)
      ASSERT_TRUE(torch::equal(plain->steps[n][i], averaged->steps[n][i]))
          << "step " << n + 1 << ", tensor " << i;
  // What validation reports is the average's.
  EXPECT_NE(plain_fit.val_metrics.at("loss"), averaged_fit.val_metrics.at("loss"));
}

// The best epoch that early stopping restores is the average at that epoch.
TEST(WeightAveraging, EarlyStoppingKeepsTheAverageOfTheBestEpoch) {
  auto train = blobs(160, 1), val = blobs(64, 2);
  ts::Model model = net();
  auto validated = std::make_shared<Validated>();
  ts::callbacks::EarlyStoppingOptions stop;
  stop.patience = 2;
  ts::Trainer trainer(options().max_epochs(8).lr(0.3));  // a large lr: the val loss bounces
  trainer.add_callback(validated);
  trainer.add_callback(std::make_shared<ts::callbacks::WeightAveraging>(
      ts::callbacks::WeightAveragingOptions{.decay = 0.8}));
  trainer.add_callback(std::make_shared<ts::callbacks::EarlyStopping>(stop));
  const ts::FitResult fit = trainer.fit(model, train, val);
  ASSERT_GE(fit.best_epoch, 1);
  const auto best = validated->weights.at(static_cast<size_t>(fit.best_epoch - 1));
  const auto now = model.snapshot();
  for (size_t i = 0; i < now.size(); ++i) EXPECT_TRUE(torch::equal(now[i], best[i])) << i;
}

TEST(WeightAveraging, ADecayOutsideZeroToOneIsAClearError) {
  for (double decay : {-0.1, 1.0, 1.5}) {
    try {
      ts::callbacks::WeightAveraging averaging({.decay = decay});
      ADD_FAILURE() << decay << " accepted";
    } catch (const ts::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("expected a number in [0, 1)"), std::string::npos)
          << e.what();
    }
  }
}
