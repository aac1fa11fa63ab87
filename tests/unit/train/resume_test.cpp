// Trainer::resume through the library: a fit that an exception ends at any step, resumed by a
// new Trainer on a freshly built model, ends with the weights and run store of the fit that was
// never interrupted, for every lr schedule; damaged checkpoints are set aside and an older one
// serves.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
namespace ts = trainscope;

namespace {

struct Problem {
  std::shared_ptr<ts::data::TensorDataset> train, val;
};

Problem problem() {
  torch::manual_seed(3);
  auto x = torch::randn({608, 16});
  auto y = (x.slice(1, 0, 4).sum(1) > 0).to(torch::kInt64) +
           (x.slice(1, 4, 8).sum(1) > 1).to(torch::kInt64);
  auto vx = torch::randn({128, 16});
  auto vy = (vx.slice(1, 0, 4).sum(1) > 0).to(torch::kInt64) +
            (vx.slice(1, 4, 8).sum(1) > 1).to(torch::kInt64);
  return {std::make_shared<ts::data::TensorDataset>(x, y),
          std::make_shared<ts::data::TensorDataset>(vx, vy)};
}

// Dropout draws from the global generator: its state must come back with the checkpoint.
ts::Model model(uint64_t seed) {
  torch::manual_seed(seed);
  return ts::Model(torch::nn::Sequential(torch::nn::Linear(16, 32), torch::nn::ReLU(),
                                         torch::nn::Dropout(0.3), torch::nn::Linear(32, 3)),
                   "net");
}

// The Session's callbacks (checkpoints, early stopping, the schedule) on a Trainer.
ts::SessionOptions options(const fs::path& runs, const std::string& schedule) {
  ts::SessionOptions o;
  o.progress = "off";
  o.train.runs_dir(runs.string()).run_name("run").max_epochs(4).batch_size(32).log_every(5);
  o.checkpoint.every_steps = 7;
  o.schedule.kind = *ts::value_of(schedule, ts::callbacks::kScheduleNames);
  o.schedule.patience = 0;  // plateau: act on the first flat epoch
  o.schedule.step_size = 1;
  return o;
}

// Throws at a chosen step, as a crash would stop the fit (after that step's optimizer update,
// before its checkpoint).
class Crash : public ts::Callback {
 public:
  explicit Crash(int64_t step) : step_(step) {}
  std::string name() const override { return "crash"; }
  void on_train_batch_end(ts::TrainState& s) override {
    if (s.global_step == step_) throw std::runtime_error("simulated crash");
  }

 private:
  int64_t step_;
};

std::vector<std::string> metric_rows(const fs::path& run) {
  ts::track::RunStore store(run / "run.sqlite", ts::track::RunStore::Mode::kReadOnly);
  std::vector<std::string> out;
  for (const auto& m : store.metrics()) {
    // Timings and the process's CPU and memory measure the machine, not the fit.
    if (m.tag == "epoch_seconds" || m.tag == "samples_per_s" || m.tag == "data_wait_fraction" ||
        m.split == "system")
      continue;
    char v[40];
    std::snprintf(v, sizeof v, "%a", m.value);
    out.push_back(std::to_string(m.step) + " " + std::to_string(m.epoch) + " " + m.split + " " +
                  m.tag + " " + v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void expect_equal_weights(const ts::Model& a, const ts::Model& b) {
  auto wa = a.snapshot(), wb = b.snapshot();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::equal(wa[i], wb[i])) << "tensor " << i;
}

// For each step: a fit of `make(1)` that crashes there, resumed on `make(99)` by a new Trainer,
// ends with `ref`'s weights and run store rows.
template <typename Make, typename TrainerFor>
void expect_resumes_exactly(const Problem& p, const fs::path& dir, const std::string& name,
                            const std::vector<int64_t>& crash_steps, Make make,
                            TrainerFor trainer_for, const ts::Model& ref,
                            const std::vector<std::string>& ref_rows) {
  for (int64_t crash_step : crash_steps) {
    SCOPED_TRACE("crash at step " + std::to_string(crash_step));
    const fs::path runs = dir / (name + "-" + std::to_string(crash_step));
    {
      ts::Model m = make(1);
      auto t = trainer_for(runs);
      t->add_callback(std::make_shared<Crash>(crash_step));
      EXPECT_THROW(t->fit(m, p.train, p.val), std::runtime_error);
    }
    ts::Model fresh = make(99);
    trainer_for(runs)->resume(fresh, p.train, p.val, runs / "run");
    expect_equal_weights(fresh, ref);
    EXPECT_EQ(metric_rows(runs / "run"), ref_rows);
  }
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ts_resume_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The uninterrupted fit's final model and run store rows.
  std::pair<ts::Model, std::vector<std::string>> reference(const Problem& p,
                                                           const std::string& schedule) {
    ts::Model m = model(1);
    auto trainer_ptr = ts::session::make_trainer(options(dir_ / ("ref-" + schedule), schedule));
    ts::Trainer& trainer = *trainer_ptr;
    trainer.fit(m, p.train, p.val);
    return {m, metric_rows(dir_ / ("ref-" + schedule) / "run")};
  }
  fs::path dir_;
};

TEST_F(Resume, AfterACrashAtAnyStepTheFitEndsAsIfUninterrupted) {
  const Problem p = problem();
  // 19 steps an epoch: crashes mid-epoch, right after a mid-epoch save, just after an epoch's end.
  for (const std::string schedule : {"none", "plateau", "cosine", "onecycle", "step"}) {
    auto [ref_model, ref_rows] = reference(p, schedule);
    for (int64_t crash_step : {3, 8, 20, 45, 70}) {
      SCOPED_TRACE(schedule + ", crash at step " + std::to_string(crash_step));
      const fs::path runs = dir_ / (schedule + "-" + std::to_string(crash_step));
      {
        ts::Model m = model(1);
        auto trainer_ptr = ts::session::make_trainer(options(runs, schedule));
        ts::Trainer& trainer = *trainer_ptr;
        trainer.add_callback(std::make_shared<Crash>(crash_step));
        EXPECT_THROW(trainer.fit(m, p.train, p.val), std::runtime_error);
      }
      ts::Model fresh = model(99);  // other initial weights: they must come from the checkpoint
      auto trainer_ptr = ts::session::make_trainer(options(runs, schedule));
      ts::Trainer& trainer = *trainer_ptr;
      ts::FitResult fit = trainer.resume(fresh, p.train, p.val, runs / "run");
      EXPECT_EQ(fit.resumed_from.filename(), "last.ckpt");
      EXPECT_EQ(fit.stop_reason, ts::StopReason::kMaxEpochs);
      EXPECT_EQ(fit.global_step, 4 * 19);
      expect_equal_weights(fresh, ref_model);
      EXPECT_EQ(metric_rows(runs / "run"), ref_rows);
      if (HasFailure()) return;
    }
  }
}

TEST_F(Resume, ADamagedLastCheckpointIsSetAsideAndTheNextNewestServes) {
  const Problem p = problem();
  auto [ref_model, ref_rows] = reference(p, "none");
  for (const std::string damage : {"truncated", "bit flip"}) {
    SCOPED_TRACE(damage);
    const fs::path runs = dir_ / (damage == "truncated" ? "t" : "f");
    {
      ts::Model m = model(1);
      auto trainer_ptr = ts::session::make_trainer(options(runs, "none"));
      ts::Trainer& trainer = *trainer_ptr;
      trainer.add_callback(std::make_shared<Crash>(50));
      EXPECT_THROW(trainer.fit(m, p.train, p.val), std::runtime_error);
    }
    const fs::path last = runs / "run" / "checkpoints" / "last.ckpt";
    const auto size = fs::file_size(last);
    if (damage == "truncated") {
      fs::resize_file(last, size / 2);
    } else {
      std::fstream f(last, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size - 1000));
      char c;
      f.read(&c, 1);
      f.seekp(static_cast<std::streamoff>(size - 1000));
      c ^= 0x04;
      f.write(&c, 1);
    }
    ts::Model fresh = model(99);
    auto trainer_ptr = ts::session::make_trainer(options(runs, "none"));
    ts::Trainer& trainer = *trainer_ptr;
    testing::internal::CaptureStderr();
    ts::FitResult fit = trainer.resume(fresh, p.train, p.val, runs / "run");
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find(last.string()), std::string::npos) << err;
    EXPECT_NE(err.find(damage == "truncated" ? "is truncated" : "fails the checksum"),
              std::string::npos)
        << err;
    EXPECT_EQ(fit.resumed_from.filename(), "previous.ckpt");
    EXPECT_TRUE(fs::exists(last.string() + ".corrupt")) << "kept aside for a look";
    expect_equal_weights(fresh, ref_model);
    EXPECT_EQ(metric_rows(runs / "run"), ref_rows);
  }
}

TEST_F(Resume, AFinishedFitEndsAtOnceWithItsStopAndBestWeights) {
  const Problem p = problem();
  const fs::path runs = dir_ / "done";
  ts::Model m = model(1);
  auto o = options(runs, "none");
  o.train.max_epochs(30);
  o.stopping.patience = 1;
  o.stopping.min_delta = 0.02;  // a plateau within a few epochs
  ts::FitResult first = ts::session::make_trainer(o)->fit(m, p.train, p.val);
  ASSERT_EQ(first.stop_reason, ts::StopReason::kPatience);
  ts::Model fresh = model(99);
  ts::FitResult again = ts::session::make_trainer(o)->resume(fresh, p.train, p.val, runs / "run");
  EXPECT_EQ(again.stop_reason, ts::StopReason::kPatience);
  EXPECT_EQ(again.stop_message, first.stop_message);
  EXPECT_EQ(again.epochs, first.epochs);
  EXPECT_EQ(again.best_epoch, first.best_epoch);
  expect_equal_weights(fresh, m);  // the best epoch's, restored by early stopping
}

// A fit that dies before its first checkpoint (here in on_fit_start, before the checkpoint
// callback's fit-start save) has trained nothing: resume starts it over in the same run.
TEST_F(Resume, AFitThatDiedBeforeItsFirstCheckpointStartsOver) {
  class DieAtStart : public ts::Callback {
   public:
    std::string name() const override { return "die_at_start"; }
    void on_fit_start(ts::TrainState&) override { throw std::runtime_error("killed"); }
  };
  const Problem p = problem();
  auto [ref_model, ref_rows] = reference(p, "none");
  const fs::path runs = dir_ / "over";
  {
    ts::Model m = model(1);
    auto trainer_ptr = ts::session::make_trainer(options(runs, "none"));
    ts::Trainer& trainer = *trainer_ptr;
    trainer.add_callback(std::make_shared<DieAtStart>());
    EXPECT_THROW(trainer.fit(m, p.train, p.val), std::runtime_error);
  }
  ASSERT_TRUE(fs::is_empty(runs / "run" / "checkpoints"));
  ts::Model again = model(1);  // the user's model as the original fit began
  testing::internal::CaptureStderr();
  ts::FitResult fit =
      ts::session::make_trainer(options(runs, "none"))->resume(again, p.train, p.val, runs / "run");
  EXPECT_NE(testing::internal::GetCapturedStderr().find("the fit starts over"), std::string::npos);
  EXPECT_TRUE(fit.resumed_from.empty());
  expect_equal_weights(again, ref_model);
  EXPECT_EQ(metric_rows(runs / "run"), ref_rows);
}

// With weight averaging the model holds the average from each validation to the next epoch's
// start, so an epoch's checkpoint has the average as the model and the model's own weights aside:
// a resume from either side of an epoch's end continues both exactly.
TEST_F(Resume, AFitWithWeightAveragingResumesExactly) {
  const Problem p = problem();
  auto trainer_for = [&](const fs::path& runs) {
    auto o = options(runs, "none");
    o.ema = 0.9;
    return ts::session::make_trainer(o);
  };
  ts::Model ref = model(1);
  trainer_for(dir_ / "ref")->fit(ref, p.train, p.val);
  const auto ref_rows = metric_rows(dir_ / "ref" / "run");
  // 19 steps an epoch: in the first, just after the first epoch's end, mid-epoch 3.
  expect_resumes_exactly(p, dir_, "ema", {5, 20, 45}, model, trainer_for, ref, ref_rows);
}

// Inputs moved by noise from the fit's generator (tabular data has no image transforms).
class Noise : public ts::data::Transform {
 public:
  ts::data::Batch apply(ts::data::Batch batch, at::Generator& gen) const override {
    batch.x = batch.x + 0.3 * at::randn(batch.x.sizes(), gen, batch.x.options());
    return batch;
  }
  std::string describe() const override { return "noise"; }
};

// The Session's delayed augmentation (data.augment_from = auto) decides at an epoch's end when
// augmentation starts: a resume on either side of that decision augments the same batches.
TEST_F(Resume, AFitWithDelayedAugmentationResumesExactly) {
  const Problem p = problem();
  auto trainer_for = [&](const fs::path& runs) {
    auto o = options(runs, "none");
    o.train.augment(std::make_shared<Noise>());
    o.train.lr(1e-2).max_epochs(6);
    return ts::session::make_trainer(o);
  };
  ts::Model ref = model(1);
  trainer_for(dir_ / "ref")->fit(ref, p.train, p.val);
  const auto ref_rows = metric_rows(dir_ / "ref" / "run");
  ts::track::RunStore store(dir_ / "ref" / "run" / "run.sqlite",
                            ts::track::RunStore::Mode::kReadOnly);
  const auto started = store.meta("data.augment_started");
  ASSERT_TRUE(started.has_value()) << "the fit starts augmenting within its 6 epochs";
  EXPECT_EQ(started->rfind("augmentation from epoch 5:", 0), 0u) << *started;
  // 19 steps an epoch: in epoch 1, in epoch 4 before the decision at its end, in epoch 5 after.
  expect_resumes_exactly(p, dir_, "delayed", {5, 70, 80}, model, trainer_for, ref, ref_rows);
}

// A checkpoint written before delayed augmentation existed (augmenting from the start) resumes
// under data.augment_from = auto as it ran: augmented from the start, to the same weights.
TEST_F(Resume, ACheckpointFromBeforeDelayedAugmentationResumesAugmentingFromTheStart) {
  const Problem p = problem();
  auto trainer_for = [&](const fs::path& runs, int64_t augment_from) {
    auto o = options(runs, "none");
    o.train.augment(std::make_shared<Noise>());
    o.augment_from = augment_from;
    return ts::session::make_trainer(o);
  };
  ts::Model ref = model(1);
  trainer_for(dir_ / "ref", 1)->fit(ref, p.train, p.val);
  const fs::path runs = dir_ / "old";
  {
    ts::Model m = model(1);
    auto t = trainer_for(runs, 1);
    t->add_callback(std::make_shared<Crash>(30));
    EXPECT_THROW(t->fit(m, p.train, p.val), std::runtime_error);
  }
  ts::Model fresh = model(99);
  trainer_for(runs, 0)->resume(fresh, p.train, p.val, runs / "run");
  expect_equal_weights(fresh, ref);
}

// A fine-tuning fit that unfreezes its backbone at epoch 3 (a new optimizer group) and crashes
// before or after that resumes exactly: the groups come back before the optimizer's state.
TEST_F(Resume, AFineTuningFitResumesAcrossTheUnfreezing) {
  const Problem p = problem();
  auto tuned = [](uint64_t seed) {
    ts::Model m = model(seed);
    ts::models::freeze_backbone(m, ts::models::replace_head(m, 3));
    return m;
  };
  ts::callbacks::FineTuningOptions ft;
  ft.unfreeze_at_epoch = 3;
  auto trainer_for = [&](const fs::path& runs) {
    auto t = ts::session::make_trainer(options(runs, "cosine"));
    t->add_callback(std::make_shared<ts::callbacks::FineTuning>(ft, nullptr));
    return t;
  };
  ts::Model ref = tuned(1);
  trainer_for(dir_ / "ref")->fit(ref, p.train, p.val);
  const auto ref_rows = metric_rows(dir_ / "ref" / "run");
  // Epoch 2; epoch 3 after the unfreeze; epoch 4.
  expect_resumes_exactly(p, dir_, "ft", {30, 45, 60}, tuned, trainer_for, ref, ref_rows);
}

// The same when the head phase trains on cached features and the backbone warms up after the
// unfreezing, with the weights averaged as the default fine-tune does: the cache is rebuilt on
// resume from the restored backbone and changes no checkpointed state, and the warm-up and the
// average continue where they were.
TEST_F(Resume, AFineTuningFitOnCachedFeaturesResumesAcrossBothPhases) {
  const Problem p = problem();
  auto tuned = [](uint64_t seed) {
    ts::Model m = model(seed);
    ts::models::freeze_backbone(m, ts::models::replace_head(m, 3));
    return m;
  };
  ts::callbacks::FineTuningOptions ft;
  ft.unfreeze_at_epoch = 3;
  ft.lr = 5e-4;
  ft.warmup_steps = 10;
  auto trainer_for = [&](const fs::path& runs) {
    auto o = options(runs, "none");
    o.train.head("3").lr(1e-2);
    o.ema = 0.9;  // as the default fine-tune averages its weights
    auto t = ts::session::make_trainer(o);
    t->add_callback(std::make_shared<ts::callbacks::FineTuning>(ft, nullptr));
    return t;
  };
  ts::Model ref = tuned(1);
  const ts::FitResult fit = trainer_for(dir_ / "ref")->fit(ref, p.train, p.val);
  EXPECT_NE(fit.feature_cache.find("features cached"), std::string::npos) << fit.feature_cache;
  const auto ref_rows = metric_rows(dir_ / "ref" / "run");
  // 19 steps an epoch: epoch 2 on cached features; epoch 3 in the warm-up; epoch 4.
  expect_resumes_exactly(p, dir_, "cached", {25, 42, 65}, tuned, trainer_for, ref, ref_rows);
}

// A run trained without checkpoints has history and nothing to resume from: resume refuses
// rather than start it over and drop its rows.
TEST_F(Resume, WithoutCheckpointsARunWithHistoryIsNotWiped) {
  const Problem p = problem();
  const fs::path runs = dir_ / "nockpt";
  ts::Model m = model(1);
  auto o = options(runs, "none");
  o.checkpoints = false;
  ts::session::make_trainer(o)->fit(m, p.train, p.val);
  const auto rows = metric_rows(runs / "run");
  ASSERT_FALSE(rows.empty());
  ts::Model fresh = model(1);
  try {
    ts::session::make_trainer(o)->resume(fresh, p.train, p.val, runs / "run");
    FAIL() << "expected a CheckpointError";
  } catch (const ts::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("has no usable checkpoint"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(metric_rows(runs / "run"), rows) << "the history is intact";
}

TEST_F(Resume, ACheckpointThatDoesNotFitLeavesTheRunAsItWas) {
  const Problem p = problem();
  const fs::path runs = dir_ / "fits";
  ts::Model m = model(1);
  ts::session::make_trainer(options(runs, "none"))->fit(m, p.train, p.val);
  const auto rows = metric_rows(runs / "run");
  ts::track::RunStore before(runs / "run" / "run.sqlite", ts::track::RunStore::Mode::kReadOnly);
  const auto status = before.meta("status");
  auto bigger = options(runs, "none");
  bigger.train.batch_size(64);  // another number of batches per epoch
  ts::Model fresh = model(1);
  EXPECT_THROW(ts::session::make_trainer(bigger)->resume(fresh, p.train, p.val, runs / "run"),
               ts::ConfigError);
  EXPECT_EQ(metric_rows(runs / "run"), rows);
  EXPECT_EQ(before.meta("status"), status) << "not marked running or crashed";
}

TEST_F(Resume, ACheckpointOfAnotherModelIsAClearError) {
  const Problem p = problem();
  const fs::path runs = dir_ / "other";
  ts::Model m = model(1);
  ts::session::make_trainer(options(runs, "none"))->fit(m, p.train, p.val);
  ts::Model wider(torch::nn::Sequential(torch::nn::Linear(16, 64), torch::nn::ReLU(),
                                        torch::nn::Linear(64, 3)));
  try {
    ts::session::make_trainer(options(runs, "none"))->resume(wider, p.train, p.val, runs / "run");
    FAIL() << "expected a CheckpointError";
  } catch (const ts::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("holds the weights of another model"), std::string::npos)
        << e.what();
  }
}

}  // namespace

namespace {

// The first parameter group's lr and weight decay at each step after a resume.
class GroupOptions : public ts::Callback {
 public:
  std::string name() const override { return "group_options"; }
  void on_train_batch_start(ts::TrainState& s) override {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(
        s.optimizer->param_groups().front().options());
    lr.push_back(o.lr());
    weight_decay.push_back(o.weight_decay());
  }
  std::vector<double> lr, weight_decay;
};

}  // namespace

// A resume with another lr and weight decay (trainscope resume --set) applies them to the
// restored optimizer: the lr scales by the change, at every step without a schedule and at every
// step a cosine schedule sets (its position carries over); the weight decay is the new one. The
// same resume without the change keeps the checkpoint's.
TEST_F(Resume, ChangedLrAndWeightDecayApplyToTheRestoredOptimizer) {
  const Problem p = problem();
  auto resumed = [&](const std::string& name, const std::string& schedule, double lr,
                     double weight_decay) {
    const fs::path runs = dir_ / name;
    {
      ts::Model m = model(1);
      auto trainer = ts::session::make_trainer(options(runs, schedule));
      trainer->add_callback(std::make_shared<Crash>(30));
      EXPECT_THROW(trainer->fit(m, p.train, p.val), std::runtime_error);
    }
    auto o = options(runs, schedule);
    o.train.lr(lr).weight_decay(weight_decay);
    ts::Model fresh = model(99);
    auto trainer = ts::session::make_trainer(o);
    auto seen = std::make_shared<GroupOptions>();
    trainer->add_callback(seen);
    trainer->resume(fresh, p.train, p.val, runs / "run");
    return seen;
  };
  for (const std::string schedule : {"none", "cosine"}) {
    SCOPED_TRACE(schedule);
    const auto same = resumed(schedule + "-same", schedule, 1e-3, 0.0);
    const auto changed = resumed(schedule + "-changed", schedule, 1e-4, 0.01);
    ASSERT_FALSE(same->lr.empty());
    ASSERT_EQ(same->lr.size(), changed->lr.size());
    for (size_t i = 0; i < same->lr.size(); ++i) {
      EXPECT_NEAR(changed->lr[i] / same->lr[i], 0.1, 1e-9) << "step " << i << " after the resume";
      EXPECT_EQ(same->weight_decay[i], 0.0);
      EXPECT_EQ(changed->weight_decay[i], 0.01);
    }
    if (schedule == "cosine") EXPECT_LT(same->lr.back(), same->lr.front()) << "it goes on";
  }
}

// A resume with another train.seed from a checkpoint at an epoch's end (a fork that `diagnose
// --verify` replays on paired seeds) continues on another random stream: other weights than the
// same resume at the run's seed, and the same ones each time. Within an epoch the seed orders the
// epoch's batches, so there it is refused and the run is left as it was.
TEST_F(Resume, AnotherSeedTakesOverAtAnEpochsEndAndIsRefusedWithinOne) {
  const Problem p = problem();
  auto crashed = [&](const std::string& name, int64_t step) {
    const fs::path runs = dir_ / name;
    ts::Model m = model(1);
    auto trainer = ts::session::make_trainer(options(runs, "none"));
    trainer->add_callback(std::make_shared<Crash>(step));
    EXPECT_THROW(trainer->fit(m, p.train, p.val), std::runtime_error);
    return runs / "run";
  };
  auto resumed = [&](const fs::path& run, uint64_t seed) {
    auto o = options(run.parent_path(), "none");
    o.train.seed(seed);
    ts::Model fresh = model(99);
    ts::session::make_trainer(o)->resume(fresh, p.train, p.val, run);
    return fresh;
  };
  // 19 batches per epoch: the crash at step 20 leaves the checkpoint of epoch 1's end.
  const auto same = resumed(crashed("same", 20), 0);
  const auto other = resumed(crashed("other", 20), 5);
  const auto again = resumed(crashed("again", 20), 5);
  expect_equal_weights(other, again);
  auto a = same.snapshot(), b = other.snapshot();
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) differ = differ || !torch::equal(a[i], b[i]);
  EXPECT_TRUE(differ) << "another seed continues on another stream";
  // The crash at step 30 leaves the checkpoint of step 28, inside epoch 2.
  const fs::path mid = crashed("mid", 30);
  const auto rows = metric_rows(mid);
  try {
    resumed(mid, 5);
    FAIL() << "expected a ConfigError";
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(
        std::string(e.what()).find("in the middle of epoch 2 with train.seed 0, this fit has 5"),
        std::string::npos)
        << e.what();
  }
  EXPECT_EQ(metric_rows(mid), rows);
}
