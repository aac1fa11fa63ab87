// Data checks on data with planted faults: copies across splits (exact, and shifted, brightened
// and noisy), flipped labels, broken examples, constant features, imbalance and class shift.
#include <trainscope/data/idx.h>
#include <trainscope/diagnose/data_checks.h>
#include <trainscope/error.h>

#include "shift_image.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

namespace ts = trainscope;
namespace dg = trainscope::diagnose;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::set<std::string> kinds(const dg::DataReport& r) {
  std::set<std::string> out;
  for (const auto& f : r.findings) out.insert(f.kind);
  return out;
}

const dg::Finding* finding(const dg::DataReport& r, const std::string& kind) {
  for (const auto& f : r.findings)
    if (f.kind == kind) return &f;
  return nullptr;
}

struct Images {
  torch::Tensor x, y;  // normalized [N, 1, 28, 28], int64 [N]
};

// The first n training (or test) images of Fashion-MNIST.
Images fashion(int64_t n, bool test) {
  ts::data::IdxOptions o;
  o.val_fraction = 0.0;
  o.limit = test ? 1 : n;
  o.test_limit = test ? n : 1;
  auto splits = ts::data::fashion_mnist(o);
  const auto& ds = test ? splits.test : splits.train;
  auto b = ds->get_batch(torch::arange(ds->size()));
  return {b.x, b.y};
}

ts::data::DataSplits image_splits(const Images& train, const Images& test) {
  ts::data::DataSplits s;
  s.train = std::make_shared<ts::data::TensorDataset>(train.x, train.y);
  s.test = std::make_shared<ts::data::TensorDataset>(test.x, test.y);
  s.num_classes = 10;
  s.input_shape = {1, 28, 28};
  s.source = "planted";
  return s;
}

}  // namespace

TEST(DataChecks, FindsExactAndNearCopiesAcrossSplitsAndLittleElse) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto train = fashion(4000, false);
  auto test = fashion(1000, true);
  // 20 exact copies and 40 near copies of training images planted in the test split: moved by
  // 1 to 3 pixels, brightness and contrast changed, a little noise added.
  torch::manual_seed(7);
  std::map<int64_t, int64_t> exact, near;  // test index -> training index
  std::map<int64_t, int64_t> moved_by;     // near copies: the larger of |dx| and |dy|
  auto pick = torch::randperm(4000).slice(0, 0, 60);
  for (int64_t k = 0; k < 60; ++k) {
    const int64_t t = 10 * k + 3, a = pick[k].item<int64_t>();
    auto img = train.x[a];
    if (k < 20) {
      test.x[t].copy_(img);
      exact[t] = a;
    } else {
      int64_t dx = (k % 7) - 3, dy = ((k / 7) % 7) - 3;
      if (dx == 0 && dy == 0) dx = 2;
      auto moved = trainscope::testing::shift_image(img, dx, dy);
      moved_by[t] = std::max(std::abs(dx), std::abs(dy));
      test.x[t].copy_(moved * (0.7 + 0.01 * double(k % 30)) + 0.2 +
                      0.03 * torch::randn_like(moved));
      near[t] = a;
    }
    test.y[t] = train.y[a];
  }
  auto r = dg::check_data(image_splits(train, test));
  ASSERT_TRUE(r.images);
  std::set<int64_t> found_exact, found_near, unplanted;
  for (const auto& p : r.duplicates) {
    ASSERT_EQ(p.split_a, "train");
    ASSERT_EQ(p.split_b, "test");
    if (p.kind == "exact" && exact.count(p.b) && exact[p.b] == p.a)
      found_exact.insert(p.b);
    else if (p.kind == "near" && near.count(p.b) && near[p.b] == p.a)
      found_near.insert(p.b);
    else if (!exact.count(p.b) && !near.count(p.b))
      unplanted.insert(p.b);
  }
  EXPECT_EQ(found_exact.size(), 20u);
  // Moved by up to 2 pixels: all found. By 3: an object that touches the border loses a strip,
  // which the retrieval embedding sees, so a few may be missed.
  int64_t small = 0, small_found = 0, large = 0, large_found = 0;
  for (const auto& [t, by] : moved_by) {
    (by <= 2 ? small : large) += 1;
    (by <= 2 ? small_found : large_found) += found_near.count(t);
  }
  EXPECT_EQ(small_found, small) << "near copies moved by up to 2 pixels";
  EXPECT_GE(double(large_found), 0.7 * double(large)) << "of " << large << " moved by 3 pixels";
  EXPECT_LE(unplanted.size(), 2u) << "test images paired that were not planted";
  EXPECT_EQ(r.exact_pairs, 20);
  const auto* f = finding(r, "data_split_copies");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, dg::Severity::kWarning);
  EXPECT_EQ(f->evidence.at("exact"), 20.0);
  EXPECT_NE(f->message.find("test accuracy counts them as unseen"), std::string::npos)
      << f->message;
  // Exact pairs come first, the JSON names the test and training indices of each pair.
  EXPECT_EQ(r.duplicates.front().kind, "exact");
  auto j = nlohmann::json::parse(dg::to_json(r));
  EXPECT_EQ(j["duplicates"][0]["train"], r.duplicates.front().a);
  EXPECT_EQ(j["duplicates"][0]["test"], r.duplicates.front().b);
}

TEST(DataChecks, FlippedLabelsBecomeSuspectsWithTheTrueClassSuggested) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto train = fashion(4000, false);
  auto test = fashion(1000, true);
  // 5% of training labels and 3% of test labels moved to another class.
  torch::manual_seed(3);
  std::map<int64_t, int64_t> flipped_train, flipped_test;  // index -> true label
  auto flip = [](Images& d, int64_t count, std::map<int64_t, int64_t>& out) {
    auto idx = torch::randperm(d.y.size(0)).slice(0, 0, count);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = idx[k].item<int64_t>(), truth = d.y[i].item<int64_t>();
      d.y[i] = (truth + 1 + torch::randint(9, {1}).item<int64_t>()) % 10;
      out[i] = truth;
    }
  };
  flip(train, 200, flipped_train);
  flip(test, 30, flipped_test);
  dg::DataCheckOptions o;
  o.max_suspects = 1000;
  auto r = dg::check_data(image_splits(train, test), o);
  ASSERT_TRUE(r.label_noise_checked);
  EXPECT_GT(r.oof_accuracy, 0.7);
  // Hits among all flagged, and among the most suspect as many as were planted.
  int64_t train_hits = 0, train_listed = 0, train_top = 0, test_hits = 0, test_listed = 0,
          test_top = 0, true_class = 0;
  for (const auto& s : r.label_suspects) {
    const bool train_split = s.split == "train";
    auto& flipped = train_split ? flipped_train : flipped_test;
    const bool hit = flipped.count(s.index) > 0;
    const int64_t rank = (train_split ? train_listed : test_listed)++;
    (train_split ? train_hits : test_hits) += hit;
    if (rank < int64_t(flipped.size())) (train_split ? train_top : test_top) += hit;
    true_class += hit && flipped[s.index] == s.suggested;
    EXPECT_NE(s.given, s.suggested);
    EXPECT_GT(s.suggested_probability, s.given_probability);
  }
  // Most flips are found, and most of the most suspect are flips (the cheap model is 80%
  // accurate here, so it flags some clean labels of confusable classes too).
  EXPECT_GE(train_hits, 140) << "of 200 flipped training labels; " << train_listed << " listed";
  EXPECT_GE(train_top, 100) << "flips among the 200 most suspect training labels";
  EXPECT_GE(test_hits, 20) << "of 30 flipped test labels; " << test_listed << " listed";
  EXPECT_GE(test_top, 15) << "flips among the 30 most suspect test labels";
  EXPECT_GE(double(true_class) / double(train_hits + test_hits), 0.8)
      << "the suggested label is the true one";
  // Sorted most suspect first within a split.
  for (size_t i = 1; i < r.label_suspects.size(); ++i) {
    if (r.label_suspects[i].split == r.label_suspects[i - 1].split) {
      EXPECT_LE(r.label_suspects[i].score, r.label_suspects[i - 1].score);
    }
  }
  const auto* f = finding(r, "data_label_suspects");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->evidence.at("train_suspects"), double(r.suspect_counts.front().second));
}

TEST(DataChecks, HeavyLabelNoiseIsAWarning) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto train = fashion(3000, false);
  torch::manual_seed(5);
  auto noisy = torch::rand({3000}) < 0.25;
  train.y =
      torch::where(noisy, (train.y + torch::randint(1, 10, {3000}, torch::kInt64)) % 10, train.y);
  auto r = dg::check_data(image_splits(train, fashion(300, true)));
  const auto* f = finding(r, "data_label_suspects");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, dg::Severity::kWarning) << f->message;
  EXPECT_GT(f->evidence.at("train_share"), 0.15);
}

TEST(DataChecks, CleanDataHasNoCopiesAndFewSuspectsAndIsDeterministic) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto splits = image_splits(fashion(3000, false), fashion(500, true));
  torch::manual_seed(42);
  auto rng_before = torch::rand({3});
  torch::manual_seed(42);
  auto a = dg::check_data(splits);
  EXPECT_TRUE(torch::equal(torch::rand({3}), rng_before))
      << "data checks must not consume the run's random numbers";
  EXPECT_EQ(a.exact_pairs, 0);
  EXPECT_LE(a.near_pairs, 2);
  EXPECT_FALSE(kinds(a).count("data_label_shift"));
  EXPECT_FALSE(kinds(a).count("data_class_imbalance"));
  const auto* f = finding(a, "data_label_suspects");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, dg::Severity::kInfo) << f->message;
  auto b = dg::check_data(splits);
  auto ja = nlohmann::json::parse(dg::to_json(a)), jb = nlohmann::json::parse(dg::to_json(b));
  ja.erase("seconds");
  jb.erase("seconds");
  EXPECT_EQ(ja, jb) << "same data, same seed: same report";
}

TEST(DataChecks, BrokenExamplesConstantFeaturesImbalanceAndShift) {
  // Tabular: 3 features, the third constant; class 0 outnumbers class 2 by 20x in training and
  // the test split holds class 2 only.
  torch::manual_seed(0);
  const int64_t n = 440;
  auto y =
      torch::cat({torch::zeros({400}), torch::ones({20}), torch::full({20}, 2)}).to(torch::kInt64);
  auto x = torch::randn({n, 3}) + y.unsqueeze(1).to(torch::kFloat32);
  x.select(1, 2).fill_(5.0);
  x[10][0] = std::numeric_limits<float>::quiet_NaN();
  x[11].fill_(5.0);  // every value equal (the constant feature's too)
  x[12][1] = std::numeric_limits<float>::infinity();
  ts::data::DataSplits s;
  s.train = std::make_shared<ts::data::TensorDataset>(x, y);
  auto tx = torch::randn({40, 3});
  s.test = std::make_shared<ts::data::TensorDataset>(tx, torch::full({40}, 2, torch::kInt64));
  s.num_classes = 3;
  s.input_shape = {3};
  s.feature_names = {"age", "income", "country"};
  s.class_names = {"low", "mid", "high"};
  s.source = "csv:planted.csv";
  auto r = dg::check_data(s);
  EXPECT_FALSE(r.images);
  auto k = kinds(r);
  EXPECT_TRUE(k.count("data_non_finite"));
  EXPECT_TRUE(k.count("data_constant_inputs"));
  EXPECT_TRUE(k.count("data_constant_features"));
  EXPECT_TRUE(k.count("data_class_imbalance"));
  EXPECT_TRUE(k.count("data_label_shift"));
  EXPECT_EQ(finding(r, "data_non_finite")->severity, dg::Severity::kError);
  EXPECT_EQ(finding(r, "data_non_finite")->evidence.at("examples"), 2.0);
  EXPECT_NE(finding(r, "data_class_imbalance")->message.find("low has 400 examples, mid 20"),
            std::string::npos)
      << finding(r, "data_class_imbalance")->message;
  EXPECT_NE(finding(r, "data_class_imbalance")->remedy.find("train.class_weights"),
            std::string::npos);
  std::set<std::pair<int64_t, std::string>> broken;
  bool country = false;
  for (const auto& b : r.broken) {
    if (b.index >= 0) broken.insert({b.index, b.problem});
    country |= b.feature == "country" && b.problem == "constant feature";
  }
  EXPECT_EQ(broken, (std::set<std::pair<int64_t, std::string>>{
                        {10, "non-finite values"}, {11, "constant"}, {12, "non-finite values"}}));
  EXPECT_TRUE(country) << "the constant feature is named";
  auto text = dg::to_text(r);
  EXPECT_NE(text.find("not looked for: near copies are found in images only"), std::string::npos)
      << text;
}

TEST(DataChecks, MissingClassRegressionAndBadOptions) {
  torch::manual_seed(0);
  ts::data::DataSplits s;
  auto x = torch::randn({60, 4});
  s.train = std::make_shared<ts::data::TensorDataset>(x, torch::arange(60).remainder(2));
  s.num_classes = 3;  // class 2 has no examples
  s.input_shape = {4};
  auto r = dg::check_data(s);
  ASSERT_NE(finding(r, "data_missing_class"), nullptr);
  EXPECT_NE(finding(r, "data_missing_class")->message.find("1 of 3 classes"), std::string::npos);

  s.num_classes = 0;  // regression: no label check
  s.train = std::make_shared<ts::data::TensorDataset>(x, torch::randn({60}));
  auto reg = dg::check_data(s);
  EXPECT_FALSE(reg.label_noise_checked);
  EXPECT_NE(dg::to_text(reg).find("not looked for (regression targets)"), std::string::npos);

  dg::DataCheckOptions bad;
  bad.near_correlation = 1.5;
  EXPECT_THROW(dg::check_data(s, bad), ts::ConfigError);
  bad = {};
  bad.folds = 1;
  EXPECT_THROW(dg::check_data(s, bad), ts::ConfigError);
  s.train = std::make_shared<ts::data::TensorDataset>(torch::zeros({0, 4}), torch::zeros({0}));
  EXPECT_THROW(dg::check_data(s), ts::DataError);
}

TEST(DataChecks, SourceIndicesPointIntoTheFileTheSplitCameFrom) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  ts::data::IdxOptions o;
  o.limit = 2000;
  o.test_limit = 300;
  auto splits = ts::data::fashion_mnist(o);
  ASSERT_TRUE(splits.val);
  // Plant a copy of a validation image in the test split: the pair names the training file's row.
  auto val = splits.val->get_batch(torch::arange(splits.val->size()));
  auto test = splits.test->get_batch(torch::arange(splits.test->size()));
  test.x[5].copy_(val.x[17]);
  splits.test = std::make_shared<ts::data::TensorDataset>(test.x, test.y);
  splits.test_origin = torch::arange(300);
  dg::DataCheckOptions opt;
  opt.label_noise = false;
  auto r = dg::check_data(splits, opt);
  bool found = false;
  for (const auto& p : r.duplicates)
    if (p.kind == "exact" && p.split_a == "val" && p.split_b == "test" && p.a == 17 && p.b == 5) {
      found = true;
      EXPECT_EQ(p.a_source, splits.val_origin[17].item<int64_t>());
      EXPECT_EQ(p.b_source, 5);
    }
  EXPECT_TRUE(found);
  // The raw training file holds the validation image at its origin.
  auto all = ts::data::read_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  auto raw = all[splits.val_origin[17].item<int64_t>()].to(torch::kFloat32) / 255.0;
  auto back = splits.pixels.raw(val.x[17]).squeeze(0);
  EXPECT_LT((raw - back).abs().max().item<float>(), 1e-4);
}
