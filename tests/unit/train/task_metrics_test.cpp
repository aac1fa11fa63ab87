// Losses, metrics and test reports of the multilabel, segmentation and sequence tasks, each
// against the same numbers computed another way (torch's own functions on reshaped tensors, or
// counts by hand).
#include <trainscope/error.h>
#include <trainscope/train/loss.h>
#include <trainscope/train/metric.h>
#include <trainscope/train/metrics.h>
#include <trainscope/train/monitor.h>

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

namespace ts = trainscope;
namespace F = torch::nn::functional;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// The built-in loss of `kind` for `task`, with the other options at their defaults.
ts::LossFunction loss_of(ts::Task task, ts::Loss kind) {
  ts::LossOptions o;
  o.kind = kind;
  return ts::make_loss(task, o);
}

}  // namespace

TEST(TaskLoss, MultilabelIsBceWithLogitsWithPositiveWeightsAndSmoothing) {
  torch::manual_seed(1);
  const auto logits = torch::randn({5, 3});
  const auto y = torch::randint(0, 2, {5, 3}).to(torch::kFloat32);
  const auto plain = ts::make_loss(ts::Task::kMultilabel, {})(logits, y);
  EXPECT_NEAR(plain.item<double>(), F::binary_cross_entropy_with_logits(logits, y).item<double>(),
              1e-6);
  // By hand: -mean(w y log s + (1 - y) log(1 - s)) with the label's weight on its positives.
  const auto s = torch::sigmoid(logits);
  const auto w = torch::tensor({1.0F, 3.0F, 0.5F});
  const auto by_hand = -(w * y * s.log() + (1 - y) * (1 - s).log()).mean();
  ts::LossOptions weighted;
  weighted.class_weights = {1.0, 3.0, 0.5};
  EXPECT_NEAR(ts::make_loss(ts::Task::kMultilabel, weighted)(logits, y).item<double>(),
              by_hand.item<double>(), 1e-5);
  ts::LossOptions smooth;
  smooth.label_smoothing = 0.2;
  const auto soft = y * 0.8 + 0.1;
  EXPECT_NEAR(ts::make_loss(ts::Task::kMultilabel, smooth)(logits, y).item<double>(),
              F::binary_cross_entropy_with_logits(logits, soft).item<double>(), 1e-6);
}

TEST(TaskLoss, SegmentationAndSequenceAreCrossEntropyOverPositionsWithoutPadding) {
  torch::manual_seed(2);
  const auto seg = torch::randn({2, 4, 3, 3});
  const auto mask = torch::randint(0, 4, {2, 3, 3});
  const auto rows = seg.permute({0, 2, 3, 1}).reshape({-1, 4});
  EXPECT_NEAR(ts::make_loss(ts::Task::kSegmentation, {})(seg, mask).item<double>(),
              torch::cross_entropy_loss(rows, mask.reshape(-1)).item<double>(), 1e-6);

  // [batch, time, classes] with the second sequence padded after two steps.
  const auto seq = torch::randn({2, 4, 5});
  const auto tags = torch::tensor({{1, 0, 4, 2}, {3, 3, -100, -100}});
  const auto real = torch::tensor({0, 1, 2, 3, 4, 5});  // the unpadded rows of [8, 5]
  EXPECT_NEAR(ts::make_loss(ts::Task::kSequence, {})(seq, tags).item<double>(),
              torch::cross_entropy_loss(seq.reshape({-1, 5}).index_select(0, real),
                                        tags.reshape(-1).index_select(0, real))
                  .item<double>(),
              1e-6);
  ts::LossOptions weighted;
  weighted.class_weights = {1, 2, 3, 4, 5};
  EXPECT_NO_THROW(ts::make_loss(ts::Task::kSequence, weighted)(seq, tags));
  weighted.class_weights = {1, 2, 3};
  const auto msg = error_of([&] { ts::make_loss(ts::Task::kSequence, weighted)(seq, tags); });
  EXPECT_NE(msg.find("train.class_weights has 3 weights but the model returns [2, 4, 5]"),
            std::string::npos)
      << msg;
}

TEST(TaskLoss, ALossThatDoesNotFitTheTaskNamesBoth) {
  const auto msg = error_of([] { (void)loss_of(ts::Task::kMultilabel, ts::Loss::kCrossEntropy); });
  EXPECT_NE(msg.find("train.loss = cross_entropy does not fit train.task = multilabel; expected "
                     "bce"),
            std::string::npos)
      << msg;
  EXPECT_THROW(loss_of(ts::Task::kSegmentation, ts::Loss::kBce), ts::ConfigError);
  EXPECT_THROW(loss_of(ts::Task::kRegression, ts::Loss::kBce), ts::ConfigError);
  EXPECT_THROW(loss_of(ts::Task::kClassification, ts::Loss::kBce), ts::ConfigError);
}

TEST(TaskMetrics, MultilabelAccuracyExactMatchAndPerLabelCounts) {
  ts::MetricAccumulator m(ts::Task::kMultilabel);
  // Predictions at logit 0: {1,0,1}, {0,0,1}; truth {1,1,1}, {0,0,0}.
  m.update(torch::tensor(0.5), torch::tensor({{2.0, -1.0, 0.5}, {-3.0, -0.1, 4.0}}),
           torch::tensor({{1.0, 1.0, 1.0}, {0.0, 0.0, 0.0}}));
  m.update(torch::tensor(0.25), torch::tensor({{1.0, 1.0, -1.0}}),
           torch::tensor({{1.0, 1.0, 0.0}}));
  const auto r = m.compute();
  EXPECT_NEAR(r.at("loss"), (2 * 0.5 + 0.25) / 3, 1e-12);
  EXPECT_NEAR(r.at("accuracy"), 7.0 / 9, 1e-12);     // 2 + 2 + 3 of 9 yes/no answers
  EXPECT_NEAR(r.at("exact_match"), 1.0 / 3, 1e-12);  // only the third example is all right
  EXPECT_FALSE(m.confusion().defined());
  // Per label: tp, fp, fn.
  EXPECT_TRUE(torch::equal(m.label_counts(),
                           torch::tensor({{2, 0, 0}, {1, 0, 1}, {1, 1, 0}}, torch::kInt64)))
      << m.label_counts();
  const auto per = ts::per_label_metrics(m.label_counts(), {"a", "b", "c"});
  EXPECT_EQ(per[1].name, "b");
  EXPECT_NEAR(per[1].recall, 0.5, 1e-12);
  EXPECT_NEAR(per[2].precision, 0.5, 1e-12);
  EXPECT_EQ(per[1].support, 2);
}

TEST(TaskMetrics, MultilabelPrecisionRecallF1MacroAndMicroAndAuroc) {
  const auto out = torch::tensor({{2.0, -1.0, 0.5}, {-3.0, -0.1, 4.0}, {1.0, 1.0, -1.0}});
  const auto y = torch::tensor({{1.0, 1.0, 1.0}, {0.0, 0.0, 0.0}, {1.0, 1.0, 0.0}});
  auto value = [&](const std::string& name) {
    auto metric = ts::make_metric(name, ts::Task::kMultilabel);
    metric->update(out.slice(0, 0, 1), y.slice(0, 0, 1));
    metric->update(out.slice(0, 1), y.slice(0, 1));
    return metric->compute();
  };
  // Counts per label (tp, fp, fn): a (2, 0, 0), b (1, 0, 1), c (1, 1, 0).
  const double f1_b = 2 * 1.0 * 0.5 / 1.5, f1_c = 2 * 0.5 * 1.0 / 1.5;
  EXPECT_NEAR(value("precision_macro"), (1 + 1 + 0.5) / 3, 1e-12);
  EXPECT_NEAR(value("recall_macro"), (1 + 0.5 + 1) / 3, 1e-12);
  EXPECT_NEAR(value("f1_macro"), (1 + f1_b + f1_c) / 3, 1e-12);
  // Pooled: tp 4, fp 1, fn 1.
  EXPECT_NEAR(value("precision_micro"), 4.0 / 5, 1e-12);
  EXPECT_NEAR(value("recall_micro"), 4.0 / 5, 1e-12);
  EXPECT_NEAR(value("f1_micro"), 4.0 / 5, 1e-12);
  // Per label, the share of (positive, negative) pairs ranked right:
  //   a: positives {2, 1}, negative {-3}: 1.   b: positives {-1, 1}, negative {-0.1}: 0.5.
  //   c: positive {0.5}, negatives {4, -1}: 0.5.
  EXPECT_NEAR(value("auroc"), (1.0 + 0.5 + 0.5) / 3, 1e-12);
  const auto msg = error_of([] { ts::make_metric("top2_accuracy", ts::Task::kMultilabel); });
  EXPECT_NE(msg.find("\"top2_accuracy\" does not fit train.task = multilabel; expected "
                     "precision_macro"),
            std::string::npos)
      << msg;
  EXPECT_THROW(ts::make_metric("miou", ts::Task::kMultilabel), ts::ConfigError);
}

TEST(TaskMetrics, SegmentationAccuracyAndMiouOverPixels) {
  // One 2x2 image of 3 classes; predictions [[0, 1], [1, 1]], truth [[0, 0], [1, 2]].
  auto logits = torch::zeros({1, 3, 2, 2});
  logits.index_put_({0, 0, 0, 0}, 5.0);
  logits.index_put_({0, 1, 0, 1}, 5.0);
  logits.index_put_({0, 1, 1, 0}, 5.0);
  logits.index_put_({0, 1, 1, 1}, 5.0);
  const auto mask = torch::tensor({{{0, 0}, {1, 2}}});
  ts::MetricAccumulator m(ts::Task::kSegmentation);
  m.update(torch::tensor(1.0), logits, mask);
  const auto r = m.compute();
  EXPECT_NEAR(r.at("accuracy"), 2.0 / 4, 1e-12);
  // IoU: class 0 1/2, class 1 1/3, class 2 0/1.
  EXPECT_NEAR(r.at("miou"), (0.5 + 1.0 / 3 + 0.0) / 3, 1e-12);
  const auto per = ts::per_class_metrics(m.confusion(), {}, /*iou=*/true);
  EXPECT_NEAR(per[1].iou, 1.0 / 3, 1e-12);
  EXPECT_EQ(per[0].support, 2);  // pixels
  // The metric of the same name agrees, and the per-position wrappers see pixels.
  auto miou = ts::make_metric("miou", ts::Task::kSegmentation);
  miou->update(logits, mask);
  EXPECT_NEAR(miou->compute(), r.at("miou"), 1e-12);
  auto f1 = ts::make_metric("f1_macro", ts::Task::kSegmentation);
  f1->update(logits, mask);
  EXPECT_NEAR(f1->compute(), (2.0 / 3 + 0.5 + 0) / 3, 1e-12);
}

TEST(TaskMetrics, SequencePaddingCountsNowhere) {
  // [batch 2, time 3, classes 2]; the second sequence is one step long.
  const auto out =
      torch::tensor({{{2.0, 0.0}, {0.0, 2.0}, {2.0, 0.0}}, {{0.0, 2.0}, {2.0, 0.0}, {2.0, 0.0}}});
  const auto tags = torch::tensor({{0, 1, 1}, {1, -100, -100}});
  ts::MetricAccumulator m(ts::Task::kSequence, /*with_confusion=*/true);
  m.update(torch::tensor(0.0), out, tags);
  const auto r = m.compute();
  EXPECT_NEAR(r.at("accuracy"), 3.0 / 4, 1e-12);
  EXPECT_EQ(m.confusion().sum().item<int64_t>(), 4);
  // class 0: tp 1, fp 1 -> 1/2; class 1: tp 2, fn 1 -> 2/3.
  EXPECT_NEAR(r.at("miou"), (0.5 + 2.0 / 3) / 2, 1e-12);
  auto top1 = ts::make_metric("top1_accuracy", ts::Task::kSequence);
  top1->update(out, tags);
  EXPECT_NEAR(top1->compute(), 3.0 / 4, 1e-12);
}

TEST(TaskMetrics, SegmentationStateResumesMidPass) {
  torch::manual_seed(3);
  const auto a = torch::randn({2, 3, 4, 4}), b = torch::randn({2, 3, 4, 4});
  const auto ma = torch::randint(0, 3, {2, 4, 4}), mb = torch::randint(0, 3, {2, 4, 4});
  const std::vector<std::shared_ptr<const ts::Metric>> metrics = {
      ts::make_metric("f1_macro", ts::Task::kSegmentation)};
  ts::MetricAccumulator whole(ts::Task::kSegmentation, false, metrics);
  whole.update(torch::tensor(1.0), a, ma);
  torch::serialize::OutputArchive saved;
  whole.save(saved);
  std::stringstream bytes;
  saved.save_to(bytes);
  whole.update(torch::tensor(2.0), b, mb);
  ts::MetricAccumulator resumed(ts::Task::kSegmentation, false, metrics);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  resumed.load(in);
  resumed.update(torch::tensor(2.0), b, mb);
  EXPECT_EQ(whole.compute(), resumed.compute());
}

TEST(TaskMetrics, TheTestReportAdaptsToTheTask) {
  ts::EvalResult labels;
  labels.task = ts::Task::kMultilabel;
  labels.samples = 3;
  labels.per_class = ts::per_label_metrics(torch::tensor({{2, 0, 0}, {1, 0, 1}}, torch::kInt64),
                                           {"outdoor", "people"});
  const std::string a = labels.report();
  EXPECT_EQ(a.rfind("label ", 0), 0u) << a;
  EXPECT_NE(a.find("outdoor"), std::string::npos);
  EXPECT_EQ(a.find("IoU"), std::string::npos);
  EXPECT_EQ(a.find("confusion"), std::string::npos);

  ts::EvalResult seg;
  seg.task = ts::Task::kSegmentation;
  seg.samples = 1;
  seg.confusion = torch::tensor({{1, 1, 0}, {0, 1, 0}, {0, 1, 0}}, torch::kInt64);
  seg.per_class = ts::per_class_metrics(seg.confusion, {"bg", "disc", "square"}, true);
  const std::string s = seg.report();
  EXPECT_NE(s.find("IoU"), std::string::npos) << s;
  EXPECT_NE(s.find("0.5000"), std::string::npos) << s;  // bg's IoU
  EXPECT_NE(s.find("confusion matrix of positions"), std::string::npos) << s;
}

TEST(TaskMetrics, ScoresAreMaximizedByAMonitorInAutoMode) {
  for (const char* name : {"val_miou", "val_auroc", "val_exact_match", "val_f1_micro"})
    EXPECT_TRUE(ts::Monitor::parse(name, "auto", "train.monitor").maximize) << name;
  EXPECT_FALSE(ts::Monitor::parse("val_loss", "auto", "train.monitor").maximize);
}
