#include <trainscope/error.h>
#include <trainscope/train/loss.h>
#include <trainscope/train/metric.h>
#include <trainscope/train/metrics.h>

#include <gtest/gtest.h>

namespace ts = trainscope;

TEST(Metrics, AccuracyAndLossAreExampleWeightedAcrossBatches) {
  ts::MetricAccumulator m(ts::Task::kClassification);
  // Batch 1: 3 examples, 2 right, mean loss 1.0. Batch 2: 1 example, right, mean loss 3.0.
  m.update(torch::tensor(1.0), torch::tensor({{2.0, 0.0}, {0.0, 1.0}, {5.0, 1.0}}),
           torch::tensor({0, 1, 1}));
  m.update(torch::tensor(3.0), torch::tensor({{0.0, 1.0}}), torch::tensor({1}));
  auto r = m.compute();
  EXPECT_NEAR(r.at("loss"), (3 * 1.0 + 1 * 3.0) / 4, 1e-12);
  EXPECT_NEAR(r.at("accuracy"), 3.0 / 4, 1e-12);
  EXPECT_EQ(m.count(), 4);
  EXPECT_FALSE(m.confusion().defined());
}

TEST(Metrics, ConfusionMatrixRowsAreTrueClasses) {
  ts::MetricAccumulator m(ts::Task::kClassification, /*with_confusion=*/true);
  // predictions: 0, 2, 2, 1 ; targets: 0, 2, 1, 1
  auto logits = torch::tensor({{9.0, 0.0, 0.0}, {0.0, 0.0, 9.0}, {0.0, 0.0, 9.0}, {0.0, 9.0, 0.0}});
  m.update(torch::tensor(0.5), logits, torch::tensor({0, 2, 1, 1}));
  auto c = m.confusion();
  auto expected = torch::tensor({{1, 0, 0}, {0, 1, 1}, {0, 0, 1}}, torch::kInt64);
  EXPECT_TRUE(torch::equal(c, expected)) << c;
}

TEST(Metrics, PerClassPrecisionRecallF1FromConfusion) {
  // rows true, cols predicted
  auto c = torch::tensor({{5, 1, 0}, {2, 3, 0}, {0, 0, 0}}, torch::kInt64);
  auto per = ts::per_class_metrics(c, {"a", "b", "c"});
  ASSERT_EQ(per.size(), 3u);
  EXPECT_EQ(per[0].name, "a");
  EXPECT_NEAR(per[0].precision, 5.0 / 7, 1e-12);
  EXPECT_NEAR(per[0].recall, 5.0 / 6, 1e-12);
  EXPECT_NEAR(per[0].f1, 2 * (5.0 / 7) * (5.0 / 6) / (5.0 / 7 + 5.0 / 6), 1e-12);
  EXPECT_EQ(per[0].support, 6);
  EXPECT_NEAR(per[1].precision, 3.0 / 4, 1e-12);
  EXPECT_NEAR(per[1].recall, 3.0 / 5, 1e-12);
  // A class never predicted and never present: all zero, no division by zero.
  EXPECT_EQ(per[2].precision, 0.0);
  EXPECT_EQ(per[2].recall, 0.0);
  EXPECT_EQ(per[2].f1, 0.0);
}

TEST(Metrics, RegressionMaeAndRmseOverAllValues) {
  ts::MetricAccumulator m(ts::Task::kRegression);
  m.update(torch::tensor(0.0), torch::tensor({{1.0, 2.0}, {3.0, 4.0}}),
           torch::tensor({{1.0, 0.0}, {3.0, 7.0}}));
  auto r = m.compute();
  // errors: 0, 2, 0, -3
  EXPECT_NEAR(r.at("mae"), 5.0 / 4, 1e-12);
  EXPECT_NEAR(r.at("rmse"), std::sqrt(13.0 / 4), 1e-12);
  EXPECT_EQ(r.count("accuracy"), 0u);
}

TEST(Metrics, ReportShowsEveryClassAndTheMatrix) {
  ts::EvalResult r;
  r.split = "test";
  r.samples = 11;
  r.confusion = torch::tensor({{5, 1}, {2, 3}}, torch::kInt64);
  r.per_class = ts::per_class_metrics(r.confusion, {"cat", "dog"});
  std::string text = r.report();
  EXPECT_NE(text.find("cat"), std::string::npos);
  EXPECT_NE(text.find("dog"), std::string::npos);
  EXPECT_NE(text.find("0.7143"), std::string::npos);  // precision of cat: 5/7
  EXPECT_NE(text.find("confusion matrix"), std::string::npos);
  EXPECT_NE(text.find("macro avg"), std::string::npos);
}

// The built-in losses against values worked out by hand.
TEST(Loss, BuiltInsGiveTheirDefinitions) {
  const auto logits = torch::tensor({{2.0, 0.0}, {0.0, 1.0}});
  const auto labels = torch::tensor({0, 0});
  auto ce = [&](const ts::LossOptions& o) {
    return ts::make_loss(ts::Task::kClassification, o)(logits, labels).item<double>();
  };
  const double l0 = std::log(1 + std::exp(-2.0)), l1 = std::log(1 + std::exp(1.0));
  EXPECT_NEAR(ce({}), (l0 + l1) / 2, 1e-6);
  // Weights 3 and 1 on class 0 and 1: both targets are class 0, so the mean is unchanged...
  EXPECT_NEAR(ce({ts::Loss::kCrossEntropy, {3.0, 1.0}}), (l0 + l1) / 2, 1e-6);
  // ...and with one target of each class it is the weighted mean.
  const auto mixed = torch::tensor({0, 1});
  const double m0 = l0, m1 = std::log(1 + std::exp(-1.0));
  EXPECT_NEAR(
      ts::make_loss(ts::Task::kClassification, {ts::Loss::kCrossEntropy, {3.0, 1.0}})(logits, mixed)
          .item<double>(),
      (3 * m0 + 1 * m1) / 4, 1e-6);
  // Label smoothing 0.2 over 2 classes: targets 0.9 / 0.1.
  const auto logp = torch::log_softmax(logits, 1);
  const double smoothed =
      -(0.9 * logp[0][0] + 0.1 * logp[0][1] + 0.9 * logp[1][0] + 0.1 * logp[1][1]).item<double>() /
      2;
  EXPECT_NEAR(ce({ts::Loss::kCrossEntropy, {}, 0.2}), smoothed, 1e-6);

  const auto out = torch::tensor({{0.5}, {3.0}}), y = torch::tensor({0.0, 0.0});
  auto reg = [&](ts::Loss kind, double delta = 1.0) {
    return ts::make_loss(ts::Task::kRegression, {kind, {}, 0.0, delta})(out, y).item<double>();
  };
  EXPECT_NEAR(reg(ts::Loss::kAuto), (0.25 + 9.0) / 2, 1e-6);
  EXPECT_NEAR(reg(ts::Loss::kL1), (0.5 + 3.0) / 2, 1e-6);
  // Huber, delta 1: 0.5 x^2 inside, delta (|x| - delta / 2) beyond.
  EXPECT_NEAR(reg(ts::Loss::kHuber), (0.125 + 2.5) / 2, 1e-6);
  EXPECT_NEAR(reg(ts::Loss::kHuber, 2.0), (0.125 + 2.0 * 2.0) / 2, 1e-6);
}

TEST(Loss, ALossThatDoesNotFitTheTaskNamesBoth) {
  try {
    ts::make_loss(ts::Task::kClassification, {ts::Loss::kMse});
    FAIL() << "expected a ConfigError";
  } catch (const ts::ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "train.loss = mse does not fit train.task = classification; expected "
                 "cross_entropy (on [batch, classes] logits)");
  }
  EXPECT_THROW(ts::make_loss(ts::Task::kRegression, {ts::Loss::kCrossEntropy}), ts::ConfigError);
  EXPECT_THROW(ts::make_loss(ts::Task::kClassification, {ts::Loss::kAuto, {}, 1.0}),
               ts::ConfigError);
  auto weighted = ts::make_loss(ts::Task::kClassification, {ts::Loss::kAuto, {1.0, 2.0, 3.0}});
  EXPECT_THROW(weighted(torch::zeros({2, 2}), torch::tensor({0, 1})), ts::ShapeError);
  const auto balanced = ts::balanced_class_weights(torch::tensor({0, 0, 0, 1}), 3);
  EXPECT_EQ(balanced, (std::vector<double>{4.0 / 9, 4.0 / 3, 0.0}));
}

// The built-in metrics against counts worked out by hand, across batches, merged and restored.
TEST(Metric, BuiltInsAccumulateOverBatchesAndMerge) {
  // Batch 1: predictions 0, 1, 1 (top-2 also 1, 0, 2) for targets 0, 0, 1.
  const auto out1 = torch::tensor({{3.0, 2.0, 0.0}, {1.0, 3.0, 0.0}, {0.0, 3.0, 1.0}});
  const auto y1 = torch::tensor({0, 0, 1});
  // Batch 2: prediction 2 for target 2.
  const auto out2 = torch::tensor({{0.0, 1.0, 3.0}}), y2 = torch::tensor({2});
  auto value = [&](const std::string& name) {
    auto m = ts::make_metric(name, ts::Task::kClassification);
    m->update(out1, y1);
    m->update(out2, y2);
    return m->compute();
  };
  EXPECT_DOUBLE_EQ(value("top1_accuracy"), 3.0 / 4);
  EXPECT_DOUBLE_EQ(value("top2_accuracy"), 4.0 / 4);
  // Per class: precision 1, 1/2, 1; recall 1/2, 1, 1; F1 2/3, 2/3, 1.
  EXPECT_NEAR(value("precision_macro"), (1 + 0.5 + 1) / 3, 1e-12);
  EXPECT_NEAR(value("recall_macro"), (0.5 + 1 + 1) / 3, 1e-12);
  EXPECT_NEAR(value("f1_macro"), (2.0 / 3 + 2.0 / 3 + 1) / 3, 1e-12);
  EXPECT_NEAR(value("f1_micro"), 3.0 / 4, 1e-12);
  // Two shards merged give the whole.
  auto a = ts::make_metric("f1_macro", ts::Task::kClassification);
  auto b = a->fresh();
  a->update(out1, y1);
  b->update(out2, y2);
  a->merge(*b);
  EXPECT_NEAR(a->compute(), value("f1_macro"), 1e-12);
  // R^2 of predictions 1, 2, 2 for targets 1, 2, 3: 1 - 1 / 2.
  auto r2 = ts::make_metric("r2", ts::Task::kRegression);
  r2->update(torch::tensor({{1.0}, {2.0}}), torch::tensor({1.0, 2.0}));
  r2->update(torch::tensor({{2.0}}), torch::tensor({3.0}));
  EXPECT_NEAR(r2->compute(), 0.5, 1e-12);
  EXPECT_TRUE(std::isnan(ts::make_metric("r2", ts::Task::kRegression)->compute()));
}

TEST(Metric, AnAccumulatorReportsItsMetricsAndCheckpointsThemMidPass) {
  const std::vector<std::shared_ptr<const ts::Metric>> metrics = {
      ts::make_metric("top2_accuracy", ts::Task::kClassification),
      ts::make_metric("f1_macro", ts::Task::kClassification)};
  ts::MetricAccumulator whole(ts::Task::kClassification, false, metrics);
  const auto out1 = torch::tensor({{3.0, 2.0, 0.0}, {1.0, 3.0, 0.0}, {0.0, 3.0, 1.0}});
  const auto out2 = torch::tensor({{0.0, 1.0, 3.0}});
  whole.update(torch::tensor(1.0), out1, torch::tensor({0, 0, 1}));
  torch::serialize::OutputArchive saved;
  whole.save(saved);
  std::stringstream bytes;
  saved.save_to(bytes);
  whole.update(torch::tensor(1.0), out2, torch::tensor({2}));
  ts::MetricAccumulator resumed(ts::Task::kClassification, false, metrics);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  resumed.load(in);
  resumed.update(torch::tensor(1.0), out2, torch::tensor({2}));
  const auto a = whole.compute(), b = resumed.compute();
  EXPECT_EQ(a, b);
  EXPECT_DOUBLE_EQ(a.at("top2_accuracy"), 1.0);
  EXPECT_NEAR(a.at("f1_macro"), (2.0 / 3 + 2.0 / 3 + 1) / 3, 1e-12);
}

TEST(Metric, AMetricThatDoesNotFitTheTaskNamesBoth) {
  try {
    ts::make_metric("r2", ts::Task::kClassification);
    FAIL() << "expected a ConfigError";
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"r2\" does not fit train.task = classification"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ts::make_metric("f1_macro", ts::Task::kRegression), ts::ConfigError);
  EXPECT_THROW(ts::make_metric("top0_accuracy", ts::Task::kClassification), ts::ConfigError);
  EXPECT_THROW(ts::make_metric("auroc", ts::Task::kRegression), ts::ConfigError);
  EXPECT_THROW(ts::make_metric("roc", ts::Task::kClassification), ts::ConfigError);
}

// AUROC from binned probabilities against the exact pairwise count: separable scores give 1,
// reversed ones 0, and random ones what counting every (positive, negative) pair gives.
TEST(Metric, AurocMatchesThePairwiseCount) {
  auto auroc = [](const torch::Tensor& logits, const torch::Tensor& y) {
    auto m = ts::make_metric("auroc", ts::Task::kClassification);
    m->update(logits.slice(0, 0, logits.size(0) / 2), y.slice(0, 0, y.size(0) / 2));
    m->update(logits.slice(0, logits.size(0) / 2), y.slice(0, y.size(0) / 2));
    return m->compute();
  };
  const auto y = torch::tensor({0, 0, 1, 1, 0, 1});
  const auto score = torch::tensor({-2.0, -1.0, 1.0, 2.0, -0.5, 0.5});
  const auto logits = torch::stack({torch::zeros_like(score), score}, 1);
  EXPECT_NEAR(auroc(logits, y), 1.0, 1e-12);
  EXPECT_NEAR(auroc(logits.neg(), y), 0.0, 1e-12);
  torch::manual_seed(4);
  const auto ry = torch::randint(0, 3, {600}, torch::kInt64);
  const auto rl = torch::randn({600, 3}) + torch::nn::functional::one_hot(ry, 3) * 0.8;
  const auto probs = torch::softmax(rl, 1);
  double exact = 0;
  for (int64_t c = 0; c < 3; ++c) {
    const auto p = probs.select(1, c);
    const auto pos = p.masked_select(ry.eq(c)), neg = p.masked_select(ry.ne(c));
    exact += (pos.unsqueeze(1) > neg.unsqueeze(0)).to(torch::kFloat64).mean().item<double>() / 3;
  }
  EXPECT_NEAR(auroc(rl, ry), exact, 5e-3);
}
