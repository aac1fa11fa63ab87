// DelayedAugmentation: training batches are augmented from the given epoch, or from the epoch after
// the first that shows overfitting begin (its validation loss over 10% above its training loss, or
// no new best); a resumed fit augments the same epochs.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

namespace ts = trainscope;

namespace {

// Counts the batches it is given and moves the inputs by a little noise from the fit's generator.
class CountingNoise : public ts::data::Transform {
 public:
  ts::data::Batch apply(ts::data::Batch batch, at::Generator& gen) const override {
    ++*calls;
    batch.x = batch.x + 0.1 * at::randn(batch.x.sizes(), gen, batch.x.options());
    return batch;
  }
  std::string describe() const override { return "noise"; }
  std::shared_ptr<int64_t> calls = std::make_shared<int64_t>(0);
};

// Each epoch's augmented batches, and its losses, in order kUser before DelayedAugmentation
// decides (the same order: added first, called first).
class PerEpoch : public ts::Callback {
 public:
  explicit PerEpoch(std::shared_ptr<int64_t> calls) : calls_(std::move(calls)) {}
  std::string name() const override { return "per_epoch"; }
  void on_epoch_end(ts::TrainState& s) override {
    augmented.push_back(*calls_ - seen_);
    seen_ = *calls_;
    train_loss.push_back(s.train_metrics.at("loss"));
    val_loss.push_back(s.val_metrics.count("loss") ? s.val_metrics.at("loss") : std::nan(""));
    improved.push_back(s.best.improved);
  }
  std::vector<int64_t> augmented;
  std::vector<double> train_loss, val_loss;
  std::vector<bool> improved;

 private:
  std::shared_ptr<int64_t> calls_;
  int64_t seen_ = 0;
};

std::shared_ptr<ts::data::TensorDataset> blobs(int64_t n, uint64_t seed, double spread) {
  torch::manual_seed(seed);
  auto y = torch::randint(0, 3, {n}, torch::kInt64);
  auto x = torch::randn({n, 8}) * spread + y.unsqueeze(1).to(torch::kFloat32);
  return std::make_shared<ts::data::TensorDataset>(x, y);
}

ts::Model net() {
  torch::manual_seed(5);
  return ts::Model(
      torch::nn::Sequential(torch::nn::Linear(8, 64), torch::nn::ReLU(), torch::nn::Linear(64, 3)),
      "net");
}

struct Fit {
  std::shared_ptr<PerEpoch> epochs;
  std::shared_ptr<ts::callbacks::DelayedAugmentation> delayed;
};

Fit fit(int64_t start_epoch, bool validate, int64_t epochs = 6) {
  auto noise = std::make_shared<CountingNoise>();
  Fit f{std::make_shared<PerEpoch>(noise->calls),
        std::make_shared<ts::callbacks::DelayedAugmentation>(
            ts::callbacks::DelayedAugmentationOptions{.start_epoch = start_epoch}, nullptr)};
  ts::Trainer trainer(
      ts::TrainerOptions().runs_dir("").max_epochs(epochs).batch_size(16).lr(1e-2).augment(noise));
  trainer.add_callback(f.epochs);
  trainer.add_callback(f.delayed);
  ts::Model model = net();
  // Few noisy training examples for a wide net: it overfits within a few epochs.
  auto train = blobs(64, 1, 1.5);
  if (validate)
    trainer.fit(model, train, blobs(256, 2, 1.5));
  else
    trainer.fit(model, train, nullptr);
  return f;
}

}  // namespace

TEST(DelayedAugmentation, AGivenStartEpochAugmentsFromThereOn) {
  const Fit f = fit(3, true);
  EXPECT_EQ(f.epochs->augmented, (std::vector<int64_t>{0, 0, 4, 4, 4, 4}));
  EXPECT_EQ(f.delayed->started_at(), 3);
}

TEST(DelayedAugmentation, AutoStartsTheEpochAfterOverfittingBegins) {
  const Fit f = fit(0, true);
  const PerEpoch& e = *f.epochs;
  // The first epoch whose validation loss is over 10% above its training loss or that set no
  // new best.
  size_t first = 0;
  while (first < e.train_loss.size() &&
         !((e.val_loss[first] - e.train_loss[first]) / e.train_loss[first] > 0.1) &&
         e.improved[first])
    ++first;
  ASSERT_LT(first + 1, e.train_loss.size()) << "the problem overfits within the fit";
  EXPECT_EQ(f.delayed->started_at(), static_cast<int64_t>(first) + 2);  // epochs are 1-based
  for (size_t i = 0; i < e.augmented.size(); ++i)
    EXPECT_EQ(e.augmented[i], i <= first ? 0 : 4) << "epoch " << i + 1;
  EXPECT_NE(f.delayed->why().find("loss"), std::string::npos) << f.delayed->why();
}

TEST(DelayedAugmentation, WithoutValidationAutoStartsAfterTheFirstEpoch) {
  const Fit f = fit(0, false, 3);
  EXPECT_EQ(f.epochs->augmented, (std::vector<int64_t>{0, 4, 4}));
  EXPECT_NE(f.delayed->why().find("no validation loss"), std::string::npos);
}

TEST(DelayedAugmentation, ANegativeStartEpochIsAClearError) {
  try {
    ts::callbacks::DelayedAugmentation bad({.start_epoch = -1}, nullptr);
    FAIL() << "no error";
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("start_epoch -1 is out of range"), std::string::npos);
  }
  EXPECT_THROW(ts::callbacks::DelayedAugmentation({.gap = -0.5}, nullptr), ts::ConfigError);
}
