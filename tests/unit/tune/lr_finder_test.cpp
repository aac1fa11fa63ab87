// The lr suggestion on synthetic curves, and the range test on a real model.
#include <trainscope/tune/lr_finder.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

namespace ts = trainscope;
namespace tn = trainscope::tune;

namespace {

// A clean valley: flat, a descent centred at 1e-3, a minimum near 1e-2, then divergence.
tn::LrCurve valley(double noise = 0.0) {
  tn::LrCurve c;
  for (int i = 0; i < 100; ++i) {
    const double lr = 1e-7 * std::pow(1e8, i / 99.0), x = std::log10(lr);
    double loss = 2.3 - 1.5 / (1 + std::exp(-3.0 * (x + 3.0)));  // sigmoid descent around 1e-3
    if (x > -2) loss += 3.0 * (x + 2) * (x + 2);                 // divergence past 1e-2
    loss += noise * std::sin(37.0 * i);
    c.lrs.push_back(lr);
    c.losses.push_back(loss);
    c.smoothed.push_back(loss);
  }
  return c;
}

}  // namespace

TEST(LrFinder, SuggestsTheSteepestDescent) {
  auto s = tn::suggest_lr(valley());
  EXPECT_TRUE(s.confident) << s.reason;
  EXPECT_GT(s.lr, 5e-4);
  EXPECT_LT(s.lr, 2e-3);
  EXPECT_NE(s.reason.find("steepest descent"), std::string::npos);
}

TEST(LrFinder, FlatOrTooShortCurvesFallBack) {
  tn::LrCurve flat;
  for (int i = 0; i < 50; ++i) {
    flat.lrs.push_back(1e-7 * std::pow(10.0, i / 6.0));
    flat.losses.push_back(2.3 + 0.01 * std::sin(i));
    flat.smoothed.push_back(2.3 + 0.01 * std::sin(i));
  }
  auto s = tn::suggest_lr(flat, 1e-3);
  EXPECT_FALSE(s.confident);
  EXPECT_DOUBLE_EQ(s.lr, 1e-3);
  EXPECT_NE(s.reason.find("never fell by 10%"), std::string::npos) << s.reason;

  tn::LrCurve tiny;
  tiny.lrs = {1e-3, 1e-2};
  tiny.losses = tiny.smoothed = {2.0, 1.0};
  EXPECT_FALSE(tn::suggest_lr(tiny).confident);
}

TEST(LrFinder, RangeTestOnARealModelFindsAUsableLrAndRestoresIt) {
  torch::manual_seed(0);
  auto y = torch::randint(0, 3, {2048});
  auto x = torch::randn({3, 16}).index_select(0, y) + 0.5 * torch::randn({2048, 16});
  auto data = std::make_shared<ts::data::TensorDataset>(x, y);
  ts::Model model(torch::nn::Sequential(torch::nn::Linear(16, 32), torch::nn::ReLU(),
                                        torch::nn::Linear(32, 3)));
  auto before = model.snapshot();
  tn::LrFinderOptions o;
  o.batch_size = 64;
  auto curve = tn::lr_range_test(model, *data, o);
  ASSERT_GE(curve.lrs.size(), 20u);
  EXPECT_LT(curve.lrs.size(), 101u);
  EXPECT_GT(curve.lrs.back(), curve.lrs.front());
  auto s = tn::suggest_lr(curve);
  EXPECT_TRUE(s.confident) << s.reason;
  EXPECT_GT(s.lr, 1e-5);
  EXPECT_LT(s.lr, 1.0);
  auto after = model.snapshot();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i]));

  auto png = std::filesystem::temp_directory_path() /
             ("ts_lr_find_" + std::to_string(::getpid()) + ".png");
  tn::plot_lr_curve(curve, s, png);
  EXPECT_GT(std::filesystem::file_size(png), 1000u);
  std::filesystem::remove(png);
}
