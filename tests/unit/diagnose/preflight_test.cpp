// Pre-flight checks on setups with known faults, and on a healthy one.
#include <trainscope/diagnose/preflight.h>

#include <gtest/gtest.h>

#include <set>

namespace ts = trainscope;
namespace dg = trainscope::diagnose;

namespace {

std::set<std::string> kinds(const std::vector<dg::Finding>& findings) {
  std::set<std::string> out;
  for (const auto& f : findings) out.insert(f.kind);
  return out;
}

// Four separable classes in 8 dimensions, normalized.
std::shared_ptr<ts::data::TensorDataset> blobs(int64_t n, double scale = 1.0,
                                               bool balanced = true) {
  torch::manual_seed(1);
  auto y = balanced ? torch::arange(n) % 4
                    : torch::where(torch::arange(n) < n - 4, torch::zeros({n}, torch::kLong),
                                   torch::arange(n) % 4);
  auto centers = torch::randn({4, 8});
  auto x = (centers.index_select(0, y) + 0.3 * torch::randn({n, 8})) * scale;
  return std::make_shared<ts::data::TensorDataset>(x, y.to(torch::kInt64));
}

ts::Model mlp() {
  torch::manual_seed(0);
  return ts::Model(
      torch::nn::Sequential(torch::nn::Linear(8, 32), torch::nn::ReLU(), torch::nn::Linear(32, 4)));
}

}  // namespace

TEST(Preflight, HealthySetupPassesAndIsLeftUntouched) {
  auto model = mlp();
  auto data = blobs(512);
  auto before = model.snapshot();
  torch::manual_seed(42);
  auto rng_before = torch::rand({3});
  torch::manual_seed(42);
  auto findings = dg::preflight(model, *data);
  EXPECT_TRUE(findings.empty()) << findings.front().to_text();
  auto after = model.snapshot();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i]));
  EXPECT_TRUE(torch::equal(torch::rand({3}), rng_before))
      << "pre-flight must not consume the run's random numbers";
  for (const auto& p : model.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Preflight, UnnormalizedInputsAreFlagged) {
  auto model = mlp();
  auto f = dg::preflight(model, *blobs(512, 100.0));
  EXPECT_TRUE(kinds(f).count("preflight_inputs_not_normalized"))
      << (f.empty() ? "" : f.front().to_text());
}

TEST(Preflight, LabelsOutOfRangeStopTheOtherChecks) {
  auto model = ts::Model(torch::nn::Linear(8, 3));  // 3 outputs for 4 classes
  auto f = dg::preflight(model, *blobs(64));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].kind, "preflight_labels");
  EXPECT_EQ(f[0].severity, dg::Severity::kError);
  EXPECT_NE(f[0].message.find("labels range over [0, 3] but the model has 3 outputs"),
            std::string::npos)
      << f[0].message;
}

TEST(Preflight, ImbalanceUnusedParametersBadInitAndUnlearnableData) {
  auto model = mlp();
  auto imbalanced = dg::preflight(model, *blobs(400, 1.0, /*balanced=*/false));
  EXPECT_TRUE(kinds(imbalanced).count("preflight_class_imbalance"));

  // A layer that forward() never uses receives no gradient.
  struct Unused : torch::nn::Module {
    Unused()
        : used(register_module("used", torch::nn::Linear(8, 4))),
          spare(register_module("spare", torch::nn::Linear(8, 4))) {}
    torch::Tensor forward(const torch::Tensor& x) { return used->forward(x); }
    torch::nn::Linear used, spare;
  };
  auto unused = std::make_shared<Unused>();
  ts::Model with_spare(
      unused, [unused](const torch::Tensor& x) { return unused->forward(x); }, "unused");
  auto f = dg::preflight(with_spare, *blobs(256));
  ASSERT_TRUE(kinds(f).count("preflight_no_gradient"));
  for (const auto& x : f)
    if (x.kind == "preflight_no_gradient") {
      EXPECT_NE(x.message.find("spare.weight, spare.bias"), std::string::npos) << x.message;
    }

  // A last layer initialized 100x too large starts far from log C.
  auto loud = mlp();
  {
    torch::NoGradGuard g;
    loud.parameters()[2].mul_(100.0);
  }
  EXPECT_TRUE(kinds(dg::preflight(loud, *blobs(256))).count("preflight_initial_loss"));

  // Random labels cannot be overfit by a model with no capacity (a frozen-ish linear layer at lr
  // 1e-6).
  dg::PreflightOptions slow;
  slow.lr = 1e-6;
  auto lin = ts::Model(torch::nn::Linear(8, 4));
  EXPECT_TRUE(kinds(dg::preflight(lin, *blobs(256), slow)).count("preflight_overfit_batch"));
}

// A step of your own is the loss the checks overfit; the initial-loss check, which knows the
// built-in losses only, stays silent for it.
TEST(Preflight, AStepOfYourOwnIsTheLossTheChecksUse) {
  auto data = blobs(512);
  // Logits 50x too large: the built-in loss starts far from log C.
  torch::manual_seed(0);
  torch::nn::Sequential net(torch::nn::Linear(8, 32), torch::nn::ReLU(), torch::nn::Linear(32, 4));
  ts::Model model(net);
  auto loud =
      model.with_forward([m = net.ptr()](const torch::Tensor& x) { return 50 * m->forward(x); });
  EXPECT_TRUE(kinds(dg::preflight(loud, *data)).count("preflight_initial_loss"));
  dg::PreflightOptions o;
  o.step = [](const ts::Model& m, const ts::data::Batch& b) {
    auto out = m.forward(b.x);
    return ts::StepResult{torch::cross_entropy_loss(out / 50, b.y), out};
  };
  EXPECT_TRUE(dg::preflight(loud, *data, o).empty());
  // A step whose loss cannot go down (it ignores the outputs' values) fails the overfit check
  // that the built-in loss passes.
  o.step = [](const ts::Model& m, const ts::data::Batch& b) {
    auto out = m.forward(b.x);
    return ts::StepResult{(out * 0).sum() + 1.0, out};
  };
  EXPECT_TRUE(kinds(dg::preflight(model, *data, o)).count("preflight_overfit_batch"));
  EXPECT_FALSE(kinds(dg::preflight(model, *data)).count("preflight_overfit_batch"));
}
