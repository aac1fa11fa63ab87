// Real (small) training runs built to show each problem; healthy controls must stay quiet.
#include "diagnose_scenarios.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

namespace sc = trainscope::scenarios;

class DiagnoseScenario : public ::testing::TestWithParam<int> {};

TEST_P(DiagnoseScenario, DetectsItsProblemAndNothingElseOnControls) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto scenario = sc::all().at(GetParam());
  sc::Scale scale;  // small: 2,000 examples, 6 epochs
  auto r = sc::run(scenario, scale);
  std::string found;
  for (const auto& w : r.warnings) found += w + " ";
  if (scenario.expected.empty())
    EXPECT_TRUE(r.warnings.empty()) << scenario.name << ": false positives: " << found;
  else
    EXPECT_TRUE(r.detected) << scenario.name << ": expected " << scenario.expected << ", found: " << found;
  std::printf("%s: %s (%s) in %.1f s\n", scenario.name.c_str(), r.detected ? "ok" : "MISSED", found.c_str(), r.seconds);
}

INSTANTIATE_TEST_SUITE_P(All, DiagnoseScenario, ::testing::Range(0, static_cast<int>(sc::all().size())));

TEST(AutoRemedy, OverfittingRunIsStoppedAndTheRemedyRecorded) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto all = sc::all();
  auto scenario = *std::find_if(all.begin(), all.end(), [](const auto& s) { return s.expected == "overfitting"; });
  auto base = scenario.options;
  scenario.options = [base](trainscope::TrainerOptions& o) {
    base(o);
    o.auto_remedy(true);
  };
  sc::Scale scale;
  auto r = sc::run(scenario, scale);
  ASSERT_TRUE(r.detected);
  EXPECT_LT(r.first_epoch, scale.epochs * scenario.epoch_factor);
  EXPECT_EQ(r.stop_reason, trainscope::StopReason::kDiagnosis);
  EXPECT_EQ(r.epochs, r.first_epoch) << "the run stops at the end of the epoch that showed it";
  ASSERT_FALSE(r.remedies.empty());
  EXPECT_NE(r.remedies[0].find("auto-remedy for overfitting: stopped the run"), std::string::npos) << r.remedies[0];
}

TEST(AutoRemedy, ExplodingGradientsAreClipped) {
  // A deep MLP with large weights, SGD at a moderate lr: gradients explode without NaN.
  sc::Scenario s{"explosion, clipped", "exploding_gradients",
                 [] { return sc::sequential_mlp(std::vector<int64_t>(8, 256), "relu", 0.0, 2.0); },
                 [](trainscope::data::IdxOptions&) {},
                 [](trainscope::TrainerOptions& o) { o.optimizer("sgd").lr(0.01).auto_remedy(true); }};
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  sc::Scale scale;
  auto r = sc::run(s, scale);
  std::string all;
  for (const auto& w : r.warnings) all += w + " ";
  if (!r.detected) GTEST_SKIP() << "this setup did not explode here: " << all;
  ASSERT_FALSE(r.remedies.empty()) << all;
  EXPECT_NE(r.remedies[0].find("clipping gradients at norm 1"), std::string::npos) << r.remedies[0];
}
