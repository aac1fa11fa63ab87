// Real (small) training runs built to show each problem; healthy controls must stay quiet.
#include "diagnose_scenarios.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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
    EXPECT_TRUE(r.detected) << scenario.name << ": expected " << scenario.expected
                            << ", found: " << found;
  for (const auto& problem : r.remedy_problems) ADD_FAILURE() << scenario.name << ": " << problem;
  std::printf("%s: %s (%s) in %.1f s\n", scenario.name.c_str(), r.detected ? "ok" : "MISSED",
              found.c_str(), r.seconds);
}

INSTANTIATE_TEST_SUITE_P(All, DiagnoseScenario,
                         ::testing::Range(0, static_cast<int>(sc::all().size())));

TEST(AutoRemedy, OverfittingRunIsStoppedAndTheRemedyRecorded) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto all = sc::all();
  auto scenario = *std::find_if(all.begin(), all.end(),
                                [](const auto& s) { return s.expected == "overfitting"; });
  auto base = scenario.options;
  scenario.options = [base](trainscope::SessionOptions& o) {
    base(o);
    o.diagnose.auto_remedy = true;
  };
  sc::Scale scale;
  auto r = sc::run(scenario, scale);
  ASSERT_TRUE(r.detected);
  EXPECT_LT(r.first_epoch, scale.epochs * scenario.epoch_factor);
  EXPECT_EQ(r.stop_reason, trainscope::StopReason::kDiagnosis);
  EXPECT_EQ(r.epochs, r.first_epoch) << "the run stops at the end of the epoch that showed it";
  ASSERT_FALSE(r.remedies.empty());
  EXPECT_NE(r.remedies[0].find("auto-remedy for overfitting: stopped the run"), std::string::npos)
      << r.remedies[0];
}

TEST(AutoRemedy, ExplodingGradientsAreClippedFromTheNextStepOn) {
  namespace dg = trainscope::diagnose;
  // A detector that reports explosion at its first logging step, so the remedy's mechanics are
  // tested apart from what makes a run explode.
  struct Exploding : dg::Detector {
    std::string kind() const override { return "exploding_gradients"; }
    std::optional<dg::Finding> on_step(const dg::StepSignals& s) override {
      return dg::Finding{kind(), dg::Severity::kError, s.step, s.epoch, "test", {}, "clip"};
    }
  };
  // Runs after Diagnostics (kUser > kDiagnostics): sees the gradients the optimizer will use.
  struct GradNorms : trainscope::Callback {
    std::vector<double> norms;
    std::string name() const override { return "grad_norms"; }
    void on_before_optimizer_step(trainscope::TrainState& s) override {
      double sq = 0;
      for (const auto& p : s.model->parameters()) sq += p.grad().pow(2).sum().item<double>();
      norms.push_back(std::sqrt(sq));
    }
  };
  std::vector<std::unique_ptr<dg::Detector>> detectors;
  detectors.push_back(std::make_unique<Exploding>());
  dg::DiagnosticsOptions o;
  o.every = 2;
  o.auto_remedy = true;
  o.print = false;
  auto diagnostics = std::make_shared<dg::Diagnostics>(o, std::move(detectors));
  auto norms = std::make_shared<GradNorms>();
  torch::manual_seed(0);
  // Targets 100x the inputs: gradients far above norm 1.
  auto x = torch::randn({128, 4});
  auto data = std::make_shared<trainscope::data::TensorDataset>(x, x.sum(1, true) * 100);
  trainscope::Model model(torch::nn::Linear(4, 1));
  trainscope::TrainerOptions regression;
  trainscope::Trainer reg(
      regression.task(trainscope::Task::kRegression).max_epochs(1).batch_size(16).runs_dir(""));
  reg.add_callback(diagnostics);
  reg.add_callback(norms);
  reg.fit(model, data, nullptr);
  ASSERT_EQ(norms->norms.size(), 8u);
  EXPECT_GT(norms->norms[0], 10.0) << "unclipped before the finding";
  EXPECT_GT(norms->norms[1], 10.0) << "the finding comes at the end of step 2";
  for (size_t i = 2; i < norms->norms.size(); ++i)
    EXPECT_LE(norms->norms[i], 1.0 + 1e-4) << "step " << i + 1;
  bool recorded = false;
  for (const auto& f : diagnostics->findings())
    recorded |= f.kind == "remedy" &&
                f.message.find("clipping gradients at norm 1 from step 3") != std::string::npos;
  EXPECT_TRUE(recorded);
}
