// The Trainer on small problems that have known answers.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ts = trainscope;

namespace {

ts::TrainerOptions quiet() { return ts::TrainerOptions().runs_dir(""); }

// Two Gaussian blobs, linearly separable.
std::shared_ptr<ts::data::TensorDataset> blobs(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto y = torch::randint(0, 2, {n}, torch::kInt64);
  auto x = torch::randn({n, 2}) * 0.3 + y.unsqueeze(1).to(torch::kFloat32) * 2.0 - 1.0;
  return std::make_shared<ts::data::TensorDataset>(x, y);
}

}  // namespace

TEST(Trainer, LearnsASeparableProblemAndReportsMetrics) {
  auto train = blobs(512, 1), val = blobs(128, 2);
  torch::manual_seed(0);
  ts::Model model(
      torch::nn::Sequential(torch::nn::Linear(2, 16), torch::nn::ReLU(), torch::nn::Linear(16, 2)));
  ts::Trainer trainer(quiet().max_epochs(5).batch_size(32).lr(1e-2));
  auto fit = trainer.fit(model, train, val);
  EXPECT_EQ(fit.stop_reason, ts::StopReason::kMaxEpochs);
  EXPECT_EQ(fit.stop_message, "max_epochs=5 reached");
  EXPECT_EQ(fit.epochs, 5);
  EXPECT_EQ(fit.global_step, 5 * 16);
  EXPECT_GT(fit.val_metrics.at("accuracy"), 0.97);
  EXPECT_LT(fit.val_metrics.at("loss"), 0.2);
  EXPECT_GE(fit.best_epoch, 1);

  auto test = trainer.test(model, *val);
  EXPECT_EQ(test.samples, 128);
  EXPECT_NEAR(test.metrics.at("accuracy"), fit.val_metrics.at("accuracy"), 1e-9);
  ASSERT_TRUE(test.confusion.defined());
  EXPECT_EQ(test.confusion.sum().item<int64_t>(), 128);
  EXPECT_EQ(test.per_class.size(), 2u);
}

// A loss of your own replaces the built-in: the step minimizes it and the metrics report it.
// Adam's steps do not change when the loss is scaled (but for its epsilon), so twice the
// cross-entropy trains the same model and reports twice its loss.
TEST(Trainer, ALossFunctionOfYourOwnIsWhatTheStepMinimizesAndReports) {
  auto train = blobs(256, 1), val = blobs(64, 2);
  auto fit = [&](ts::LossFunction loss) {
    torch::manual_seed(0);
    ts::Model model(
        torch::nn::Sequential(torch::nn::Linear(2, 8), torch::nn::ReLU(), torch::nn::Linear(8, 2)));
    ts::Trainer trainer(quiet().max_epochs(2).batch_size(32).loss_function(std::move(loss)));
    return trainer.fit(model, train, val);
  };
  int64_t calls = 0;
  const auto plain = fit(nullptr);
  const auto twice = fit([&](const torch::Tensor& out, const torch::Tensor& y) {
    ++calls;
    return 2 * torch::cross_entropy_loss(out, y);
  });
  EXPECT_EQ(calls, 2 * (8 + 1)) << "8 steps and 1 validation batch an epoch";
  EXPECT_NEAR(twice.train_metrics.at("loss"), 2 * plain.train_metrics.at("loss"), 1e-4);
  EXPECT_NEAR(twice.val_metrics.at("loss"), 2 * plain.val_metrics.at("loss"), 1e-4);
  EXPECT_NEAR(twice.val_metrics.at("accuracy"), plain.val_metrics.at("accuracy"), 1e-9);
}

TEST(Trainer, RegressionUsesMseAndReportsMaeRmse) {
  torch::manual_seed(3);
  auto x = torch::randn({256, 3});
  auto y = x.matmul(torch::tensor({1.5f, -2.0f, 0.5f})) + 0.3;
  auto data = std::make_shared<ts::data::TensorDataset>(x, y);
  ts::Model model(torch::nn::Linear(3, 1));
  ts::Trainer trainer(quiet().task(ts::Task::kRegression).max_epochs(40).batch_size(32).lr(5e-2));
  auto fit = trainer.fit(model, data, data);
  EXPECT_LT(fit.val_metrics.at("rmse"), 0.05);
  EXPECT_LT(fit.val_metrics.at("mae"), 0.05);
  EXPECT_EQ(fit.val_metrics.count("accuracy"), 0u);
}

TEST(Trainer, SameSeedSameWeights) {
  auto run = [] {
    auto data = blobs(256, 5);
    torch::manual_seed(0);
    ts::Model model(torch::nn::Linear(2, 2));
    ts::Trainer trainer(quiet().max_epochs(2).batch_size(16).seed(9));
    trainer.fit(model, data, nullptr);
    return model.parameters()[0].clone();
  };
  EXPECT_TRUE(torch::equal(run(), run()));
}

TEST(Trainer, GradClipBoundsTheStepAndCallbacksSeeTheRawGradients) {
  // Plain SGD at lr 1 moves the weights by exactly the (clipped) gradient; targets far from the
  // outputs make the raw gradient norm large.
  struct Watch : ts::Callback {
    std::string name() const override { return "watch"; }
    std::vector<torch::Tensor> before;
    double raw_norm = 0, moved = 0;
    void on_train_batch_start(ts::TrainState& s) override {
      before.clear();
      for (auto& p : s.model->parameters()) before.push_back(p.detach().clone());
    }
    void on_before_optimizer_step(ts::TrainState& s) override {
      double sq = 0;
      for (auto& p : s.model->parameters()) sq += p.grad().pow(2).sum().item<double>();
      raw_norm = std::sqrt(sq);
    }
    void on_train_batch_end(ts::TrainState& s) override {
      double sq = 0;
      auto params = s.model->parameters();
      for (size_t i = 0; i < params.size(); ++i)
        sq += (params[i].detach() - before[i]).pow(2).sum().item<double>();
      moved = std::sqrt(sq);
    }
  };
  auto x = torch::randn({16, 4});
  auto data = std::make_shared<ts::data::TensorDataset>(x, torch::full({16}, 100.0));
  auto step = [&](double clip) {
    torch::manual_seed(0);
    ts::Model model(torch::nn::Linear(4, 1));
    auto watch = std::make_shared<Watch>();
    ts::Trainer trainer(quiet()
                            .task(ts::Task::kRegression)
                            .optimizer(ts::Optimizer::kSgd)
                            .lr(1.0)
                            .max_epochs(1)
                            .batch_size(16)
                            .grad_clip(clip));
    trainer.add_callback(watch);
    trainer.fit(model, data, nullptr);
    return std::make_pair(watch->raw_norm, watch->moved);
  };
  const auto [raw, unclipped_move] = step(0.0);
  const auto [raw_seen, clipped_move] = step(0.5);
  ASSERT_GT(raw, 10.0);
  EXPECT_DOUBLE_EQ(raw_seen, raw) << "callbacks see the gradients before clipping";
  EXPECT_NEAR(unclipped_move, raw, 1e-3 * raw);
  EXPECT_NEAR(clipped_move, 0.5, 1e-4);
  EXPECT_THROW(ts::Trainer(quiet().grad_clip(-1.0)), ts::ConfigError);
}

TEST(Trainer, OutputThatDoesNotFitTheLabelsIsAShapeError) {
  auto data = std::make_shared<ts::data::TensorDataset>(torch::randn({8, 2}),
                                                        torch::full({8}, 4, torch::kInt64));
  ts::Model model(torch::nn::Linear(2, 3));
  ts::Trainer trainer(quiet().max_epochs(1));
  try {
    trainer.fit(model, data, nullptr);
    FAIL() << "expected ShapeError";
  } catch (const ts::ShapeError& e) {
    EXPECT_STREQ(e.what(),
                 "label 4 is out of range for a model with 3 outputs; size the last layer for the "
                 "data's classes");
  }
}

TEST(Trainer, InvalidOptionsNameFieldAndValue) {
  try {
    ts::Trainer t(quiet().lr(-1));
    FAIL();
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("TrainerOptions.lr = -1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ts::Trainer(quiet().batch_size(0)), ts::ConfigError);
  // Names that are not an optimizer or a device cannot be written in C++ (enums); the settings
  // reject them in text (config_test).
  EXPECT_FALSE(ts::DeviceChoice::parse("tpu"));
  EXPECT_FALSE(ts::value_of("adagrad", ts::kOptimizerNames));
}

// An epoch that a mid-epoch stop keeps from validating reports no validation metrics, rather
// than the previous epoch's.
TEST(Trainer, AnEpochWithoutValidationHasNoValidationMetrics) {
  class StopInEpoch2 : public ts::Callback {
   public:
    std::string name() const override { return "stop"; }
    void on_train_batch_end(ts::TrainState& s) override {
      if (s.epoch == 2) s.request_stop(ts::StopReason::kUserCallback, "test");
    }
    void on_epoch_end(ts::TrainState& s) override { seen[s.epoch] = s.val_metrics.size(); }
    std::map<int64_t, size_t> seen;
  };
  torch::manual_seed(0);
  auto data =
      std::make_shared<ts::data::TensorDataset>(torch::randn({64, 4}), torch::randint(0, 2, {64}));
  ts::Model model(torch::nn::Linear(4, 2));
  ts::Trainer trainer(quiet().max_epochs(3).batch_size(16));
  auto stop = std::make_shared<StopInEpoch2>();
  trainer.add_callback(stop);
  trainer.fit(model, data, data);
  EXPECT_EQ(stop->seen[1], 2u) << "loss and accuracy";
  EXPECT_EQ(stop->seen[2], 0u);
}

TEST(Trainer, EarlyStoppingByDefaultEndsAPlateauAndRestoresBest) {
  // Labels are noise: validation loss stops improving quickly.
  torch::manual_seed(0);
  auto train = std::make_shared<ts::data::TensorDataset>(torch::randn({256, 20}),
                                                         torch::randint(0, 2, {256}));
  auto val = std::make_shared<ts::data::TensorDataset>(torch::randn({256, 20}),
                                                       torch::randint(0, 2, {256}));
  ts::Model model(torch::nn::Sequential(torch::nn::Linear(20, 128), torch::nn::ReLU(),
                                        torch::nn::Linear(128, 2)));
  ts::SessionOptions options;  // early stopping is one of the Session's default callbacks
  options.train = quiet().max_epochs(100).lr(1e-2);
  options.progress = "off";
  options.checkpoints = false;
  options.stopping.patience = 2;
  auto trainer_ptr = ts::session::make_trainer(options);
  ts::Trainer& trainer = *trainer_ptr;
  auto fit = trainer.fit(model, train, val);
  EXPECT_EQ(fit.stop_reason, ts::StopReason::kPatience);
  EXPECT_LT(fit.epochs, 100);
  EXPECT_EQ(fit.epochs, fit.best_epoch + 2);
  // The restored weights are the best epoch's: validating again gives the best val_loss.
  EXPECT_NEAR(trainer.validate(model, *val).metrics.at("loss"), fit.best_val_loss, 1e-6);
}

// The fit keeps one best epoch, by its monitor: the one FitResult and the run report, best.ckpt
// holds and early stopping restores. Validation metrics are scripted so that the best by
// val_accuracy (epoch 4) is not the best by val_loss (epoch 3).
TEST(Trainer, OneBestEpochForTheResultTheRunTheBestCheckpointAndEarlyStopping) {
  struct Script : ts::Callback {
    std::string name() const override { return "script"; }
    void on_validation_end(ts::TrainState& s) override {
      const double accuracy[] = {0.5, 0.8, 0.7, 0.9, 0.6}, loss[] = {1.0, 0.5, 0.4, 0.6, 0.7};
      s.val_metrics = {{"accuracy", accuracy[s.epoch - 1]}, {"loss", loss[s.epoch - 1]}};
    }
  };
  const auto dir = std::filesystem::temp_directory_path() /
                   ("trainscope_one_best_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ts::SessionOptions o;
  o.progress = "off";
  o.diagnostics = false;
  o.stopping.patience = 10;
  o.train.runs_dir(dir.string()).run_name("best").max_epochs(5).batch_size(32).lr(1e-2);
  o.train.monitor("val_accuracy");
  auto trainer = ts::session::make_trainer(o);
  trainer->add_callback(std::make_shared<Script>());
  torch::manual_seed(0);
  ts::Model model(torch::nn::Linear(2, 2));
  auto fit = trainer->fit(model, blobs(256, 1), blobs(64, 2));
  EXPECT_EQ(fit.best_epoch, 4);
  EXPECT_DOUBLE_EQ(fit.best_val_loss, 0.6);
  auto& store = trainer->run()->store();
  EXPECT_EQ(store.meta("best_epoch"), std::optional<std::string>("4"));
  EXPECT_EQ(store.meta("best_monitor"), std::optional<std::string>("val_accuracy"));
  const auto best_file = fit.run_dir / "checkpoints" / "best.ckpt";
  const auto info = ts::track::read_checkpoint_info(best_file);
  EXPECT_EQ(info.epoch, 4);
  EXPECT_EQ(info.monitor, "val_accuracy");
  EXPECT_DOUBLE_EQ(info.value, 0.9);
  // Early stopping restored epoch 4's weights: the ones best.ckpt holds.
  ts::Model saved(torch::nn::Linear(2, 2));
  ts::callbacks::load_weights(saved.module(), best_file);
  for (size_t i = 0; i < model.parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(model.parameters()[i], saved.parameters()[i]));
  std::filesystem::remove_all(dir);
}
