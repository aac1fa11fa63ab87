// Real (small) training runs built to show each problem; healthy controls must stay quiet.
#include "diagnose_scenarios.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

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

// Regression outputs through a sigmoid or a ReLU cannot reach targets above 1 or below 0; a
// linear output on the same data raises nothing of the kind.
TEST(DiagnoseRegression, OutputsThatCannotReachTheTargetsAreFound) {
  namespace dg = trainscope::diagnose;
  namespace nn = torch::nn;
  torch::manual_seed(0);
  auto x = torch::randn({2048, 8});
  auto y = x.matmul(torch::linspace(-1, 1, 8).unsqueeze(1)) * 2;  // standardized-like: -6..6
  // `hidden`: the net inside a module of another kind, so that only its outputs tell.
  auto kinds = [&](const std::string& last, const torch::Tensor& targets, bool hidden = false,
                   int64_t epochs = 3) {
    auto set = std::make_shared<trainscope::data::TensorDataset>(x, targets);
    torch::manual_seed(1);
    nn::Sequential net(nn::Linear(8, 32), nn::ReLU(), nn::Linear(32, 1));
    if (last == "sigmoid") net->push_back(nn::Sigmoid());
    if (last == "relu") net->push_back(nn::ReLU());
    struct Wrapper : nn::Module {};
    auto wrapper = std::make_shared<Wrapper>();
    wrapper->register_module("net", net);
    trainscope::Model model =
        hidden ? trainscope::Model(
                     wrapper, [net](const torch::Tensor& in) mutable { return net->forward(in); })
               : trainscope::Model(net);
    dg::DiagnosticsOptions o;
    o.every = 5;
    o.print = false;
    auto diagnostics = std::make_shared<dg::Diagnostics>(o);
    trainscope::TrainerOptions t;
    trainscope::Trainer trainer(
        t.task(trainscope::Task::kRegression).max_epochs(epochs).batch_size(64).runs_dir(""));
    trainer.add_callback(diagnostics);
    trainer.fit(model, set, nullptr);
    std::set<std::string> found;
    for (const auto& f : diagnostics->findings()) {
      found.insert(f.kind);
      if (f.kind == "unreachable_targets")
        std::printf("%s%s: epoch %lld of %lld: %s\n", last.c_str(), hidden ? " (hidden)" : "",
                    (long long)f.epoch, (long long)epochs, f.message.c_str());
    }
    return found;
  };
  EXPECT_TRUE(kinds("sigmoid", y + 5).count("unreachable_targets")) << "targets -1..11";
  EXPECT_TRUE(kinds("relu", y).count("unreachable_targets")) << "half the targets below 0";
  EXPECT_TRUE(kinds("sigmoid", y + 5, /*hidden=*/true, 10).count("unreachable_targets"))
      << "outputs pinned at 1";
  EXPECT_TRUE(kinds("relu", y, /*hidden=*/true).count("unreachable_targets"))
      << "outputs pinned at 0";
  EXPECT_FALSE(kinds("linear", y + 5).count("unreachable_targets"));
  EXPECT_FALSE(kinds("linear", y + 5, /*hidden=*/true).count("unreachable_targets"));
  EXPECT_FALSE(kinds("sigmoid", torch::sigmoid(y)).count("unreachable_targets"))
      << "targets in (0, 1)";
}

// A backbone frozen by hand (requires_grad off) keeps its BatchNorm layers in training mode:
// their statistics drift and diagnostics says so. Frozen with models::freeze, which keeps them in
// eval mode, or with the drift allowed (finetune.train_bn), it says nothing.
TEST(DiagnoseFineTuning, FrozenBatchNormLeftInTrainingModeIsFound) {
  namespace dg = trainscope::diagnose;
  namespace nn = torch::nn;
  torch::manual_seed(0);
  auto x = torch::randn({1024, 1, 8, 8}) * 2 + 1;
  auto y = (x.mean({1, 2, 3}) > 1).to(torch::kLong);
  auto data = std::make_shared<trainscope::data::TensorDataset>(x, y);
  auto found = [&](const std::string& how) {
    torch::manual_seed(1);
    nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(1, 8, 3).padding(1)), nn::BatchNorm2d(8),
                       nn::ReLU(), nn::Flatten(), nn::Linear(8 * 8 * 8, 2));
    trainscope::Model model(net);
    if (how == "by hand" || how == "allowed")
      for (auto& p : net->named_parameters())
        if (p.key().rfind("4.", 0) != 0) p.value().set_requires_grad(false);
    if (how == "models::freeze") trainscope::models::freeze(model, {"0", "1"});
    dg::DiagnosticsOptions o;
    o.every = 4;
    o.print = false;
    o.frozen_norms_may_move = how == "allowed";
    auto diagnostics = std::make_shared<dg::Diagnostics>(o);
    trainscope::TrainerOptions t;
    trainscope::Trainer trainer(t.max_epochs(2).batch_size(32).runs_dir(""));
    trainer.add_callback(diagnostics);
    trainer.fit(model, data, nullptr);
    for (const auto& f : diagnostics->findings())
      if (f.kind == "frozen_norm_drift") return true;
    return false;
  };
  EXPECT_TRUE(found("by hand"));
  EXPECT_FALSE(found("models::freeze"));
  EXPECT_FALSE(found("allowed"));
  EXPECT_FALSE(found("nothing frozen"));
}

// The gradient noise scale on a problem where it is known: least squares at w = 0 with Gaussian
// inputs, whose per-example gradients give B_noise = tr(Sigma) / |G|^2 exactly. The estimate
// from consecutive steps (lr so small the weights stay put) comes within 25% of it, and the
// batch advice speaks for batches far from it and not for one near it.
TEST(DiagnoseNoiseScale, EstimateMatchesTheExactValueAndAdvisesTheBatch) {
  namespace dg = trainscope::diagnose;
  torch::manual_seed(0);
  const int64_t n = 16384, d = 16;
  auto x = torch::randn({n, d});
  auto w = torch::randn({d, 1});
  w /= w.norm();
  auto y = x.matmul(w) + torch::randn({n, 1});
  // Per-example gradients of (w.x - y)^2 at w = 0: -2 y x.
  auto g = -2 * y * x;
  auto mean = g.mean(0);
  const double exact =
      (g - mean).pow(2).sum(1).mean().item<double>() / mean.pow(2).sum().item<double>();
  ASSERT_NEAR(exact, 33.0, 5.0) << "theory: (d + 1) + sigma^2 d / |w|^2";

  struct Capture : dg::Detector {
    std::vector<dg::EpochSignals> epochs;
    std::string kind() const override { return "capture"; }
    std::optional<dg::Finding> on_epoch(const dg::EpochSignals& e) override {
      epochs.push_back(e);
      return std::nullopt;
    }
  };
  auto data = std::make_shared<trainscope::data::TensorDataset>(x, y);
  auto run = [&](int64_t batch, int64_t every, int64_t epochs, std::vector<dg::Finding>* found) {
    torch::nn::Linear linear(torch::nn::LinearOptions(d, 1).bias(false));
    {
      torch::NoGradGuard no_grad;
      linear->weight.zero_();
    }
    trainscope::Model model(linear);
    auto capture = std::make_unique<Capture>();
    auto* seen = capture.get();
    std::vector<std::unique_ptr<dg::Detector>> detectors;
    detectors.push_back(std::move(capture));
    detectors.push_back(std::make_unique<dg::BatchNoiseDetector>());
    dg::DiagnosticsOptions o;
    o.every = every;
    o.print = false;
    auto diagnostics = std::make_shared<dg::Diagnostics>(o, std::move(detectors));
    trainscope::TrainerOptions t;
    trainscope::Trainer trainer(t.task(trainscope::Task::kRegression)
                                    .optimizer(trainscope::Optimizer::kSgd)
                                    .lr(1e-9)
                                    .max_epochs(epochs)
                                    .batch_size(batch)
                                    .runs_dir(""));
    trainer.add_callback(diagnostics);
    trainer.fit(model, data, nullptr);
    if (found) *found = diagnostics->findings();
    return seen->epochs.back();
  };
  const auto e = run(64, 16, 1, nullptr);
  std::printf("noise scale: estimate %.1f, exact %.1f\n", e.noise_scale, exact);
  EXPECT_EQ(e.noise_samples, 16);
  EXPECT_NEAR(e.noise_scale / exact, 1.0, 0.25)
      << "estimate " << e.noise_scale << ", exact " << exact;

  auto advice = [&](int64_t batch, int64_t every) {
    std::vector<dg::Finding> found;
    run(batch, every, 1, &found);
    for (const auto& f : found)
      if (f.kind == "batch_size_advice") return f.message;
    return std::string();
  };
  EXPECT_NE(advice(1024, 3).find("batches of 1024 are"), std::string::npos);
  EXPECT_NE(advice(4, 50).find("x smaller"), std::string::npos);
  EXPECT_EQ(advice(64, 16), "") << "a batch near the critical one";
}

namespace {

// Keeps every logging step's signals.
struct StepCapture : trainscope::diagnose::Detector {
  std::vector<trainscope::diagnose::StepSignals> steps;
  std::string kind() const override { return "capture"; }
  std::optional<trainscope::diagnose::Finding> on_step(
      const trainscope::diagnose::StepSignals& s) override {
    steps.push_back(s);
    return std::nullopt;
  }
};

}  // namespace

// Sharpness along the step on a problem where it is known: least squares in one weight with
// inputs of +-1.5, whose loss mean((w x - y)^2) curves by 2 x 1.5^2 = 4.5 everywhere. The
// parabola the probe fits through three points of each step finds it, whatever the length of
// the step Adam takes.
TEST(DiagnoseSharpness, CurvatureAlongTheStepMatchesTheExactValue) {
  namespace dg = trainscope::diagnose;
  torch::manual_seed(0);
  const int64_t n = 1024;
  auto x = 1.5 * torch::randn({n, 1}).sign();
  auto y = 0.7 * x + 0.1 * torch::randn({n, 1});
  auto data = std::make_shared<trainscope::data::TensorDataset>(x, y);
  torch::nn::Linear linear(torch::nn::LinearOptions(1, 1).bias(false));
  {
    torch::NoGradGuard no_grad;
    linear->weight.zero_();
  }
  trainscope::Model model(linear);
  auto capture = std::make_unique<StepCapture>();
  auto* seen = capture.get();
  std::vector<std::unique_ptr<dg::Detector>> detectors;
  detectors.push_back(std::move(capture));
  dg::DiagnosticsOptions o;
  o.every = 2;
  o.print = false;
  auto diagnostics = std::make_shared<dg::Diagnostics>(o, std::move(detectors));
  trainscope::TrainerOptions t;
  trainscope::Trainer trainer(
      t.task(trainscope::Task::kRegression).lr(0.05).max_epochs(1).batch_size(64).runs_dir(""));
  trainer.add_callback(diagnostics);
  trainer.fit(model, data, nullptr);
  int measured = 0;
  for (const auto& s : seen->steps) {
    ASSERT_TRUE(std::isfinite(s.step_curvature)) << "step " << s.step;
    const double sharpness = s.step_curvature / (s.step_norm * s.step_norm);
    EXPECT_NEAR(sharpness, 4.5, 0.045) << "step " << s.step << ", step length " << s.step_norm;
    ++measured;
  }
  EXPECT_EQ(measured, 8);  // 16 steps, every 2
}

// The probe leaves the run as it found it: with dropout and BatchNorm in training mode, a fit
// that measures the sharpness at every third step ends with the same weights, bit for bit, as
// one that does not.
TEST(DiagnoseSharpness, ProbeLeavesWeightsStatisticsAndRandomStreamAsTheyWere) {
  namespace dg = trainscope::diagnose;
  torch::manual_seed(1);
  auto x = torch::randn({768, 20});
  auto y = (x.slice(1, 0, 5).sum(1) > 0).to(torch::kLong) + (x.slice(1, 5, 6).squeeze(1) > 1);
  auto data = std::make_shared<trainscope::data::TensorDataset>(x, y);
  auto fit = [&](int64_t examples, int* measured) {
    torch::manual_seed(2);
    torch::nn::Sequential net(torch::nn::Linear(20, 32), torch::nn::BatchNorm1d(32),
                              torch::nn::ReLU(), torch::nn::Dropout(0.3), torch::nn::Linear(32, 3));
    trainscope::Model model(net);
    auto capture = std::make_unique<StepCapture>();
    auto* seen = capture.get();
    std::vector<std::unique_ptr<dg::Detector>> detectors;
    detectors.push_back(std::move(capture));
    dg::DiagnosticsOptions o;
    o.every = 3;
    o.print = false;
    o.sharpness_examples = examples;
    auto diagnostics = std::make_shared<dg::Diagnostics>(o, std::move(detectors));
    trainscope::TrainerOptions t;
    trainscope::Trainer trainer(t.max_epochs(2).batch_size(32).seed(7).runs_dir(""));
    trainer.add_callback(diagnostics);
    trainer.fit(model, data, nullptr);
    *measured = 0;
    for (const auto& s : seen->steps) *measured += std::isfinite(s.step_curvature);
    std::vector<torch::Tensor> state;
    for (const auto& p : net->parameters()) state.push_back(p.detach().clone());
    for (const auto& b : net->buffers()) state.push_back(b.detach().clone());
    return state;
  };
  int with_probe = 0, without = 0;
  const auto a = fit(16, &with_probe), b = fit(0, &without);
  EXPECT_EQ(with_probe, 16);  // 48 steps, every 3
  EXPECT_EQ(without, 0);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}
