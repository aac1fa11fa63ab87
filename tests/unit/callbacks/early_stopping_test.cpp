// Table tests: a sequence of monitored values -> the epoch at which EarlyStopping stops, why, and
// which epoch it keeps as the best.
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>

#include <gtest/gtest.h>

#include "../round_trip.h"

#include <cmath>
#include <limits>

namespace ts = trainscope;

namespace {

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

struct Case {
  std::string name;
  std::vector<double> values;
  ts::callbacks::EarlyStoppingOptions options;
  int64_t expected_stop_epoch;  // 0: never stops
  ts::StopReason expected_reason;
  int64_t expected_best_epoch;
};

ts::callbacks::EarlyStoppingOptions opts(int64_t patience, double min_delta = 0.0) {
  ts::callbacks::EarlyStoppingOptions o;
  o.patience = patience;
  o.min_delta = min_delta;
  return o;
}

// Feeds `values` as the monitored metric the way the Trainer would; returns the stop epoch.
int64_t drive(ts::callbacks::EarlyStopping& es, ts::TrainState& state,
              const std::vector<double>& values, const std::string& monitor = "val_loss") {
  es.on_fit_start(state);
  const std::string split = monitor.substr(0, monitor.find('_'));
  const std::string tag = monitor.substr(monitor.find('_') + 1);
  for (size_t i = 0; i < values.size(); ++i) {
    state.epoch = static_cast<int64_t>(i) + 1;
    (split == "val" ? state.val_metrics : state.train_metrics) = {{tag, values[i]}};
    es.on_epoch_end(state);
    if (state.stop_requested()) return state.epoch;
  }
  return 0;
}

}  // namespace

TEST(EarlyStopping, StopEpochTable) {
  auto with = [](ts::callbacks::EarlyStoppingOptions o, auto change) {
    change(o);
    return o;
  };
  using O = ts::callbacks::EarlyStoppingOptions;
  const std::vector<Case> cases = {
      {"improves every epoch",
       {1.0, 0.9, 0.8, 0.7, 0.6, 0.5},
       opts(2),
       0,
       ts::StopReason::kNone,
       6},
      {"plateau after epoch 2, patience 2",
       {1.0, 0.5, 0.6, 0.7, 0.4},
       opts(2),
       4,
       ts::StopReason::kPatience,
       2},
      {"patience 5 default",
       {0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.1},
       opts(5),
       6,
       ts::StopReason::kPatience,
       1},
      {"equal value is not an improvement",
       {0.5, 0.5, 0.5},
       opts(2),
       3,
       ts::StopReason::kPatience,
       1},
      {"improvement resets the wait",
       {1.0, 1.1, 0.9, 1.0, 1.0},
       opts(2),
       5,
       ts::StopReason::kPatience,
       3},
      {"below min_delta does not count",
       {1.0, 0.95, 0.92, 0.91},
       opts(3, 0.1),
       4,
       ts::StopReason::kPatience,
       1},
      {"above min_delta counts", {1.0, 0.85, 0.7, 0.55}, opts(2, 0.1), 0, ts::StopReason::kNone, 4},
      {"NaN stops at once", {1.0, kNan, 0.5}, opts(5), 2, ts::StopReason::kNonFinite, 1},
      {"Inf stops at once", {1.0, kInf}, opts(5), 2, ts::StopReason::kNonFinite, 1},
      {"check_finite off ignores NaN",
       {1.0, kNan, 0.5},
       with(opts(5), [](O& o) { o.check_finite = false; }),
       0,
       ts::StopReason::kNone,
       3},
      {"patience 0 stops at first non-improvement",
       {1.0, 0.9, 0.95},
       opts(0),
       3,
       ts::StopReason::kPatience,
       2},
      {"mode max on accuracy",
       {0.70, 0.80, 0.79, 0.78},
       with(opts(2), [](O& o) { o.monitor = "val_accuracy"; }),
       4,
       ts::StopReason::kPatience,
       2},
      {"explicit mode max",
       {0.1, 0.3, 0.2},
       with(opts(1), [](O& o) { o.mode = "max"; }),
       3,
       ts::StopReason::kPatience,
       2},
      {"baseline never beaten stops after patience",
       {0.9, 0.8, 0.7},
       with(opts(3), [](O& o) { o.baseline = 0.5; }),
       3,
       ts::StopReason::kPatience,
       3},
      {"baseline beaten trains on",
       {0.9, 0.4, 0.3, 0.2},
       with(opts(2), [](O& o) { o.baseline = 0.5; }),
       0,
       ts::StopReason::kNone,
       4},
      {"start_from_epoch ignores warm-up epochs",
       {0.2, 0.9, 0.8, 0.85, 0.9},
       with(opts(2), [](O& o) { o.start_from_epoch = 1; }),
       5,
       ts::StopReason::kPatience,
       3},
      {"stopping_threshold ends at once",
       {1.0, 0.5, 0.09, 0.05},
       with(opts(5), [](O& o) { o.stopping_threshold = 0.1; }),
       3,
       ts::StopReason::kThreshold,
       3},
      {"stopping_threshold on accuracy",
       {0.5, 0.91, 0.99},
       with(opts(5),
            [](O& o) {
              o.monitor = "val_accuracy";
              o.stopping_threshold = 0.9;
            }),
       2,
       ts::StopReason::kThreshold,
       2},
      {"divergence_threshold ends at once",
       {1.0, 2.0, 11.0, 0.5},
       with(opts(5), [](O& o) { o.divergence_threshold = 10.0; }),
       3,
       ts::StopReason::kDivergence,
       1},
      {"train_loss monitor",
       {1.0, 1.2, 1.3},
       with(opts(2), [](O& o) { o.monitor = "train_loss"; }),
       3,
       ts::StopReason::kPatience,
       1},
  };
  for (const auto& c : cases) {
    ts::Model model(torch::nn::Linear(2, 1));
    ts::TrainState state;
    state.model = &model;
    ts::callbacks::EarlyStopping es(c.options);
    EXPECT_EQ(drive(es, state, c.values, c.options.monitor), c.expected_stop_epoch) << c.name;
    EXPECT_EQ(state.stop_reason, c.expected_reason) << c.name << ": " << state.stop_message;
    EXPECT_EQ(es.best_epoch(), c.expected_best_epoch) << c.name;
  }
}

TEST(EarlyStopping, MessagesCarryTheNumbers) {
  ts::Model model(torch::nn::Linear(2, 1));
  {
    ts::TrainState state;
    state.model = &model;
    ts::callbacks::EarlyStopping es(opts(2));
    drive(es, state, {0.5, 0.4123, 0.6, 0.7});
    EXPECT_EQ(state.stop_message,
              "val_loss has not improved for 2 epochs (best 0.4123 at epoch 2)");
  }
  {
    ts::TrainState state;
    state.model = &model;
    auto o = opts(2);
    o.baseline = 0.3;
    ts::callbacks::EarlyStopping es(o);
    drive(es, state, {0.5, 0.45});
    EXPECT_EQ(state.stop_message,
              "val_loss has not beaten the baseline 0.3000 in 2 epochs (best 0.4500 at epoch 2)");
  }
  {
    ts::TrainState state;
    state.model = &model;
    auto o = opts(5);
    o.divergence_threshold = 3.0;
    ts::callbacks::EarlyStopping es(o);
    drive(es, state, {1.0, 4.5});
    EXPECT_EQ(state.stop_message,
              "val_loss = 4.5000 at epoch 2 is worse than divergence_threshold 3.0000");
  }
}

TEST(EarlyStopping, UnknownMonitorOrModeIsAConfigError) {
  auto o = opts(2);
  o.monitor = "accuracy";
  EXPECT_THROW(ts::callbacks::EarlyStopping{o}, ts::ConfigError);
  o.monitor = "val_loss";
  o.mode = "lowest";
  EXPECT_THROW(ts::callbacks::EarlyStopping{o}, ts::ConfigError);
}

namespace {

void set_weights(ts::Model& model, float v) {
  torch::NoGradGuard g;
  for (auto& p : model.parameters()) p.fill_(v);
}

bool all_weights(const ts::Model& model, float v) {
  for (const auto& p : model.parameters())
    if (!torch::all(p == v).item<bool>()) return false;
  return true;
}

}  // namespace

TEST(EarlyStopping, RestoresTheBestWeightsAtFitEnd) {
  ts::Model model(torch::nn::Linear(2, 1));
  ts::TrainState state;
  state.model = &model;
  ts::callbacks::EarlyStopping es(opts(1));
  es.on_fit_start(state);
  set_weights(model, 1.0f);
  state.epoch = 1;
  state.val_metrics = {{"loss", 0.3}};
  es.on_epoch_end(state);  // best: weights 1.0
  set_weights(model, 2.0f);
  state.epoch = 2;
  state.val_metrics = {{"loss", 0.9}};
  es.on_epoch_end(state);
  ASSERT_EQ(state.stop_reason, ts::StopReason::kPatience);
  es.on_fit_end(state);
  EXPECT_TRUE(all_weights(model, 1.0f));
}

TEST(EarlyStopping, RestoresTheBestWeightsWhenAnExceptionEndsTheFit) {
  ts::Model model(torch::nn::Linear(2, 1));
  ts::TrainState state;
  state.model = &model;
  ts::callbacks::EarlyStopping es(opts(5));
  es.on_fit_start(state);
  set_weights(model, 1.0f);
  state.epoch = 1;
  state.val_metrics = {{"loss", 0.3}};
  es.on_epoch_end(state);
  set_weights(model, 7.0f);
  es.on_exception(state, std::make_exception_ptr(std::runtime_error("boom")));
  EXPECT_TRUE(all_weights(model, 1.0f));
}

// The counters and the best weights go through a checkpoint: a restored callback stops at the
// epoch the uninterrupted one would, and restores the same weights.
TEST(EarlyStopping, CheckpointedStateContinuesTheCount) {
  const std::vector<double> values = {0.5, 0.4, 0.45, 0.5, 0.6, 0.7};
  for (bool best_is_model : {true, false}) {
    SCOPED_TRACE(best_is_model ? "best weights are the model's" : "best weights differ");
    ts::Model model(torch::nn::Linear(2, 1));
    ts::TrainState state;
    state.model = &model;
    ts::callbacks::EarlyStopping es(opts(3));
    es.on_fit_start(state);
    for (int64_t e = 1; e <= 2; ++e) {  // best at epoch 2, weights 2.0
      set_weights(model, float(e));
      state.epoch = e;
      state.val_metrics = {{"loss", values[e - 1]}};
      es.on_epoch_end(state);
    }
    if (!best_is_model) set_weights(model, 9.0f);
    torch::serialize::OutputArchive out;
    es.on_checkpoint_save(state, out);
    auto in = trainscope::testing::round_trip(out);
    ts::callbacks::EarlyStopping resumed(opts(3));
    ts::TrainState rs;
    rs.model = &model;
    resumed.on_fit_start(rs);
    resumed.on_checkpoint_load(rs, in);
    EXPECT_EQ(resumed.best_epoch(), 2);
    int64_t stop = 0;
    for (int64_t e = 3; e <= 6 && !stop; ++e) {
      rs.epoch = e;
      rs.val_metrics = {{"loss", values[e - 1]}};
      set_weights(model, float(10 + e));
      resumed.on_epoch_end(rs);
      if (rs.stop_requested()) stop = e;
    }
    EXPECT_EQ(stop, 5);
    resumed.on_fit_end(rs);
    EXPECT_TRUE(all_weights(model, 2.0f));
  }
}
