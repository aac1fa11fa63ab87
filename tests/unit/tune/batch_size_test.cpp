// The batch-size search on fake allocators with known answers, and on a real model whose memory
// per sample is known.
#include <trainscope/error.h>
#include <trainscope/tune/batch_size.h>

#include <gtest/gtest.h>

#include <functional>

namespace ts = trainscope;
namespace tn = trainscope::tune;

namespace {

// Memory = fixed + per_sample * batch; out of memory above `oom_above`; throughput from `speed`.
class FakeProbe : public tn::BatchProbe {
 public:
  FakeProbe(double fixed, double per_sample, int64_t oom_above,
            std::function<double(int64_t)> speed)
      : fixed_(fixed), per_sample_(per_sample), oom_above_(oom_above), speed_(std::move(speed)) {}
  tn::BatchTrial run(int64_t batch) override {
    tried.push_back(batch);
    tn::BatchTrial t;
    t.batch = batch;
    if (batch > oom_above_) {
      t.note = "out of memory";
      return t;
    }
    t.fits = true;
    t.peak_bytes = fixed_ + per_sample_ * double(batch);
    t.samples_per_s = speed_(batch);
    return t;
  }
  std::vector<int64_t> tried;

 private:
  double fixed_, per_sample_;
  int64_t oom_above_;
  std::function<double(int64_t)> speed_;
};

double ever_faster(int64_t b) { return 100.0 * double(b); }

tn::BatchSizeOptions opts() {
  tn::BatchSizeOptions o;
  o.start = 16;
  o.max = 1 << 20;
  o.time_budget_s = 60;
  return o;
}

}  // namespace

TEST(BatchSize, BisectsBetweenLastFitAndFirstOutOfMemory) {
  FakeProbe probe(0, 1, /*oom_above=*/1000, ever_faster);
  auto r = tn::find_batch_size(probe, opts(), /*budget=*/0, /*limit=*/1 << 20);
  // Doubling: 16 ... 512 fit, 1024 fails; then bisection to within an eighth of the fit.
  EXPECT_EQ(std::vector<int64_t>(probe.tried.begin(), probe.tried.begin() + 8),
            (std::vector<int64_t>{16, 16, 32, 64, 128, 256, 512, 1024}));
  EXPECT_LE(r.batch_size, 1000);
  EXPECT_GE(r.batch_size, 1000 - 1000 / 8);
  EXPECT_NE(r.reason.find("the largest that fits in memory (1024 did not: out of memory)"),
            std::string::npos)
      << r.reason;
}

TEST(BatchSize, MemoryBudgetWithHeadroomFromAKnownPerSampleCost) {
  // 1 MB fixed + 1 MB per sample, budget 500 MB, 10% headroom: fits while 1 + b <= 450.
  FakeProbe probe(1e6, 1e6, 1 << 30, ever_faster);
  auto r = tn::find_batch_size(probe, opts(), 500e6, 1 << 20);
  EXPECT_LE(r.batch_size, 449);
  EXPECT_GE(r.batch_size, 449 - 449 / 8);
  bool saw_budget_note = false;
  for (const auto& t : r.trials)
    saw_budget_note |= t.note.find("over the budget") != std::string::npos;
  EXPECT_TRUE(saw_budget_note);
}

TEST(BatchSize, StopsGrowingWhenThroughputStopsImproving) {
  // Throughput saturates at 128: +3% from 128 to 256 is under the 5% needed.
  FakeProbe probe(0, 1, 1 << 30, [](int64_t b) { return b <= 128 ? 20.0 * b : 2560.0 * 1.03; });
  auto r = tn::find_batch_size(probe, opts(), 0, 1 << 20);
  EXPECT_EQ(r.batch_size, 128);
  // The first size is run once unrecorded (warm-up), then doubling.
  EXPECT_EQ(probe.tried, (std::vector<int64_t>{16, 16, 32, 64, 128, 256}));
  EXPECT_EQ(r.trials.size(), 5u);
  EXPECT_NE(r.reason.find("throughput stopped improving"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("+3% at 256"), std::string::npos) << r.reason;
}

TEST(BatchSize, NeverLargerThanTheDataOrTheMaximum) {
  FakeProbe probe(0, 1, 1 << 30, ever_faster);
  EXPECT_EQ(tn::find_batch_size(probe, opts(), 0, /*limit=*/300).batch_size, 300);
  auto o = opts();
  o.max = 64;
  FakeProbe probe2(0, 1, 1 << 30, ever_faster);
  EXPECT_EQ(tn::find_batch_size(probe2, o, 0, 1 << 20).batch_size, 64);
}

TEST(BatchSize, NothingFitsIsAClearError) {
  FakeProbe probe(0, 1, /*oom_above=*/4, ever_faster);
  try {
    tn::find_batch_size(probe, opts(), 0, 1000);
    FAIL();
  } catch (const ts::Error& e) {
    EXPECT_NE(std::string(e.what()).find("even a batch of 16 does not fit"), std::string::npos)
        << e.what();
  }
}

TEST(BatchSize, LrFollowsTheStatedRule) {
  EXPECT_DOUBLE_EQ(tn::scale_lr(1e-3, 128, 512, "keep"), 1e-3);
  EXPECT_DOUBLE_EQ(tn::scale_lr(1e-3, 128, 512, "linear"), 4e-3);
  EXPECT_DOUBLE_EQ(tn::scale_lr(1e-3, 128, 512, "sqrt"), 2e-3);
  EXPECT_THROW(tn::scale_lr(1e-3, 128, 512, "cubic"), ts::ConfigError);
}

TEST(BatchSize, RealProbeMeasuresMemoryThatGrowsWithTheBatch) {
  // A wide linear layer: activations of 4096 floats per sample dominate, 16 KiB each (plus
  // the gradient of the same size).
  ts::Model model(torch::nn::Sequential(torch::nn::Linear(64, 4096), torch::nn::ReLU(),
                                        torch::nn::Linear(4096, 2)));
  auto data = std::make_shared<ts::data::TensorDataset>(torch::randn({4096, 64}),
                                                        torch::randint(0, 2, {4096}));
  tn::TrainingProbe probe(model, *data, ts::Task::kClassification, torch::kCPU, 2, 0);
  auto before = model.snapshot();
  auto small = probe.run(256), large = probe.run(2048);
  ASSERT_TRUE(small.fits && large.fits);
  EXPECT_GT(large.samples_per_s, 0);
  // 1,792 more samples x 16 KiB per activation, with at least the linear output, the relu output
  // and their gradients alive at once; the allocator may reuse some, so check for one copy.
  EXPECT_GT(large.peak_bytes - small.peak_bytes, 1792.0 * 16384)
      << small.peak_bytes << " " << large.peak_bytes;
  auto after = model.snapshot();
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(torch::equal(before[i], after[i])) << "weights restored";
}

TEST(BatchSize, OutOfMemoryOnCuda_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ts::Model model(
      torch::nn::Sequential(torch::nn::Linear(1024, 65536), torch::nn::Linear(65536, 2)));
  model.to(torch::kCUDA);
  auto data = std::make_shared<ts::data::TensorDataset>(torch::randn({1 << 20, 1024}),
                                                        torch::randint(0, 2, {1 << 20}));
  tn::TrainingProbe probe(model, *data, ts::Task::kClassification, torch::kCUDA, 1, 0);
  auto o = opts();
  o.start = 1024;
  auto r = tn::find_batch_size(probe, o, 0, data->size());
  EXPECT_GE(r.batch_size, 1024);
  bool oom = false;
  for (const auto& t : r.trials) oom |= t.note == "out of memory";
  EXPECT_TRUE(oom) << "a 64k-wide layer at 1M samples must run out of device memory";
}
