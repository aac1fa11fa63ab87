// Table tests: synthetic signal histories -> the step or epoch at which each detector fires,
// including near-misses that must not fire.
#include <trainscope/diagnose/detectors.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <set>

namespace dg = trainscope::diagnose;

namespace {

// A two-layer net's step signals: first and last weight gradient norms, global norm.
dg::StepSignals step(int64_t i, double first_grad, double last_grad, double grad_norm = -1,
                     double loss = 1.0) {
  dg::StepSignals s;
  s.step = 50 * i;
  s.epoch = 1 + i / 10;
  s.loss = loss;
  s.lr = 1e-3;
  s.grad_norm = grad_norm >= 0 ? grad_norm : std::hypot(first_grad, last_grad);
  s.grad_abs_mean = 1e-3;
  s.layers = {{"0.weight", first_grad, 10.0, 1e-3, 0.0, true},
              {"0.bias", 0.1, 1.0, 1e-3, 0.0, false},
              {"2.weight", last_grad, 10.0, 1e-3, 0.0, true}};
  return s;
}

dg::EpochSignals epoch(int64_t e, double train_loss, double val_loss, double train_acc = NAN,
                       double val_acc = NAN, int64_t max_epochs = 50) {
  dg::EpochSignals s;
  s.epoch = e;
  s.step = 100 * e;
  s.max_epochs = max_epochs;
  s.num_classes = 10;
  s.trivial_loss = std::log(10.0);
  s.train["loss"] = train_loss;
  if (!std::isnan(val_loss)) s.val["loss"] = val_loss;
  if (!std::isnan(train_acc)) s.train["accuracy"] = train_acc;
  if (!std::isnan(val_acc)) s.val["accuracy"] = val_acc;
  s.best_epoch = 1;
  s.best_val_loss = val_loss;
  return s;
}

// Feeds the steps in order; returns the index of the first firing (-1: none).
int first_step_firing(dg::Detector& d, const std::vector<dg::StepSignals>& steps) {
  for (size_t i = 0; i < steps.size(); ++i)
    if (d.on_step(steps[i])) return static_cast<int>(i);
  return -1;
}

// The first finding `d` gives over `steps` (none: nullopt).
std::optional<dg::Finding> first_finding(dg::Detector& d,
                                         const std::vector<dg::StepSignals>& steps) {
  for (const auto& s : steps)
    if (auto f = d.on_step(s)) return f;
  return std::nullopt;
}

int first_epoch_firing(dg::Detector& d, const std::vector<dg::EpochSignals>& epochs,
                       dg::Finding* out = nullptr) {
  for (size_t i = 0; i < epochs.size(); ++i)
    if (auto f = d.on_epoch(epochs[i])) {
      if (out) *out = *f;
      return static_cast<int>(epochs[i].epoch);
    }
  return -1;
}

struct StepCase {
  std::string name;
  std::function<std::unique_ptr<dg::Detector>()> make;
  std::vector<dg::StepSignals> steps;
  int expected;  // index of the first firing, -1 for none
};

std::vector<dg::StepSignals> repeat(int n, const std::function<dg::StepSignals(int)>& f) {
  std::vector<dg::StepSignals> v;
  for (int i = 0; i < n; ++i) v.push_back(f(i));
  return v;
}

}  // namespace

TEST(Detectors, StepRulesTable) {
  auto exploding = [] { return std::make_unique<dg::ExplodingGradientDetector>(); };
  auto vanishing = [] { return std::make_unique<dg::VanishingGradientDetector>(); };
  auto nonfinite = [] { return std::make_unique<dg::NonFiniteDetector>(); };
  auto relu = [] { return std::make_unique<dg::DyingReluDetector>(); };
  auto lr = [] { return std::make_unique<dg::LearningRateDetector>(); };
  auto sat = [] { return std::make_unique<dg::SaturationDetector>(); };
  const std::vector<StepCase> cases = {
      {"healthy ratio 5: nothing", exploding, repeat(20, [](int i) { return step(i, 0.5, 0.1); }),
       -1},
      {"ratio 80 sustained 3 steps fires at the third", exploding,
       repeat(6, [](int i) { return step(i, i >= 2 ? 8.0 : 0.5, 0.1); }), 4},
      {"ratio 80 for 2 steps only: near miss", exploding,
       repeat(8, [](int i) { return step(i, (i == 2 || i == 3) ? 8.0 : 0.5, 0.1); }), -1},
      {"ratio 69 sustained: near miss", exploding,
       repeat(10, [](int) { return step(0, 6.9, 0.1); }), -1},
      {"global norm x1000 in the window fires", exploding,
       repeat(6, [](int i) { return step(i, 0.1, 0.1, i == 5 ? 200.0 : 0.15); }), 5},
      {"global norm x50 growth: near miss", exploding,
       repeat(6, [](int i) { return step(i, 0.1, 0.1, i == 5 ? 7.0 : 0.15); }), -1},
      {"AUTOTRAINER vanishing ratio and first norm, sustained", vanishing,
       repeat(5, [](int i) { return step(i, 5e-5, 0.1); }), 2},
      {"tiny ratio but first norm 1e-3: near miss", vanishing,
       repeat(8, [](int i) { return step(i, 1e-3 * 0.5, 1e3); }), -1},
      {"healthy: no vanishing", vanishing, repeat(8, [](int i) { return step(i, 0.05, 0.1); }), -1},
      {"mean |g| below 1e-7 fires", vanishing,
       repeat(5,
              [](int i) {
                auto s = step(i, 0.05, 0.1);
                s.grad_abs_mean = 5e-8;
                return s;
              }),
       2},
      {"NaN loss fires at once", nonfinite,
       repeat(4, [](int i) { return step(i, 0.1, 0.1, -1, i == 1 ? NAN : 1.0); }), 1},
      {"Inf gradient norm fires at once", nonfinite,
       repeat(3, [](int i) { return step(i, 0.1, 0.1, i == 2 ? INFINITY : 0.1); }), 2},
      {"finite: nothing", nonfinite, repeat(5, [](int i) { return step(i, 0.1, 0.1); }), -1},
      {"70% zero gradient entries sustained", relu,
       repeat(4,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                s.layers[0].zero_grad_fraction = 0.75;
                return s;
              }),
       2},
      {"69% zero gradients: near miss", relu,
       repeat(6,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                s.layers[0].zero_grad_fraction = 0.69;
                return s;
              }),
       -1},
      {"60% dead ReLU units sustained", relu,
       repeat(4,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                s.activations = {{"1:relu", "relu", 0.6, 0.0}};
                return s;
              }),
       2},
      {"zero gradients in a bias do not count", relu,
       repeat(6,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                s.layers[1].zero_grad_fraction = 1.0;
                return s;
              }),
       -1},
      {"update ratio 0.3 (lr too high) sustained", lr,
       repeat(4,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                for (auto& l : s.layers) l.update_ratio = 0.3;
                return s;
              }),
       2},
      {"update ratio 1e-6 (lr too low) sustained", lr,
       repeat(4,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                for (auto& l : s.layers) l.update_ratio = 1e-6;
                return s;
              }),
       2},
      {"update ratio 0.05: healthy-high, near miss", lr,
       repeat(6,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                for (auto& l : s.layers) l.update_ratio = 0.05;
                return s;
              }),
       -1},
      {"80% saturated sigmoid sustained", sat,
       repeat(4,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                s.activations = {{"1:sigmoid", "sigmoid", 0.0, 0.8}};
                return s;
              }),
       2},
      {"40% saturated: near miss", sat,
       repeat(6,
              [](int i) {
                auto s = step(i, 0.1, 0.1);
                s.activations = {{"1:tanh", "tanh", 0.0, 0.4}};
                return s;
              }),
       -1},
  };
  for (const auto& c : cases) {
    auto d = c.make();
    EXPECT_EQ(first_step_firing(*d, c.steps), c.expected) << c.name;
  }
}

TEST(Detectors, ExplodingFindingCarriesEvidenceAndRemedy) {
  dg::ExplodingGradientDetector d;
  auto f = first_finding(d, repeat(3, [](int i) { return step(i, 10.0, 0.1); }));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, "exploding_gradients");
  EXPECT_EQ(f->severity, dg::Severity::kError);
  EXPECT_DOUBLE_EQ(f->evidence.at("first_last_ratio"), 100.0);
  EXPECT_NE(f->message.find("0.weight"), std::string::npos) << f->message;
  EXPECT_NE(f->remedy.find("clip gradients at 1.0"), std::string::npos);
  // The remedy names settings, not flags: each reader names them its own way.
  const std::vector<std::pair<std::string, std::string>> changes = {{"train.grad_clip", "1.0"},
                                                                    {"train.lr", "0.0001"}};
  EXPECT_EQ(f->changes(), changes) << f->remedy;
  EXPECT_EQ(f->remedy.find("--"), std::string::npos) << f->remedy;
  EXPECT_NE(f->to_text().find("(train.lr = 0.0001)"), std::string::npos) << f->to_text();
  const std::string as_flags = f->to_text([](const std::string& key, const std::string& value) {
    return key == "train.lr" ? "--lr " + value : "--set " + key + "=" + value;
  });
  EXPECT_NE(as_flags.find("(--lr 0.0001)"), std::string::npos) << as_flags;
  EXPECT_NE(as_flags.find("(--set train.grad_clip=1.0)"), std::string::npos) << as_flags;
  EXPECT_NE(f->evidence_json().find("\"first_last_ratio\":100"), std::string::npos)
      << f->evidence_json();
}

TEST(Findings, SettingReferencesAreFoundAndNamedAndTheRestIsKept) {
  const std::string text = "lower it (" + dg::setting_ref("train.lr", "0.0001") + "), add " +
                           dg::setting_ref("model.hidden", "[256]") +
                           "; {not a ref} {=x} {Upper.key=1} {nodot=1} {a.b=}";
  const std::vector<std::pair<std::string, std::string>> refs = {
      {"train.lr", "0.0001"}, {"model.hidden", "[256]"}, {"a.b", ""}};
  EXPECT_EQ(dg::setting_refs(text), refs);
  EXPECT_EQ(dg::name_settings(text),
            "lower it (train.lr = 0.0001), add model.hidden = [256]; {not a ref} {=x} "
            "{Upper.key=1} {nodot=1} a.b = ");
  EXPECT_EQ(dg::name_settings("no settings here"), "no settings here");
  EXPECT_EQ(dg::name_settings(
                "{train.lr=1}",
                [](const std::string& k, const std::string& v) { return "<" + k + "|" + v + ">"; }),
            "<train.lr|1>");
}

TEST(Detectors, ThresholdsAreOptions) {
  // The same signals fire under the default explode_ratio (70) and not when it is raised.
  dg::DetectorThresholds raised;
  raised.explode_ratio = 1000.0;
  dg::ExplodingGradientDetector by_default, with_raised(raised);
  bool fired_default = false, fired_raised = false;
  for (int i = 0; i < 5; ++i) {
    fired_default |= by_default.on_step(step(i, 10.0, 0.1)).has_value();
    fired_raised |= with_raised.on_step(step(i, 10.0, 0.1)).has_value();
  }
  EXPECT_TRUE(fired_default);
  EXPECT_FALSE(fired_raised);
  // sustain_steps: with 5 the rule needs five logging steps in a row.
  dg::DetectorThresholds patient;
  patient.sustain_steps = 5;
  dg::ExplodingGradientDetector slow(patient);
  int first = -1;
  for (int i = 0; i < 6 && first < 0; ++i)
    if (slow.on_step(step(i, 10.0, 0.1))) first = i;
  EXPECT_EQ(first, 4);
}

TEST(Detectors, OverfittingTable) {
  struct Case {
    std::string name;
    std::vector<dg::EpochSignals> epochs;
    int expected_epoch;
  };
  const std::vector<Case> cases = {
      {"val rising 3 epochs while train falls",
       {epoch(1, 1.0, 0.9), epoch(2, 0.8, 0.8), epoch(3, 0.7, 0.85), epoch(4, 0.6, 0.9),
        epoch(5, 0.5, 0.95)},
       5},
      {"val rising 2 epochs only: near miss",
       {epoch(1, 1.0, 1.0), epoch(2, 0.8, 0.8), epoch(3, 0.79, 0.82), epoch(4, 0.78, 0.83),
        epoch(5, 0.77, 0.8)},
       -1},
      {"loss gap 20% for 3 epochs",
       {epoch(1, 1.0, 1.05), epoch(2, 0.5, 0.6), epoch(3, 0.45, 0.55), epoch(4, 0.4, 0.5)},
       4},
      {"loss gap 9%: near miss",
       {epoch(1, 1.0, 1.09), epoch(2, 0.9, 0.98), epoch(3, 0.8, 0.87), epoch(4, 0.7, 0.76)},
       -1},
      {"accuracy gap 0.12 for 2 epochs",
       {epoch(1, 1.0, 1.0, 0.80, 0.79), epoch(2, 0.9, 0.9, 0.85, 0.73),
        epoch(3, 0.8, 0.8, 0.86, 0.74)},
       3},
      {"accuracy gap 0.08 above 0.9 train accuracy",
       {epoch(1, 0.3, 0.3, 0.93, 0.85), epoch(2, 0.29, 0.3, 0.94, 0.86)},
       2},
      {"accuracy gap 0.08 at 0.85 train accuracy: near miss",
       {epoch(1, 0.5, 0.5, 0.85, 0.77), epoch(2, 0.49, 0.5, 0.86, 0.78),
        epoch(3, 0.48, 0.5, 0.86, 0.78)},
       -1},
      {"no validation: nothing",
       {epoch(1, 1.0, NAN), epoch(2, 0.5, NAN), epoch(3, 0.2, NAN), epoch(4, 0.1, NAN)},
       -1},
  };
  for (const auto& c : cases) {
    dg::OverfittingDetector d;
    EXPECT_EQ(first_epoch_firing(d, c.epochs), c.expected_epoch) << c.name;
  }
  dg::OverfittingDetector d;
  dg::Finding f;
  auto e5 = epoch(5, 0.5, 0.95);
  e5.best_epoch = 2;
  e5.best_val_loss = 0.8;
  first_epoch_firing(
      d, {epoch(1, 1.0, 0.9), epoch(2, 0.8, 0.8), epoch(3, 0.7, 0.85), epoch(4, 0.6, 0.9), e5}, &f);
  EXPECT_NE(f.remedy.find("the best epoch was 2"), std::string::npos) << f.remedy;
  EXPECT_NE(f.remedy.find("dropout"), std::string::npos);
  EXPECT_NE(f.remedy.find("add augmentation"), std::string::npos) << f.remedy;
  // With augmentation on already, the remedy does not propose adding it.
  std::vector<dg::EpochSignals> augmented = {epoch(1, 1.0, 0.9), epoch(2, 0.8, 0.8),
                                             epoch(3, 0.7, 0.85), epoch(4, 0.6, 0.9), e5};
  for (auto& e : augmented) e.augmented = true;
  dg::OverfittingDetector with_augmentation;
  first_epoch_firing(with_augmentation, augmented, &f);
  EXPECT_EQ(f.remedy.find("add augmentation"), std::string::npos) << f.remedy;
  EXPECT_NE(f.remedy.find("stronger augmentation than the one on"), std::string::npos) << f.remedy;
}

// With early stopping restoring the best weights, overfitting that begins after the first quarter
// of the budget is info (the fit keeps the weights from before it); sooner, or without early
// stopping, a warning.
TEST(Detectors, OverfittingIsInfoWhenEarlyStoppingKeepsTheWeightsFromBeforeIt) {
  auto severity = [](bool restores, int64_t best, int64_t max_epochs) {
    std::vector<dg::EpochSignals> run = {
        epoch(1, 1.0, 0.9, NAN, NAN, max_epochs), epoch(2, 0.8, 0.8, NAN, NAN, max_epochs),
        epoch(3, 0.7, 0.85, NAN, NAN, max_epochs), epoch(4, 0.6, 0.9, NAN, NAN, max_epochs),
        epoch(5, 0.5, 0.95, NAN, NAN, max_epochs)};
    for (auto& e : run) e.restores_best = restores, e.best_epoch = best;
    dg::OverfittingDetector d;
    dg::Finding f;
    EXPECT_EQ(first_epoch_firing(d, run, &f), 5);
    return f;
  };
  EXPECT_EQ(severity(true, 2, 6).severity, dg::Severity::kInfo) << "best at 2 of 6 epochs";
  EXPECT_NE(severity(true, 2, 6).message.find("early stopping keeps epoch 2's weights"),
            std::string::npos)
      << severity(true, 2, 6).message;
  EXPECT_EQ(severity(false, 2, 6).severity, dg::Severity::kWarning) << "no early stopping";
  EXPECT_EQ(severity(true, 2, 8).severity, dg::Severity::kWarning) << "2 of 8: the first quarter";
  EXPECT_EQ(severity(true, 2, 50).severity, dg::Severity::kWarning) << "2 of 50";
}

TEST(Detectors, UnderfittingTable) {
  const double trivial = std::log(10.0);
  struct Case {
    std::string name;
    std::vector<dg::EpochSignals> epochs;
    int expected_epoch;
  };
  const std::vector<Case> cases = {
      {"loss stuck at log C fires after the fair share (5 of 50 epochs)",
       {epoch(1, trivial, trivial, 0.1), epoch(2, trivial, trivial, 0.1),
        epoch(3, trivial, trivial, 0.1), epoch(4, trivial, trivial, 0.1),
        epoch(5, trivial, trivial, 0.1), epoch(6, trivial, trivial, 0.1)},
       5},
      {"with 10 epochs the fair share is 2",
       {epoch(1, trivial, trivial, 0.1, NAN, 10), epoch(2, trivial, trivial, 0.1, NAN, 10)},
       2},
      {"accuracy near chance",
       {epoch(1, 2.0, 2.0, 0.12, NAN, 10), epoch(2, 1.9, 1.9, 0.13, NAN, 10)},
       2},
      {"learning well: nothing",
       {epoch(1, 0.6, 0.6, 0.8, NAN, 10), epoch(2, 0.4, 0.4, 0.86, NAN, 10),
        epoch(3, 0.35, 0.4, 0.88, NAN, 10), epoch(4, 0.32, 0.4, 0.89, NAN, 10),
        epoch(5, 0.3, 0.4, 0.9, NAN, 10)},
       -1},
      {"slow: under 1% gain for 3 epochs at a high loss",
       {epoch(1, 1.5, 1.5, 0.5, NAN, 10), epoch(2, 1.49, 1.5, 0.5, NAN, 10),
        epoch(3, 1.485, 1.5, 0.5, NAN, 10), epoch(4, 1.48, 1.5, 0.5, NAN, 10)},
       4},
      {"plateau at 0.7 (above a quarter of log C) is underfitting",
       {epoch(1, 0.72, 0.72, 0.75, NAN, 10), epoch(2, 0.715, 0.72, 0.75, NAN, 10),
        epoch(3, 0.71, 0.72, 0.75, NAN, 10), epoch(4, 0.706, 0.72, 0.75, NAN, 10)},
       4},
      {"plateau at 0.5 (a linear model's level): near miss",
       {epoch(1, 0.52, 0.52, 0.82, NAN, 10), epoch(2, 0.515, 0.52, 0.82, NAN, 10),
        epoch(3, 0.51, 0.52, 0.82, NAN, 10), epoch(4, 0.506, 0.52, 0.82, NAN, 10)},
       -1},
      {"plateau at a low loss is convergence, not underfitting",
       {epoch(1, 0.2, 0.2, 0.93, NAN, 10), epoch(2, 0.199, 0.2, 0.93, NAN, 10),
        epoch(3, 0.198, 0.2, 0.93, NAN, 10), epoch(4, 0.197, 0.2, 0.93, NAN, 10)},
       -1},
  };
  for (const auto& c : cases) {
    dg::UnderfittingDetector d;
    EXPECT_EQ(first_epoch_firing(d, c.epochs), c.expected_epoch) << c.name;
  }
  // A new phase (a backbone unfrozen at epoch 8) gets its own fair share: its first epoch's
  // train-mode loss, high while the backbone starts to move, is not yet underfitting.
  auto phase = [&](int64_t e, double loss) {
    auto s = epoch(e, loss, loss, 0.3, NAN, 30);
    s.phase_epoch = 8;
    return s;
  };
  dg::UnderfittingDetector d;
  EXPECT_EQ(first_epoch_firing(
                d, {phase(8, trivial), phase(9, trivial), phase(10, trivial), phase(11, trivial)}),
            10)
      << "3 epochs of this phase (the fair share of 30), not epoch 8";
}

TEST(Detectors, OscillatingLossTable) {
  auto seq = [](std::vector<double> losses) {
    std::vector<dg::EpochSignals> v;
    for (size_t i = 0; i < losses.size(); ++i) v.push_back(epoch(int64_t(i) + 1, losses[i], NAN));
    return v;
  };
  dg::OscillatingLossDetector a;
  EXPECT_EQ(first_epoch_firing(a, seq({1.0, 0.8, 1.0, 0.8, 1.0, 0.8})), 5);
  dg::OscillatingLossDetector b;
  EXPECT_EQ(first_epoch_firing(b, seq({1.0, 0.8, 0.7, 0.65, 0.6, 0.58})), -1) << "monotone";
  dg::OscillatingLossDetector c;
  EXPECT_EQ(first_epoch_firing(c, seq({1.0, 0.99, 1.0, 0.99, 1.0, 0.99})), -1)
      << "wiggles under 5% are noise";
}

TEST(Detectors, DeadUnitsBetweenHalfAndSeventyPercentAreInfoAboveAWarning) {
  auto run = [](double dead) {
    dg::DyingReluDetector d;
    std::optional<dg::Finding> f;
    for (int i = 0; i < 3; ++i) {
      auto s = step(i, 0.1, 0.1);
      s.activations = {{"10:relu", "relu", dead, 0.0}};
      f = d.on_step(s);
    }
    return f;
  };
  ASSERT_TRUE(run(0.57));
  EXPECT_EQ(run(0.57)->severity, dg::Severity::kInfo);
  EXPECT_EQ(run(0.8)->severity, dg::Severity::kWarning);
  EXPECT_FALSE(run(0.45));
}

// A remedy's settings as alternatives: " or " between two references starts another, and so does
// a comma that starts another clause; "and", "with" or a bare comma joins them.
TEST(Detectors, RemedySettingsSplitIntoAlternativesAtOr) {
  using Alternatives = std::vector<std::vector<std::pair<std::string, std::string>>>;
  EXPECT_EQ(dg::setting_alternatives("add augmentation, dropout ({model.dropout=0.3}) or weight "
                                     "decay ({train.weight_decay=0.0001}); the best epoch was 7"),
            (Alternatives{{{"model.dropout", "0.3"}}, {{"train.weight_decay", "0.0001"}}}));
  EXPECT_EQ(dg::setting_alternatives("lower the learning rate to 0.01 ({train.lr=0.01}) and clip "
                                     "gradients at 1.0 ({train.grad_clip=1})"),
            (Alternatives{{{"train.lr", "0.01"}, {"train.grad_clip", "1"}}}));
  EXPECT_EQ(dg::setting_alternatives("either this or that: ({train.lr=0.1})"),
            (Alternatives{{{"train.lr", "0.1"}}}))
      << "an \"or\" before the first reference opens nothing";
  EXPECT_TRUE(dg::setting_alternatives("use a different model").empty());
  EXPECT_EQ(dg::setting_alternatives("lower the learning rate to 0.003 ({train.lr=0.003}), use "
                                     "LeakyReLU ({model.activation=leaky_relu}), or add batch "
                                     "normalization before the ReLUs ({model.norm=batch})"),
            (Alternatives{{{"train.lr", "0.003"}},
                          {{"model.activation", "leaky_relu"}},
                          {{"model.norm", "batch"}}}));
  EXPECT_EQ(
      dg::setting_alternatives("unfreeze it ({finetune.unfreeze_at_epoch=2}, "
                               "{finetune.backbone_lr_ratio=1.0}), or train longer"),
      (Alternatives{{{"finetune.unfreeze_at_epoch", "2"}, {"finetune.backbone_lr_ratio", "1.0"}}}));
  EXPECT_EQ(dg::setting_alternatives("use ReLU ({model.activation=relu}) with batch "
                                     "normalization ({model.norm=batch}) instead of tanh"),
            (Alternatives{{{"model.activation", "relu"}, {"model.norm", "batch"}}}));
}

TEST(Detectors, DefaultsCoverEveryKind) {
  std::set<std::string> kinds;
  for (const auto& det : dg::default_detectors()) kinds.insert(det->kind());
  EXPECT_EQ(kinds, (std::set<std::string>{"non_finite",
                                          "exploding_gradients",
                                          "vanishing_gradients",
                                          "dying_relu",
                                          "saturated_activations",
                                          "learning_rate",
                                          "overfitting",
                                          "underfitting",
                                          "oscillating_loss",
                                          "softmax_before_loss",
                                          "relu_on_logits",
                                          "bounded_logits",
                                          "symmetric_units",
                                          "stuck_parameters",
                                          "loss_not_moving",
                                          "too_few_steps",
                                          "unreachable_targets",
                                          "frozen_norm_drift",
                                          "batch_size_advice",
                                          "sharpness"}));
}

// Outputs that are probabilities, or logits that never go negative: the faults of a softmax or
// a ReLU after the last Linear layer, fed to cross-entropy. Healthy logits trip neither.
TEST(Detectors, ProbabilitiesAndClippedLogitsFedToCrossEntropy) {
  auto outputs = [](double lo, double hi, double row_error, double zeros) {
    dg::StepSignals s = step(1, 1.0, 1.0);
    s.classification_outputs = true;
    s.output_min = lo, s.output_max = hi, s.row_sum_error = row_error, s.zero_fraction = zeros;
    return s;
  };
  const auto softmax = outputs(0.001, 0.9, 2e-7, 0.0), relu = outputs(0.0, 7.5, 12.0, 0.4),
             healthy = outputs(-6.2, 8.1, 9.0, 0.0), sigmoid = outputs(0.01, 0.99, 1.7, 0.0);
  // Under bf16 autocast a softmax's rows, rounded to bfloat16, sum to 1 within its epsilon only;
  // float32 outputs that far from 1 are not probabilities.
  auto bf16_softmax = outputs(0.001, 0.9, 0.004, 0.0);
  bf16_softmax.output_epsilon = 0.0078125;
  const auto fp32_near_softmax = outputs(0.001, 0.9, 0.004, 0.0);
  struct Case {
    std::string name;
    std::vector<dg::StepSignals> steps;
    int softmax_at, relu_at;
  };
  const std::vector<Case> cases = {
      {"softmax outputs, two logging steps", {softmax, softmax, softmax}, 1, -1},
      {"once is not a pattern", {softmax, healthy, softmax, healthy}, -1, -1},
      {"relu logits", {relu, relu}, -1, 1},
      {"healthy logits", {healthy, healthy, healthy}, -1, -1},
      {"sigmoid outputs: in [0, 1] but rows do not sum to 1, no zeros", {sigmoid, sigmoid}, -1, -1},
      {"bf16 softmax outputs", {bf16_softmax, bf16_softmax}, 1, -1},
      {"float32 rows 0.004 from summing to 1", {fp32_near_softmax, fp32_near_softmax}, -1, -1},
  };
  for (const auto& c : cases) {
    dg::ProbabilityOutputsDetector p;
    dg::NonNegativeLogitsDetector r;
    EXPECT_EQ(first_step_firing(p, c.steps), c.softmax_at) << c.name;
    EXPECT_EQ(first_step_firing(r, c.steps), c.relu_at) << c.name;
  }
  dg::StepSignals regression = softmax;
  regression.classification_outputs = false;
  dg::ProbabilityOutputsDetector p;
  EXPECT_EQ(first_step_firing(p, {regression, regression}), -1) << "not classification";
}

// Scores squashed by a sigmoid or tanh after the last layer: certain when the model's last module
// says so, else read from scores that stay in [0, 1] or [-1, 1] with a bound reached, three
// logging steps in a row. Healthy logits, small ones at initialization, zero-initialized heads,
// a ReLU's exact zeros and a softmax's rows are not it.
TEST(Detectors, BoundedLogitsFedToCrossEntropy) {
  auto outputs = [](double lo, double hi, double row_error, double zeros,
                    const std::string& activation = "") {
    dg::StepSignals s = step(1, 1.0, 1.0);
    s.classification_outputs = true;
    s.output_classes = 10;
    s.output_min = lo, s.output_max = hi, s.row_sum_error = row_error, s.zero_fraction = zeros;
    s.output_activation = activation;
    return s;
  };
  const auto sigmoid = outputs(0.02, 0.995, 1.7, 0.0), tanh = outputs(-0.999, 0.97, 3.0, 0.0),
             known = outputs(0.2, 0.6, 1.7, 0.0, "sigmoid"),
             small_init = outputs(-0.35, 0.42, 9.0, 0.0), zero_head = outputs(0.0, 0.0, 1.0, 1.0),
             relu = outputs(0.0, 0.999, 4.0, 0.3), softmax = outputs(0.001, 0.995, 2e-7, 0.0),
             healthy = outputs(-6.2, 8.1, 9.0, 0.0);
  struct Case {
    std::string name;
    std::vector<dg::StepSignals> steps;
    int at;
  };
  const std::vector<Case> cases = {
      {"sigmoid-like scores, three logging steps", {sigmoid, sigmoid, sigmoid, sigmoid}, 2},
      {"tanh-like scores", {tanh, tanh, tanh}, 2},
      {"the model ends in a Sigmoid: two steps suffice", {known, known, known}, 1},
      {"twice is not enough without the model's word", {sigmoid, sigmoid, healthy, sigmoid}, -1},
      {"small logits at initialization reach no bound", {small_init, small_init, small_init}, -1},
      {"a zero-initialized head", {zero_head, zero_head, zero_head}, -1},
      {"a ReLU's exact zeros are relu_on_logits", {relu, relu, relu}, -1},
      {"a softmax's rows are softmax_before_loss", {softmax, softmax, softmax}, -1},
      {"healthy logits", {healthy, healthy, healthy}, -1},
  };
  for (const auto& c : cases) {
    dg::BoundedLogitsDetector d;
    EXPECT_EQ(first_step_firing(d, c.steps), c.at) << c.name;
  }
  dg::BoundedLogitsDetector d;
  std::optional<dg::Finding> f;
  for (const auto& s : {sigmoid, sigmoid, sigmoid}) f = f ? f : d.on_step(s);
  ASSERT_TRUE(f);
  EXPECT_NE(f->message.find("a cross-entropy of 1.46"), std::string::npos) << f->message;
  EXPECT_NE(f->remedy.find("remove the sigmoid after the last Linear layer"), std::string::npos)
      << f->remedy;
}

// Units that stay identical: constant initialization. Float noise between identical units is
// far below the threshold; a zero-initialized last layer that becomes different is healthy.
TEST(Detectors, SymmetricUnitsTable) {
  auto with_spread = [](int i, double first_spread, int64_t units = 64, bool weight = true) {
    auto s = step(i, 0.1, 0.1);
    s.layers[0].units = weight ? units : 0;
    s.layers[0].is_weight = weight;
    s.layers[0].unit_spread = first_spread;
    s.layers[2].units = 10;
    s.layers[2].unit_spread = 0.6;
    return s;
  };
  struct Case {
    std::string name;
    std::vector<dg::StepSignals> steps;
    int expected;
  };
  const std::vector<Case> cases = {
      {"zero-initialized hidden layer", repeat(5, [&](int i) { return with_spread(i, 0.0); }), 2},
      {"constant init, float noise 1e-7", repeat(5, [&](int i) { return with_spread(i, 1e-7); }),
       2},
      {"zero-initialized, different after 2 logging steps",
       repeat(6, [&](int i) { return with_spread(i, i < 2 ? 0.0 : 0.05); }), -1},
      {"spread 1e-3: near miss", repeat(6, [&](int i) { return with_spread(i, 1e-3); }), -1},
      {"default initialization", repeat(6, [&](int i) { return with_spread(i, 0.58); }), -1},
      {"a single output unit is never symmetric",
       repeat(6, [&](int i) { return with_spread(i, 0.0, 1); }), -1},
      {"not a weight", repeat(6, [&](int i) { return with_spread(i, 0.0, 64, false); }), -1},
  };
  for (const auto& c : cases) {
    dg::SymmetricUnitsDetector d;
    EXPECT_EQ(first_step_firing(d, c.steps), c.expected) << c.name;
  }
  dg::SymmetricUnitsDetector d;
  auto f = first_finding(d, repeat(3, [&](int i) {
                           auto zero = with_spread(i, 0.0);
                           zero.layers[0].weight_norm = 0.0;
                           return zero;
                         }));
  ASSERT_TRUE(f);
  EXPECT_NE(f->message.find("64 units of '0.weight' are identical (all zero)"), std::string::npos)
      << f->message;
  EXPECT_NE(f->remedy.find("initialize the weights randomly"), std::string::npos);
}

// Gradients that the optimizer never applies: a layer outside the optimizer, or lr 0.
TEST(Detectors, StuckParametersTable) {
  auto stuck = [](int i, double update, double grad = 0.5, double weight = 3.0, double lr = 1e-3) {
    auto s = step(i, 0.1, 0.1);
    s.lr = lr;
    s.layers.push_back({"head.weight", grad, weight, update, 0.0, true});
    return s;
  };
  struct Case {
    std::string name;
    std::vector<dg::StepSignals> steps;
    int expected;
  };
  const std::vector<Case> cases = {
      {"a layer outside the optimizer", repeat(5, [&](int i) { return stuck(i, 0.0); }), 2},
      {"stepped", repeat(6, [&](int i) { return stuck(i, 1e-3); }), -1},
      {"no gradient: not this detector's", repeat(6, [&](int i) { return stuck(i, 0.0, 0.0); }),
       -1},
      {"a zero-initialized bias has no ratio: not judged",
       repeat(6, [&](int i) { return stuck(i, 0.0, 0.5, 0.0); }), -1},
      {"unchanged at 2 logging steps only",
       repeat(6, [&](int i) { return stuck(i, i == 1 || i == 2 ? 0.0 : 1e-3); }), -1},
      {"steps skipped for a NaN",
       repeat(6,
              [&](int i) {
                auto s = stuck(i, 0.0);
                s.non_finite = true;
                return s;
              }),
       -1},
  };
  for (const auto& c : cases) {
    dg::StuckParametersDetector d;
    EXPECT_EQ(first_step_firing(d, c.steps), c.expected) << c.name;
  }
  auto finding = [&](double lr) {
    dg::StuckParametersDetector d;
    return first_finding(d, repeat(3, [&](int i) { return stuck(i, 0.0, 0.5, 3.0, lr); }));
  };
  auto missing = finding(1e-3), zero_lr = finding(0.0);
  ASSERT_TRUE(missing && zero_lr);
  EXPECT_NE(missing->message.find("1 of 4 parameter tensors get a gradient (up to 0.5)"),
            std::string::npos)
      << missing->message;
  EXPECT_NE(missing->message.find("'head.weight'"), std::string::npos);
  EXPECT_NE(missing->remedy.find("optimizer"), std::string::npos);
  EXPECT_NE(zero_lr->remedy.find("the learning rate is 0"), std::string::npos) << zero_lr->remedy;
  EXPECT_EQ(zero_lr->changes().at(0).first, "train.lr");
}

// A training loss that stays where it started, against runs that learn, even slowly.
TEST(Detectors, LossNotMovingTable) {
  struct Case {
    std::string name;
    double first_logged;
    std::vector<double> train;
    int expected;  // epoch
  };
  const std::vector<Case> cases = {
      {"lr 0: the same loss every epoch", 2.3026, {2.3031, 2.3029, 2.3030}, 2},
      {"within 5% of the first batch, flat", 2.40, {2.30, 2.299, 2.298}, 2},
      {"healthy", 2.1, {0.9, 0.6, 0.5}, -1},
      {"plateau after learning: moved from the start", 2.3, {0.50, 0.499, 0.498}, -1},
      {"slow but moving 2% per epoch", 2.3, {2.25, 2.20, 2.15, 2.10}, -1},
      {"flat first epoch-to-epoch, then learning", 2.3, {2.28, 1.5, 1.0}, -1},
  };
  for (const auto& c : cases) {
    dg::StillLossDetector d;
    dg::StepSignals s = step(0, 0.1, 0.1, -1, c.first_logged);
    d.on_step(s);
    std::vector<dg::EpochSignals> epochs;
    for (size_t i = 0; i < c.train.size(); ++i)
      epochs.push_back(epoch(int64_t(i) + 1, c.train[i], NAN, NAN, NAN, 20));
    EXPECT_EQ(first_epoch_firing(d, epochs), c.expected) << c.name;
  }
  // The first logged loss survives a checkpoint: a resumed fit fires where the whole one does.
  dg::StillLossDetector before;
  before.on_step(step(0, 0.1, 0.1, -1, 2.3026));
  before.on_epoch(epoch(1, 2.3031, NAN, NAN, NAN, 20));
  dg::StillLossDetector after;
  after.load_state(before.save_state());
  dg::Finding f;
  EXPECT_EQ(first_epoch_firing(after, {epoch(2, 2.3029, NAN, NAN, NAN, 20)}, &f), 2);
  EXPECT_NE(f.message.find("has not moved"), std::string::npos) << f.message;
}

// A budget of too few optimizer steps, said once after the first epoch, with a batch size that
// gives enough.
TEST(Detectors, TooFewStepsForTheBudget) {
  auto first = [](int64_t steps_per_epoch, int64_t batch, int64_t max_epochs, int64_t at = 1) {
    auto e = epoch(at, 1.0, NAN, NAN, NAN, max_epochs);
    e.steps_per_epoch = steps_per_epoch;
    e.batch_size = batch;
    return e;
  };
  dg::FewStepsDetector d;
  auto f = d.on_epoch(first(3, 4096, 10));
  ASSERT_TRUE(f);
  EXPECT_NE(f->message.find("only 30 optimizer steps (3 per epoch of batch 4096, for 10 epochs)"),
            std::string::npos)
      << f->message;
  ASSERT_EQ(f->changes().size(), 2u);
  EXPECT_EQ(f->changes()[0], (std::pair<std::string, std::string>{"train.batch_size", "256"}));
  EXPECT_EQ(f->changes()[1], (std::pair<std::string, std::string>{"train.max_epochs", "167"}));
  EXPECT_FALSE(d.on_epoch(first(3, 4096, 10, 2))) << "said once, after the first epoch";
  EXPECT_FALSE(d.on_epoch(first(15, 128, 6))) << "90 steps are enough to judge";
  EXPECT_FALSE(d.on_epoch(first(5, 32, 10))) << "50 steps: at the threshold";
  EXPECT_TRUE(d.on_epoch(first(7, 32, 7)));
  auto small = d.on_epoch(first(2, 8, 5));
  ASSERT_TRUE(small);
  EXPECT_EQ(small->changes().at(0).first, "train.max_epochs") << "no smaller batch to propose";
}

// Regression outputs held in a bounded activation's range while the targets lie beyond it.
TEST(Detectors, UnreachableTargetsTable) {
  struct Out {
    double lo, hi, zeros, near_one, near_zero, near_minus_one;
    double above_one, below_zero, below_minus_one;
    int64_t count = 128;
  };
  auto signals = [](const Out& o) {
    auto s = step(1, 0.1, 0.1);
    s.regression_outputs = true;
    s.output_count = o.count;
    s.output_min = o.lo, s.output_max = o.hi, s.zero_fraction = o.zeros;
    s.near_one = o.near_one, s.near_zero = o.near_zero, s.near_minus_one = o.near_minus_one;
    s.targets_above_one = o.above_one, s.targets_below_zero = o.below_zero;
    s.targets_below_minus_one = o.below_minus_one;
    return s;
  };
  struct Case {
    std::string name;
    Out out;
    int expected;
    std::string activation;
  };
  const std::vector<Case> cases = {
      {"sigmoid output, targets up to 50",
       {0.02, 0.99995, 0, 0.6, 0.0, 0, 0.8, 0, 0},
       2,
       "a sigmoid"},
      {"relu output, standardized targets",
       {0.0, 2.7, 0.45, 0.1, 0.46, 0, 0.2, 0.4, 0.1},
       2,
       "a ReLU"},
      {"tanh output, targets below -1",
       {-0.9999, 0.9999, 0, 0.1, 0, 0.3, 0.02, 0.5, 0.3},
       2,
       "a tanh"},
      {"linear head at init: small outputs, nothing pinned",
       {-0.3, 0.4, 0, 0, 0.01, 0, 0.9, 0, 0},
       -1,
       ""},
      {"sigmoid on targets in [0, 1]", {0.001, 0.998, 0, 0.3, 0.2, 0, 0, 0, 0}, -1, ""},
      {"relu output, targets never negative", {0.0, 9.0, 0.3, 0.05, 0.3, 0, 0.9, 0, 0}, -1, ""},
      {"a batch of 16 outputs is too few to judge",
       {0.02, 0.99995, 0, 0.6, 0.0, 0, 0.8, 0, 0, 16},
       -1,
       ""},
  };
  for (const auto& c : cases) {
    dg::UnreachableTargetsDetector d;
    std::vector<dg::StepSignals> steps(5, signals(c.out));
    EXPECT_EQ(first_step_firing(d, steps), c.expected) << c.name;
    if (c.expected < 0) continue;
    dg::UnreachableTargetsDetector again;
    auto f = first_finding(again, {steps.begin(), steps.begin() + 3});
    ASSERT_TRUE(f) << c.name;
    EXPECT_NE(f->message.find(c.activation), std::string::npos) << c.name << ": " << f->message;
  }
  // A model that ends in the activation: its bound is known, pinned or not.
  struct Known {
    std::string activation;
    Out out;
    int expected;
    std::string shown = "";
  };
  for (const auto& k : std::vector<Known>{
           {"sigmoid", {0.3, 0.7, 0, 0, 0, 0, 0.8, 0, 0, 16}, 2, "Sigmoid"},
           {"relu", {0.0, 3.0, 0.01, 0, 0.01, 0, 0.5, 0.3, 0.1}, 2, "ReLU"},
           {"softplus", {0.01, 3.0, 0, 0, 0, 0, 0.5, 0.3, 0.1}, 2, "Softplus"},
           {"tanh", {-0.5, 0.5, 0, 0, 0, 0, 0.2, 0.5, 0.02}, 2, "Tanh"},
           {"tanh", {-0.5, 0.5, 0, 0, 0, 0, 0.0, 0.5, 0.0}, -1},
           {"relu", {0.0, 9.0, 0.3, 0.05, 0.3, 0, 0.9, 0, 0}, -1},
       }) {
    auto s = signals(k.out);
    s.output_activation = k.activation;
    dg::UnreachableTargetsDetector d;
    EXPECT_EQ(first_step_firing(d, {s, s, s, s}), k.expected) << k.activation;
    if (k.expected < 0) continue;
    dg::UnreachableTargetsDetector again;
    auto f = first_finding(again, {s, s, s});
    ASSERT_TRUE(f);
    EXPECT_NE(f->message.find("the model's last layer, a " + k.shown), std::string::npos)
        << f->message;
  }
  auto classification = signals({0.02, 0.99995, 0, 0.6, 0.0, 0, 0.8, 0, 0});
  classification.regression_outputs = false;
  dg::UnreachableTargetsDetector d;
  EXPECT_EQ(first_step_firing(d, {classification, classification, classification}), -1);
}

// Frozen BatchNorm layers whose running statistics keep moving: left in training mode.
TEST(Detectors, FrozenBatchNormStatisticsThatMove) {
  auto norms = [](int i, double drift) {
    auto s = step(i, 0.1, 0.1);
    s.frozen_norms = {{"features.1", drift}, {"features.5", drift / 2}};
    return s;
  };
  struct Case {
    std::string name;
    std::vector<dg::StepSignals> steps;
    int expected;
  };
  const std::vector<Case> cases = {
      {"moving 5% per interval", repeat(5, [&](int i) { return norms(i, 0.05); }), 2},
      {"still (momentum 0)", repeat(6, [&](int i) { return norms(i, 0.0); }), -1},
      {"moving 0.05%: near miss", repeat(6, [&](int i) { return norms(i, 5e-4); }), -1},
      {"no frozen BatchNorm in training mode", repeat(6, [](int i) { return step(i, 0.1, 0.1); }),
       -1},
  };
  for (const auto& c : cases) {
    dg::FrozenNormDriftDetector d;
    EXPECT_EQ(first_step_firing(d, c.steps), c.expected) << c.name;
  }
  dg::FrozenNormDriftDetector d;
  auto f = first_finding(d, repeat(3, [&](int i) { return norms(i, 0.05); }));
  ASSERT_TRUE(f);
  EXPECT_NE(f->message.find("BatchNorm layer 'features.1' moved by 5%"), std::string::npos)
      << f->message;
  EXPECT_NE(f->message.find("2 of 2 frozen BatchNorm layers"), std::string::npos);
  EXPECT_EQ(f->changes().at(0), (std::pair<std::string, std::string>{"finetune.train_bn", "true"}));
}

// Batch advice from the gradient noise scale: only far from it, only with enough estimates.
TEST(Detectors, BatchAdviceFromTheGradientNoiseScale) {
  auto epoch_with = [](double noise, int64_t batch, int64_t samples) {
    auto e = epoch(1, 1.0, NAN);
    e.noise_scale = noise, e.batch_size = batch, e.examples_per_step = batch;
    e.noise_samples = samples;
    return e;
  };
  dg::BatchNoiseDetector d;
  auto large = d.on_epoch(epoch_with(300, 4096, 20));
  ASSERT_TRUE(large);
  EXPECT_EQ(large->severity, dg::Severity::kInfo);
  EXPECT_NE(large->message.find("critical batch size near 300"), std::string::npos)
      << large->message;
  EXPECT_EQ(large->changes().at(0),
            (std::pair<std::string, std::string>{"train.batch_size", "256"}));
  auto small = d.on_epoch(epoch_with(3000, 32, 20));
  ASSERT_TRUE(small);
  EXPECT_NE(small->message.find("93.75x smaller"), std::string::npos) << small->message;
  EXPECT_EQ(small->changes().at(0).second, "4096");
  EXPECT_FALSE(d.on_epoch(epoch_with(300, 1024, 20))) << "3.4x: near enough";
  EXPECT_FALSE(d.on_epoch(epoch_with(300, 4096, 4))) << "too few estimates";
  EXPECT_FALSE(d.on_epoch(epoch_with(NAN, 4096, 20))) << "not measured";
  EXPECT_FALSE(d.on_epoch(epoch_with(-5, 4096, 20))) << "a negative estimate is noise";
}

// Calibrated on healthy runs: a well-trained tanh MLP sits near 55% saturated late in training,
// so between half and 70% is an info finding; inputs that saturate a layer outright warn.
TEST(Detectors, SaturationBetweenHalfAndSeventyPercentIsInfoAboveAWarning) {
  auto saturated = [](double share) {
    dg::SaturationDetector d;
    return first_finding(d, repeat(3, [&](int i) {
                           auto s = step(i, 0.1, 0.1);
                           s.activations = {{"2:tanh", "tanh", 0.0, share}};
                           return s;
                         }));
  };
  ASSERT_TRUE(saturated(0.55));
  EXPECT_EQ(saturated(0.55)->severity, dg::Severity::kInfo);
  EXPECT_EQ(saturated(0.8)->severity, dg::Severity::kWarning);
  EXPECT_FALSE(saturated(0.45));
}

// The step past the edge of stability: lr_eff x sharpness above 2 at three measured logging
// steps in a row. A step that does not descend on its own batch (slope >= 0) or was not
// measured neither counts nor breaks the streak; a step back under the edge does.
TEST(Detectors, SharpnessPastTheEdgeOfStability) {
  // A step of length 0.1 whose parabola has slope -0.01 and curvature `ratio` x 0.01.
  auto probe = [](double ratio, double slope = -0.01) {
    return [=](int i) {
      auto s = step(i, 0.1, 0.1);
      s.lr = 0.1;
      s.step_norm = 0.1;
      s.step_slope = slope;
      s.step_curvature = ratio * 0.01;
      return s;
    };
  };
  auto unmeasured = [](int i) { return step(i, 0.1, 0.1); };
  auto seq = [](std::vector<std::function<dg::StepSignals(int)>> fs) {
    std::vector<dg::StepSignals> out;
    for (size_t i = 0; i < fs.size(); ++i) out.push_back(fs[i](int(i)));
    return out;
  };
  struct Case {
    std::string name;
    std::vector<dg::StepSignals> steps;
    int expected;
  };
  const std::vector<Case> cases = {
      {"overshooting 4x the floor", repeat(4, probe(4.0)), 2},
      {"at the edge (the self-stabilized regime)", repeat(8, probe(1.9)), -1},
      {"one step back under the edge breaks the streak",
       seq({probe(3), probe(3), probe(1.5), probe(3), probe(3)}), -1},
      {"unmeasured and ascending steps wait",
       seq({probe(3), unmeasured, probe(3, 0.02), probe(3), probe(3)}), 4},
      {"never measured", repeat(5, unmeasured), -1},
  };
  for (const auto& c : cases) {
    dg::SharpnessDetector d;
    EXPECT_EQ(first_step_firing(d, c.steps), c.expected) << c.name;
  }
  dg::SharpnessDetector d;
  auto f = first_finding(d, seq({probe(4), probe(5), probe(8)}));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->severity, dg::Severity::kWarning);
  // Sharpness 0.08 / 0.1^2 = 8 against 2 / lr_eff = 2 x 0.01 / 0.1^2 = 2; median ratio 5.
  EXPECT_NE(f->message.find("sharpness 8, above the 2/lr_eff = 2"), std::string::npos)
      << f->message;
  EXPECT_NE(f->message.find("lr_eff x sharpness 5, median of 3"), std::string::npos);
  EXPECT_EQ(f->changes().at(0), (std::pair<std::string, std::string>{"train.lr", "0.02"}));
  // The streak survives a checkpoint.
  dg::SharpnessDetector a, b;
  a.on_step(probe(4)(0));
  a.on_step(probe(4)(1));
  b.load_state(a.save_state());
  EXPECT_TRUE(b.on_step(probe(4)(2)));
}
