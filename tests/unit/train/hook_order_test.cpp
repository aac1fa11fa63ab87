// Pins the order of Callback hooks and of callbacks, and how stop requests end a fit.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

namespace ts = trainscope;

namespace {

class Recorder : public ts::Callback {
 public:
  Recorder(std::vector<std::string>* log, std::string tag = "",
           ts::CallbackOrder order = ts::CallbackOrder::kUser)
      : log_(log), tag_(std::move(tag)), order_(order) {}
  std::string name() const override { return "recorder" + tag_; }
  ts::CallbackOrder order() const override { return order_; }

  void on_fit_start(ts::TrainState&) override { add("fit_start"); }
  void on_fit_end(ts::TrainState& s) override {
    add("fit_end:" + std::string(ts::to_string(s.stop_reason)));
  }
  void on_epoch_start(ts::TrainState& s) override { add("epoch_start:" + std::to_string(s.epoch)); }
  void on_epoch_end(ts::TrainState& s) override { add("epoch_end:" + std::to_string(s.epoch)); }
  void on_train_batch_start(ts::TrainState& s) override {
    add("batch_start:" + std::to_string(s.batch_in_epoch));
  }
  void on_after_backward(ts::TrainState& s) override {
    // Gradients exist and the loss is set by now.
    bool has_grad = false;
    for (const auto& p : s.model->parameters()) has_grad |= p.grad().defined();
    add(std::string("after_backward") + (has_grad && s.loss.defined() ? "" : ":NO_GRAD"));
  }
  void on_before_optimizer_step(ts::TrainState&) override { add("before_optimizer_step"); }
  void on_train_batch_end(ts::TrainState& s) override {
    add("batch_end:" + std::to_string(s.global_step));
  }
  void on_validation_start(ts::TrainState&) override { add("validation_start"); }
  void on_validation_end(ts::TrainState& s) override {
    add(std::string("validation_end") + (s.val_metrics.count("loss") ? "" : ":NO_METRICS"));
  }
  void on_test_end(ts::TrainState&, const ts::EvalResult& r) override {
    add("test_end:" + r.split);
  }

 private:
  void add(const std::string& event) { log_->push_back(tag_.empty() ? event : tag_ + ":" + event); }
  std::vector<std::string>* log_;
  std::string tag_;
  ts::CallbackOrder order_;
};

class StopAt : public ts::Callback {
 public:
  explicit StopAt(int64_t epoch) : epoch_(epoch) {}
  std::string name() const override { return "stop_at"; }
  void on_epoch_end(ts::TrainState& s) override {
    if (s.epoch == epoch_)
      s.request_stop(ts::StopReason::kUserCallback, "asked at epoch " + std::to_string(epoch_));
    if (s.epoch == epoch_)
      s.request_stop(ts::StopReason::kPatience, "a second request must not win");
  }

 private:
  int64_t epoch_;
};

ts::TrainerOptions quiet(int64_t epochs) {
  return ts::TrainerOptions()
      .max_epochs(epochs)
      .batch_size(2)
      .runs_dir("");
}

std::shared_ptr<ts::data::TensorDataset> tiny(int64_t n) {
  torch::manual_seed(0);
  return std::make_shared<ts::data::TensorDataset>(torch::randn({n, 3}),
                                                   torch::randint(0, 2, {n}, torch::kInt64));
}

}  // namespace

TEST(HookOrder, FitValidateTestSequenceIsPinned) {
  std::vector<std::string> log;
  ts::Trainer trainer(quiet(2));
  trainer.add_callback(std::make_shared<Recorder>(&log));
  ts::Model model(torch::nn::Linear(3, 2));
  auto data = tiny(4);  // two batches of 2
  trainer.fit(model, data, data);
  trainer.test(model, *data);

  const std::vector<std::string> expected = {
      "fit_start",      "epoch_start:1",         "batch_start:0",
      "after_backward", "before_optimizer_step", "batch_end:1",
      "batch_start:1",  "after_backward",        "before_optimizer_step",
      "batch_end:2",    "validation_start",      "validation_end",
      "epoch_end:1",    "epoch_start:2",         "batch_start:0",
      "after_backward", "before_optimizer_step", "batch_end:3",
      "batch_start:1",  "after_backward",        "before_optimizer_step",
      "batch_end:4",    "validation_start",      "validation_end",
      "epoch_end:2",    "fit_end:max_epochs",    "test_end:test",
  };
  EXPECT_EQ(log, expected);
}

TEST(HookOrder, WithoutValidationSetNoValidationHooks) {
  std::vector<std::string> log;
  ts::Trainer trainer(quiet(1));
  trainer.add_callback(std::make_shared<Recorder>(&log));
  ts::Model model(torch::nn::Linear(3, 2));
  trainer.fit(model, tiny(2), nullptr);
  const std::vector<std::string> expected = {
      "fit_start",      "epoch_start:1",         "batch_start:0",
      "after_backward", "before_optimizer_step", "batch_end:1",
      "epoch_end:1",    "fit_end:max_epochs"};
  EXPECT_EQ(log, expected);
}

TEST(HookOrder, CallbacksRunInWrittenOrderWhateverTheInsertionOrder) {
  std::vector<std::string> log;
  ts::Trainer trainer(quiet(1));
  trainer.add_callback(
      std::make_shared<Recorder>(&log, "checkpoint", ts::CallbackOrder::kCheckpoint));
  trainer.add_callback(std::make_shared<Recorder>(&log, "user1", ts::CallbackOrder::kUser));
  trainer.add_callback(
      std::make_shared<Recorder>(&log, "early", ts::CallbackOrder::kEarlyStopping));
  trainer.add_callback(std::make_shared<Recorder>(&log, "logging", ts::CallbackOrder::kLogging));
  trainer.add_callback(std::make_shared<Recorder>(&log, "diag", ts::CallbackOrder::kDiagnostics));
  trainer.add_callback(std::make_shared<Recorder>(&log, "user2", ts::CallbackOrder::kUser));
  ts::Model model(torch::nn::Linear(3, 2));
  trainer.fit(model, tiny(2), nullptr);
  std::vector<std::string> starts;
  for (const auto& e : log)
    if (e.find(":fit_start") != std::string::npos) starts.push_back(e);
  EXPECT_EQ(starts, (std::vector<std::string>{"logging:fit_start", "diag:fit_start",
                                              "user1:fit_start", "user2:fit_start",
                                              "early:fit_start", "checkpoint:fit_start"}));
}

TEST(StopRequest, FirstRequestWinsAndEndsFitAfterThatEpoch) {
  std::vector<std::string> log;
  ts::Trainer trainer(quiet(10));
  trainer.add_callback(std::make_shared<StopAt>(3));
  trainer.add_callback(std::make_shared<Recorder>(&log));
  ts::Model model(torch::nn::Linear(3, 2));
  ts::FitResult r = trainer.fit(model, tiny(4), tiny(4));
  EXPECT_EQ(r.stop_reason, ts::StopReason::kUserCallback);
  EXPECT_EQ(r.stop_message, "asked at epoch 3");
  EXPECT_EQ(r.epochs, 3);
  EXPECT_EQ(log.back(), "fit_end:callback");
}

TEST(StopRequest, ExceptionInHookReachesOnExceptionAndPropagates) {
  struct Thrower : ts::Callback {
    std::string name() const override { return "thrower"; }
    void on_after_backward(ts::TrainState&) override { throw std::runtime_error("boom"); }
  };
  struct Watcher : ts::Callback {
    bool saw = false;
    ts::StopReason reason = ts::StopReason::kNone;
    std::string name() const override { return "watcher"; }
    void on_exception(ts::TrainState& s, const std::exception_ptr& e) override {
      saw = e != nullptr;
      reason = s.stop_reason;
    }
  };
  ts::Trainer trainer(quiet(1));
  auto watcher = std::make_shared<Watcher>();
  trainer.add_callback(std::make_shared<Thrower>());
  trainer.add_callback(watcher);
  ts::Model model(torch::nn::Linear(3, 2));
  EXPECT_THROW(trainer.fit(model, tiny(2), nullptr), std::runtime_error);
  EXPECT_TRUE(watcher->saw);
  EXPECT_EQ(watcher->reason, ts::StopReason::kException);
}
