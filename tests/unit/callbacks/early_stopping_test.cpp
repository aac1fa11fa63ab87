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
  int64_t expected_best_epoch;       // TrainState::best: the lowest (highest) value
  int64_t expected_reference_epoch;  // where patience counts from (min_delta, warm-up)
  std::string monitor = "val_loss";
  std::string mode = "auto";
};

ts::callbacks::EarlyStoppingOptions opts(int64_t patience, double min_delta = 0.0) {
  ts::callbacks::EarlyStoppingOptions o;
  o.patience = patience;
  o.min_delta = min_delta;
  return o;
}

// The fit's monitor, as the Trainer sets it at fit start.
void watch(ts::TrainState& state, const std::string& monitor = "val_loss",
           const std::string& mode = "auto") {
  state.monitor = ts::Monitor::parse(monitor, mode);
  state.best = {};
  state.best.by = state.monitor;
}

// One epoch's end the way the Trainer runs it: the metric, the best so far, then the callback.
void epoch_end(ts::callbacks::EarlyStopping& es, ts::TrainState& state, int64_t epoch,
               double value) {
  state.epoch = epoch;
  (state.monitor.split == "val" ? state.val_metrics
                                : state.train_metrics) = {{state.monitor.tag, value}};
  ts::update_best(state);
  es.on_epoch_end(state);
}

// Feeds `values` as the monitored metric; returns the stop epoch.
int64_t drive(ts::callbacks::EarlyStopping& es, ts::TrainState& state,
              const std::vector<double>& values, const std::string& monitor = "val_loss",
              const std::string& mode = "auto") {
  watch(state, monitor, mode);
  es.on_fit_start(state);
  for (size_t i = 0; i < values.size(); ++i) {
    epoch_end(es, state, static_cast<int64_t>(i) + 1, values[i]);
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
       6,
       6},
      {"plateau after epoch 2, patience 2",
       {1.0, 0.5, 0.6, 0.7, 0.4},
       opts(2),
       4,
       ts::StopReason::kPatience,
       2,
       2},
      {"patience 5 default",
       {0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.1},
       opts(5),
       6,
       ts::StopReason::kPatience,
       1,
       1},
      {"equal value is not an improvement",
       {0.5, 0.5, 0.5},
       opts(2),
       3,
       ts::StopReason::kPatience,
       1,
       1},
      {"improvement resets the wait",
       {1.0, 1.1, 0.9, 1.0, 1.0},
       opts(2),
       5,
       ts::StopReason::kPatience,
       3,
       3},
      // min_delta governs patience only: the best epoch is still the lowest value.
      {"below min_delta does not count",
       {1.0, 0.95, 0.92, 0.91},
       opts(3, 0.1),
       4,
       ts::StopReason::kPatience,
       4,
       1},
      {"above min_delta counts",
       {1.0, 0.85, 0.7, 0.55},
       opts(2, 0.1),
       0,
       ts::StopReason::kNone,
       4,
       4},
      {"NaN stops at once", {1.0, kNan, 0.5}, opts(5), 2, ts::StopReason::kNonFinite, 1, 1},
      {"Inf stops at once", {1.0, kInf}, opts(5), 2, ts::StopReason::kNonFinite, 1, 1},
      {"check_finite off ignores NaN",
       {1.0, kNan, 0.5},
       with(opts(5), [](O& o) { o.check_finite = false; }),
       0,
       ts::StopReason::kNone,
       3,
       3},
      {"patience 0 stops at first non-improvement",
       {1.0, 0.9, 0.95},
       opts(0),
       3,
       ts::StopReason::kPatience,
       2,
       2},
      {"mode max on accuracy",
       {0.70, 0.80, 0.79, 0.78},
       opts(2),
       4,
       ts::StopReason::kPatience,
       2,
       2,
       "val_accuracy"},
      {"explicit mode max",
       {0.1, 0.3, 0.2},
       opts(1),
       3,
       ts::StopReason::kPatience,
       2,
       2,
       "val_loss",
       "max"},
      {"baseline never beaten stops after patience",
       {0.9, 0.8, 0.7},
       with(opts(3), [](O& o) { o.baseline = 0.5; }),
       3,
       ts::StopReason::kPatience,
       3,
       3},
      {"baseline beaten trains on",
       {0.9, 0.4, 0.3, 0.2},
       with(opts(2), [](O& o) { o.baseline = 0.5; }),
       0,
       ts::StopReason::kNone,
       4,
       4},
      // Warm-up epochs do not count for patience; the best epoch may still be one of them.
      {"start_from_epoch ignores warm-up epochs",
       {0.2, 0.9, 0.8, 0.85, 0.9},
       with(opts(2), [](O& o) { o.start_from_epoch = 1; }),
       5,
       ts::StopReason::kPatience,
       1,
       3},
      {"stopping_threshold ends at once",
       {1.0, 0.5, 0.09, 0.05},
       with(opts(5), [](O& o) { o.stopping_threshold = 0.1; }),
       3,
       ts::StopReason::kThreshold,
       3,
       3},
      {"stopping_threshold on accuracy",
       {0.5, 0.91, 0.99},
       with(opts(5), [](O& o) { o.stopping_threshold = 0.9; }),
       2,
       ts::StopReason::kThreshold,
       2,
       2,
       "val_accuracy"},
      {"divergence_threshold ends at once",
       {1.0, 2.0, 11.0, 0.5},
       with(opts(5), [](O& o) { o.divergence_threshold = 10.0; }),
       3,
       ts::StopReason::kDivergence,
       1,
       1},
      {"train_loss monitor",
       {1.0, 1.2, 1.3},
       opts(2),
       3,
       ts::StopReason::kPatience,
       1,
       1,
       "train_loss"},
  };
  for (const auto& c : cases) {
    ts::Model model(torch::nn::Linear(2, 1));
    ts::TrainState state;
    state.model = &model;
    ts::callbacks::EarlyStopping es(c.options);
    EXPECT_EQ(drive(es, state, c.values, c.monitor, c.mode), c.expected_stop_epoch) << c.name;
    EXPECT_EQ(state.stop_reason, c.expected_reason) << c.name << ": " << state.stop_message;
    EXPECT_EQ(state.best.epoch, c.expected_best_epoch) << c.name;
    EXPECT_EQ(es.reference_epoch(), c.expected_reference_epoch) << c.name;
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

TEST(EarlyStopping, UnknownMonitorModeOrPatienceIsAConfigError) {
  EXPECT_THROW(ts::Monitor::parse("accuracy"), ts::ConfigError);
  EXPECT_THROW(ts::Monitor::parse("val_loss", "lowest"), ts::ConfigError);
  EXPECT_THROW(ts::callbacks::EarlyStopping{opts(-1)}, ts::ConfigError);
}

TEST(EarlyStopping, IsOffWhenTheFitRanksByAnotherSplit) {
  // No validation set: the fit ranks by train_loss, early stopping watches val_loss and stays off.
  ts::Model model(torch::nn::Linear(2, 1));
  ts::TrainState state;
  state.model = &model;
  watch(state);
  state.best.by = state.monitor.of_split("train");
  ts::callbacks::EarlyStopping es(opts(0));
  es.on_fit_start(state);
  for (int64_t e = 1; e <= 3; ++e) {
    state.epoch = e;
    state.train_metrics = {{"loss", 1.0 + e}};
    ts::update_best(state);
    es.on_epoch_end(state);
  }
  EXPECT_FALSE(state.stop_requested());
  EXPECT_EQ(state.best.epoch, 1) << "the best is still kept, by train_loss";
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
  watch(state);
  es.on_fit_start(state);
  set_weights(model, 1.0f);
  epoch_end(es, state, 1, 0.3);  // best: weights 1.0
  set_weights(model, 2.0f);
  epoch_end(es, state, 2, 0.9);
  ASSERT_EQ(state.stop_reason, ts::StopReason::kPatience);
  es.on_fit_end(state);
  EXPECT_TRUE(all_weights(model, 1.0f));
}

TEST(EarlyStopping, RestoresTheBestWeightsWhenAnExceptionEndsTheFit) {
  ts::Model model(torch::nn::Linear(2, 1));
  ts::TrainState state;
  state.model = &model;
  ts::callbacks::EarlyStopping es(opts(5));
  watch(state);
  es.on_fit_start(state);
  set_weights(model, 1.0f);
  epoch_end(es, state, 1, 0.3);
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
    watch(state);
    es.on_fit_start(state);
    for (int64_t e = 1; e <= 2; ++e) {  // best at epoch 2, weights 2.0
      set_weights(model, float(e));
      epoch_end(es, state, e, values[e - 1]);
    }
    if (!best_is_model) set_weights(model, 9.0f);
    torch::serialize::OutputArchive out;
    es.on_checkpoint_save(state, out);
    auto in = trainscope::testing::round_trip(out);
    ts::callbacks::EarlyStopping resumed(opts(3));
    ts::TrainState rs;
    rs.model = &model;
    watch(rs);
    rs.best = state.best;  // the Trainer restores the best from the checkpoint's counters
    resumed.on_fit_start(rs);
    resumed.on_checkpoint_load(rs, in);
    EXPECT_EQ(resumed.reference_epoch(), 2);
    int64_t stop = 0;
    for (int64_t e = 3; e <= 6 && !stop; ++e) {
      set_weights(model, float(10 + e));
      epoch_end(resumed, rs, e, values[e - 1]);
      if (rs.stop_requested()) stop = e;
    }
    EXPECT_EQ(stop, 5);
    resumed.on_fit_end(rs);
    EXPECT_TRUE(all_weights(model, 2.0f));
  }
}
