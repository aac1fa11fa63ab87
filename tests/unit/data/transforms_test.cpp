#include <gtest/gtest.h>
#include <trainscope/config.h>
#include <trainscope/session/settings.h>
#include <trainscope/data/data.h>
#include <trainscope/error.h>
#include <trainscope/models/models.h>
#include <trainscope/train/trainer.h>

#include <cmath>

namespace ts = trainscope;
namespace td = trainscope::data;

namespace {

#include "golden/transforms_golden.inc"

torch::Tensor golden(const float* values, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(values), shape, torch::kFloat32).clone().unsqueeze(0);
}

torch::Tensor images(int64_t b = 16, int64_t c = 1, int64_t h = 28, int64_t w = 28,
                     uint64_t seed = 1) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::rand({b, c, h, w}, gen, torch::kFloat32);
}

td::Batch batch_of(torch::Tensor x) {
  return {x, torch::arange(x.size(0), torch::kInt64).remainder(10)};
}

torch::Tensor angle(double deg) { return torch::full({1}, deg, torch::kFloat64); }

// The inverse (output -> input) matrix of torchvision's affine: input = M (out - t).
torch::Tensor affine_matrix(double deg, double tx, double ty, double scale) {
  const double a = deg * M_PI / 180.0, c = std::cos(a) / scale, s = std::sin(a) / scale;
  return torch::tensor({c, s, -(c * tx + s * ty), -s, c, -(-s * tx + c * ty)}, torch::kFloat64)
      .view({1, 2, 3});
}

}  // namespace

TEST(Transforms, HflipTwiceIsTheIdentity) {
  auto x = images();
  auto flip = td::random_flip(/*horizontal=*/true, /*p=*/1.0);
  auto gen = td::augment_generator(0, 1, 0);
  auto once = flip->apply(batch_of(x), gen);
  EXPECT_TRUE(torch::equal(once.x, x.flip(-1)));
  auto twice = flip->apply(once, gen);
  EXPECT_TRUE(torch::equal(twice.x, x));
}

TEST(Transforms, FlipFusedIntoTheResamplingIsExact) {
  auto x = images(8, 2, 10, 12);
  auto gen = td::augment_generator(0, 1, 0);
  auto h = td::parse_augmentation({"hflip(1)", "crop(pad=0)"})->apply(batch_of(x), gen).x;
  EXPECT_TRUE(torch::equal(h, x.flip(-1)));
  auto v = td::parse_augmentation({"crop(pad=0)", "vflip(1)"})->apply(batch_of(x), gen).x;
  EXPECT_TRUE(torch::equal(v, x.flip(-2)));
}

TEST(Transforms, FlipWithHalfProbabilityFlipsSomeImagesWhole) {
  auto x = images(64);
  auto gen = td::augment_generator(0, 1, 0);
  auto out = td::random_flip(false, 0.5)->apply(batch_of(x), gen).x;
  int flipped = 0, kept = 0;
  for (int64_t i = 0; i < x.size(0); ++i) {
    if (torch::equal(out[i], x[i]))
      ++kept;
    else if (torch::equal(out[i], x[i].flip(-2)))
      ++flipped;
  }
  EXPECT_EQ(flipped + kept, 64);  // every image is either untouched or mirrored as a whole
  EXPECT_GT(flipped, 10);
  EXPECT_GT(kept, 10);
}

TEST(Transforms, RotateBy90MatchesRot90) {
  auto x = images(4, 2, 28, 28);
  for (auto mode : {td::Interpolation::kNearest, td::Interpolation::kBilinear}) {
    auto out = td::rotate(x, torch::full({4}, 90.0), mode);
    EXPECT_TRUE(torch::allclose(out, torch::rot90(x, 1, {2, 3}), 1e-5, 1e-5));
    auto back = td::rotate(x, torch::full({4}, -90.0), mode);
    EXPECT_TRUE(torch::allclose(back, torch::rot90(x, -1, {2, 3}), 1e-5, 1e-5));
  }
}

// Golden values: tests/unit/data/golden/make_transforms_golden.py (torchvision's functions).
TEST(Transforms, RotationMatchesTorchvision) {
  auto x = golden(kRampInput, {1, 8, 8});
  EXPECT_TRUE(torch::allclose(td::rotate(x, angle(30), td::Interpolation::kBilinear),
                              golden(kRotate30Bilinear, {1, 8, 8}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(td::rotate(x, angle(-17), td::Interpolation::kBilinear),
                              golden(kRotateMinus17Bilinear, {1, 8, 8}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(td::rotate(x, angle(30), td::Interpolation::kNearest),
                           golden(kRotate30Nearest, {1, 8, 8})));
  auto rgb = golden(kRampInputRgb, {3, 6, 9});
  EXPECT_TRUE(torch::equal(td::rotate(rgb, angle(45), td::Interpolation::kNearest),
                           golden(kRotate45NearestRgb, {3, 6, 9})));
}

TEST(Transforms, AffineWithTranslationAndScaleMatchesTorchvision) {
  auto x = golden(kRampInput, {1, 8, 8});
  auto out =
      td::affine_sample(x, affine_matrix(12, 2, -1, 1.1), 8, 8, td::Interpolation::kBilinear);
  EXPECT_TRUE(torch::allclose(out, golden(kAffine12T2m1S11Bilinear, {1, 8, 8}), 1e-5, 1e-5));
}

TEST(Transforms, ResizedCropMatchesTorchvisionInside) {
  // Box top 1, left 2, 5 high, 4 wide, resized to 6x6. torchvision crops first and clamps at the
  // box's edge; sampling the whole image reads the real neighbours there, so the outer ring of
  // output pixels differs by design and the inside must match.
  auto x = golden(kRampInput, {1, 8, 8});
  auto m = torch::tensor({4.0 / 6, 0.0, 2 + 2 - 4.0, 0.0, 5.0 / 6, 1 + 2.5 - 4.0}, torch::kFloat64)
               .view({1, 2, 3});
  auto out = td::affine_sample(x, m, 6, 6, td::Interpolation::kBilinear);
  using torch::indexing::Slice;
  auto inside = [](const torch::Tensor& t) {
    return t.index({Slice(), Slice(), Slice(1, 5), Slice(1, 5)});
  };
  EXPECT_TRUE(
      torch::allclose(inside(out), inside(golden(kResizedCrop1245To6, {1, 6, 6})), 1e-5, 1e-5));
}

TEST(Transforms, CropWithPaddingShiftsWholePixelsAndFillsBlack) {
  td::PixelStats stats{{0.25}, {0.5}};  // black is (0 - 0.25) / 0.5 = -0.5
  auto x = images(32, 1, 12, 12);
  auto crop = td::parse_augmentation({"crop(12, pad=2)"}, {stats, 10});
  auto gen = td::augment_generator(3, 1, 0);
  auto out = crop->apply(batch_of(x), gen).x;
  for (int64_t i = 0; i < x.size(0); ++i) {
    bool found = false;
    for (int dy = -2; dy <= 2 && !found; ++dy)
      for (int dx = -2; dx <= 2 && !found; ++dx) {
        auto padded = torch::constant_pad_nd(x[i], {2, 2, 2, 2}, -0.5);
        using torch::indexing::Slice;
        auto window = padded.index({Slice(), Slice(2 - dy, 14 - dy), Slice(2 - dx, 14 - dx)});
        found = torch::allclose(out[i], window, 1e-6, 1e-6);  // fill is added back: float rounding
      }
    EXPECT_TRUE(found) << "image " << i << " is not a whole-pixel shift of its input";
  }
}

// Colour images normalized per channel: raw values survive the round trip, black borders stay
// black in every channel, and brightness acts on the raw pixels.
TEST(Transforms, PerChannelNormalization) {
  const td::PixelStats stats{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  auto raw = torch::rand({8, 3, 10, 10});
  const auto x = stats.normalize(raw);
  EXPECT_NEAR(x[0][1][0][0].item<double>(), (raw[0][1][0][0].item<double>() - 0.456) / 0.224, 1e-5);
  EXPECT_TRUE(torch::allclose(stats.raw(x), raw, 1e-5, 1e-5));
  const auto black = stats.black(x.options());
  ASSERT_TRUE(black.defined());
  EXPECT_TRUE(torch::allclose(stats.raw(black), torch::zeros({1, 3, 1, 1}), 1e-6, 1e-6));
  EXPECT_FALSE(td::PixelStats{}.black(x.options()).defined()) << "raw inputs: black is 0";

  auto gen = td::augment_generator(3, 1, 0);
  const auto cropped = td::parse_augmentation({"crop(10, pad=3)"}, {stats, 10})
                           ->apply(batch_of(stats.normalize(torch::ones({8, 3, 10, 10}))), gen)
                           .x;
  // Every pixel is white (raw 1) or the black border (raw 0), in each channel alike.
  const auto back = stats.raw(cropped);
  EXPECT_TRUE(back.sub(1).abs().lt(1e-5).logical_or(back.abs().lt(1e-5)).all().item<bool>());
  EXPECT_GT(back.abs().lt(1e-5).sum().item<int64_t>(), 0) << "some border is shown";
  EXPECT_TRUE(torch::equal(back.abs().lt(1e-5).select(1, 0), back.abs().lt(1e-5).select(1, 2)));

  const auto brighter = td::parse_augmentation({"brightness(0.5)"}, {stats, 10})
                            ->apply(batch_of(stats.normalize(torch::full({64, 3, 4, 4}, 0.5))), gen)
                            .x;
  const auto b = stats.raw(brighter);  // each image scaled by one factor in all channels
  EXPECT_TRUE(torch::allclose(b.select(1, 0), b.select(1, 2), 1e-5, 1e-5));
  EXPECT_GT(b.max().item<double>(), 0.6);
  EXPECT_LT(b.min().item<double>(), 0.4);
}

TEST(PixelStats, PerChannelStatisticsAndWhatTheyMustHold) {
  auto raw = torch::rand({16, 3, 6, 6});
  raw.select(1, 2).fill_(0.25);  // a constant channel: std 1, not 0
  const auto s = td::pixel_stats(raw);
  ASSERT_EQ(s.mean.size(), 3u);
  EXPECT_NEAR(s.mean[0], raw.select(1, 0).mean().item<double>(), 1e-6);
  EXPECT_NEAR(s.std[1], raw.select(1, 1).std().item<double>(), 1e-6);
  EXPECT_NEAR(s.mean[2], 0.25, 1e-6);
  EXPECT_EQ(s.std[2], 1.0);
  EXPECT_EQ(s.str().substr(0, 6), "mean [");
  EXPECT_EQ((td::PixelStats{{0.5}, {0.25}}).str(), "mean 0.5000, std 0.2500");
  s.check(3);
  td::PixelStats{{0.5}, {0.25}}.check(3);  // one value for all channels
  try {
    s.check(1, "data.mean, data.std");
    FAIL() << "three means for one channel";
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("expected 1 value or one per channel (1)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW((td::PixelStats{{0.5}, {0.0}}).check(1), ts::ConfigError);
}

TEST(Transforms, ErasingStaysInBounds) {
  const int64_t h = 20, w = 24;
  auto x = torch::ones({64, 3, h, w});
  auto gen = td::augment_generator(0, 1, 0);
  auto out = td::random_erasing(1.0)->apply(batch_of(x), gen).x;
  EXPECT_EQ(out.sizes(), x.sizes());
  for (int64_t i = 0; i < out.size(0); ++i) {
    auto zero = out[i][0].eq(0);
    const int64_t n = zero.sum().item<int64_t>();
    ASSERT_GT(n, 0) << "p=1 erases every image";
    EXPECT_LE(n, int64_t(0.33 * h * w) + h + w);  // area <= 0.33 up to rounding of the sides
    // The erased pixels are one axis-aligned rectangle inside the image, the same in every channel.
    auto rows = zero.any(1).nonzero().squeeze(1), cols = zero.any(0).nonzero().squeeze(1);
    const int64_t r0 = rows.min().item<int64_t>(), r1 = rows.max().item<int64_t>();
    const int64_t c0 = cols.min().item<int64_t>(), c1 = cols.max().item<int64_t>();
    EXPECT_EQ(n, (r1 - r0 + 1) * (c1 - c0 + 1));
    EXPECT_TRUE(r0 >= 0 && r1 < h && c0 >= 0 && c1 < w);
    EXPECT_TRUE(torch::equal(out[i][1].eq(0), zero) && torch::equal(out[i][2].eq(0), zero));
  }
}

TEST(Transforms, SameSeedGivesTheSameAugmentedBatch) {
  auto aug = td::parse_augmentation({"hflip", "rotate(10)", "crop(28, pad=2)", "scale(0.9, 1.1)",
                                     "resized_crop(28, min_scale=0.5)", "brightness(0.2)",
                                     "contrast(0.2)", "erase", "mixup(0.4)", "cutmix(1.0)"},
                                    {{{0.3}, {0.35}}, 10});
  ASSERT_TRUE(aug);
  auto x = images(32);
  auto run = [&](uint64_t seed, int64_t epoch, int64_t batch) {
    auto gen = td::augment_generator(seed, epoch, batch);
    return aug->apply(batch_of(x), gen);
  };
  auto a = run(7, 2, 5), b = run(7, 2, 5);
  EXPECT_TRUE(torch::equal(a.x, b.x));
  EXPECT_TRUE(torch::equal(a.y, b.y));
  EXPECT_EQ(a.y.sizes(), (std::vector<int64_t>{32, 10}));  // mixup/cutmix: class probabilities
  EXPECT_TRUE(torch::allclose(a.y.sum(1), torch::ones({32})));
  EXPECT_FALSE(torch::equal(run(7, 2, 6).x, a.x));
  EXPECT_FALSE(torch::equal(run(8, 2, 5).x, a.x));
}

TEST(Transforms, BrightnessAndContrastStayInTheRawRange) {
  td::PixelStats stats{{0.5}, {0.25}};
  auto raw = images(16, 3, 8, 8);
  auto x = (raw - 0.5) / 0.25;
  auto gen = td::augment_generator(0, 1, 0);
  for (const char* item : {"brightness(0.9)", "contrast(0.9)"}) {
    auto out = td::parse_augmentation({item}, {stats, 0})->apply(batch_of(x), gen).x * 0.25 + 0.5;
    EXPECT_GE(out.min().item<float>(), -1e-6) << item;
    EXPECT_LE(out.max().item<float>(), 1 + 1e-6) << item;
    EXPECT_FALSE(torch::allclose(out, raw)) << item;
  }
}

TEST(Transforms, ParseFusesGeometryAndNamesBadItems) {
  auto aug = td::parse_augmentation({"hflip", "rotate(10)", "crop(28, pad=2)", "erase(p=0.25)"});
  auto* compose = dynamic_cast<td::Compose*>(aug.get());
  ASSERT_NE(compose, nullptr);
  EXPECT_EQ(compose->transforms().size(), 2u);  // flip, rotate and crop share one resampling
  EXPECT_EQ(aug->describe(), "[\"hflip, rotate(10), crop(28, pad=2)\", \"erase(p=0.25)\"]");
  auto alone = td::parse_augmentation({"hflip", "erase"});
  EXPECT_EQ(dynamic_cast<td::Compose*>(alone.get())->transforms().size(),
            2u);  // nothing to fuse with
  EXPECT_EQ(td::parse_augmentation({}), nullptr);

  auto message = [](std::vector<std::string> items) {
    try {
      td::parse_augmentation(items, {{}, 10});
    } catch (const ts::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({"hflip", "rotat(10)"}).find("item 2 \"rotat(10)\": unknown transform 'rotat'"),
            std::string::npos);
  EXPECT_NE(message({"rotate(abc)"}).find("argument 'abc' is not a number"), std::string::npos);
  EXPECT_NE(message({"rotate"}).find("missing argument 'degrees'"), std::string::npos);
  EXPECT_NE(message({"crop(28, pad=2"}).find("missing ')'"), std::string::npos);
  EXPECT_NE(message({"crop(28, padding=2)"}).find("unknown argument 'padding'"), std::string::npos);
  EXPECT_NE(message({"hflip(2)"}).find("p must be a probability"), std::string::npos);
  EXPECT_NE(message({"rotate(10, 20)"}).find("at most 1 arguments"), std::string::npos);
}

TEST(Transforms, RejectTabularBatches) {
  auto gen = td::augment_generator(0, 1, 0);
  td::Batch tab{torch::zeros({4, 5}), torch::zeros({4}, torch::kInt64)};
  EXPECT_THROW(td::random_flip(true)->apply(tab, gen), ts::DataError);
}

TEST(Transforms, ConfigCarriesAugmentListsFromTextAndToml) {
  ts::Config c = ts::default_config();
  c.set_from_string("data.augment=[hflip, \"crop(28, pad=2)\", rotate(10)]");
  EXPECT_EQ(c.get_strings("data.augment"),
            (std::vector<std::string>{"hflip", "crop(28, pad=2)", "rotate(10)"}));
  EXPECT_EQ(ts::to_toml_literal(c.setting("data.augment").value),
            "[\"hflip\", \"crop(28, pad=2)\", \"rotate(10)\"]");
  c.set_from_string("data.augment=[]");
  EXPECT_TRUE(c.get_strings("data.augment").empty());
  EXPECT_THROW(c.set_from_string("data.augment=[crop(28, pad=2]"), ts::ConfigError);
  EXPECT_THROW(c.set("data.augment", int64_t{3}), ts::ConfigError);
}

// A transform that records what it was given: the Trainer must augment training batches only.
class SpyTransform : public td::Transform {
 public:
  mutable int64_t calls = 0, examples = 0;
  td::Batch apply(td::Batch b, at::Generator&) const override {
    ++calls;
    examples += b.x.size(0);
    return b;
  }
  std::string describe() const override { return "spy"; }
};

TEST(Transforms, TrainerAugmentsTrainingBatchesOnlyAndReportsDataWait) {
  auto x = images(100, 1, 8, 8), y = torch::arange(100, torch::kInt64).remainder(3);
  auto train = std::make_shared<td::TensorDataset>(x, y);
  auto val = std::make_shared<td::TensorDataset>(images(40, 1, 8, 8, 2),
                                                 torch::zeros({40}, torch::kInt64));
  auto spy = std::make_shared<SpyTransform>();
  ts::Trainer trainer(ts::TrainerOptions().max_epochs(2).batch_size(32).runs_dir("").augment(spy));
  ts::models::MlpOptions mlp;
  mlp.in_features = 64, mlp.hidden = {8}, mlp.outputs = 3;
  ts::Model model = ts::models::mlp(mlp);
  auto fit = trainer.fit(model, train, val);
  EXPECT_EQ(spy->calls, 2 * 4);  // 4 training batches per epoch, none of validation
  EXPECT_EQ(spy->examples, 2 * 100);
  trainer.test(model, *val);
  EXPECT_EQ(spy->calls, 8);
  ASSERT_TRUE(fit.train_metrics.count("data_wait_fraction"));
  EXPECT_GE(fit.train_metrics.at("data_wait_fraction"), 0.0);
  EXPECT_LE(fit.train_metrics.at("data_wait_fraction"), 1.0);
}
