// Table tests: a sequence of validation losses -> the epoch at which EarlyStopping stops.
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/models/model.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace ts = trainscope;

namespace {

struct Case {
  std::string name;
  std::vector<double> val_losses;
  int64_t patience;
  double min_delta;
  int64_t expected_stop_epoch;  // 0: never stops
  ts::StopReason expected_reason;
  int64_t expected_best_epoch;
};

// Runs the callback over the sequence the way the Trainer would; returns the stop epoch.
int64_t drive(ts::callbacks::EarlyStopping& es, ts::TrainState& state,
              const std::vector<double>& losses) {
  es.on_fit_start(state);
  for (size_t i = 0; i < losses.size(); ++i) {
    state.epoch = static_cast<int64_t>(i) + 1;
    state.val_metrics = {{"loss", losses[i]}};
    es.on_epoch_end(state);
    if (state.stop_requested()) return state.epoch;
  }
  return 0;
}

}  // namespace

TEST(EarlyStopping, StopEpochTable) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Case> cases = {
      {"improves every epoch", {1.0, 0.9, 0.8, 0.7, 0.6, 0.5}, 2, 0.0, 0, ts::StopReason::kNone, 6},
      {"plateau after epoch 2, patience 2",
       {1.0, 0.5, 0.6, 0.7, 0.4},
       2,
       0.0,
       4,
       ts::StopReason::kPatience,
       2},
      {"patience 5 default",
       {0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.1},
       5,
       0.0,
       6,
       ts::StopReason::kPatience,
       1},
      {"equal value is not an improvement",
       {0.5, 0.5, 0.5},
       2,
       0.0,
       3,
       ts::StopReason::kPatience,
       1},
      {"improvement resets the wait",
       {1.0, 1.1, 0.9, 1.0, 1.0},
       2,
       0.0,
       5,
       ts::StopReason::kPatience,
       3},
      {"below min_delta does not count",
       {1.0, 0.95, 0.92, 0.91},
       3,
       0.1,
       4,
       ts::StopReason::kPatience,
       1},
      {"above min_delta counts", {1.0, 0.85, 0.7, 0.55}, 2, 0.1, 0, ts::StopReason::kNone, 4},
      {"NaN stops at once", {1.0, nan, 0.5}, 5, 0.0, 2, ts::StopReason::kNonFinite, 1},
      {"patience 0 stops at first non-improvement",
       {1.0, 0.9, 0.95},
       0,
       0.0,
       3,
       ts::StopReason::kPatience,
       2},
  };
  for (const auto& c : cases) {
    ts::Model model(torch::nn::Linear(2, 1));
    ts::TrainState state;
    state.model = &model;
    ts::callbacks::EarlyStopping es({c.patience, c.min_delta, true});
    EXPECT_EQ(drive(es, state, c.val_losses), c.expected_stop_epoch) << c.name;
    EXPECT_EQ(state.stop_reason, c.expected_reason) << c.name;
    EXPECT_EQ(es.best_epoch(), c.expected_best_epoch) << c.name;
  }
}

TEST(EarlyStopping, MessageCarriesTheNumbers) {
  ts::Model model(torch::nn::Linear(2, 1));
  ts::TrainState state;
  state.model = &model;
  ts::callbacks::EarlyStopping es({2, 0.0, true});
  drive(es, state, {0.5, 0.4123, 0.6, 0.7});
  EXPECT_EQ(state.stop_message, "val_loss has not improved for 2 epochs (best 0.4123 at epoch 2)");
}

TEST(EarlyStopping, RestoresTheBestWeightsAtFitEnd) {
  ts::Model model(torch::nn::Linear(2, 1));
  ts::TrainState state;
  state.model = &model;
  ts::callbacks::EarlyStopping es({1, 0.0, true});
  es.on_fit_start(state);
  auto set_weights = [&](float v) {
    torch::NoGradGuard g;
    for (auto& p : model.parameters()) p.fill_(v);
  };
  set_weights(1.0f);
  state.epoch = 1;
  state.val_metrics = {{"loss", 0.3}};
  es.on_epoch_end(state);  // best: weights 1.0
  set_weights(2.0f);
  state.epoch = 2;
  state.val_metrics = {{"loss", 0.9}};
  es.on_epoch_end(state);
  ASSERT_EQ(state.stop_reason, ts::StopReason::kPatience);
  es.on_fit_end(state);
  for (const auto& p : model.parameters()) EXPECT_TRUE(torch::all(p == 1.0f).item<bool>());
}
