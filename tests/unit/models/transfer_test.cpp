// Transfer learning through the library: the head is found (or refused with the candidates),
// resized and trained alone on a frozen backbone whose tensors, BatchNorm statistics included,
// come out bit-identical; the optimizer holds only the head until FineTuning unfreezes the
// backbone as a new parameter group with its own lr, at once or group by group.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

namespace ts = trainscope;
namespace nn = torch::nn;

namespace {

// A small CNN with BatchNorm on 1x8x8 inputs: conv 4 - bn - relu - pool, flatten, linear 16,
// relu, linear 3 (the zoo's layout).
ts::Model small_cnn(int64_t outputs = 3) {
  torch::manual_seed(0);
  ts::models::CnnOptions o;
  o.height = o.width = 8;
  o.channels = {4};
  o.hidden = {16};
  o.outputs = outputs;
  return ts::models::cnn(o);
}

std::shared_ptr<ts::data::TensorDataset> images(int64_t n, int64_t classes, uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randn({n, 1, 8, 8});
  auto y = (x.mean({1, 2, 3}) * 10).floor().remainder(classes).to(torch::kInt64).abs();
  return std::make_shared<ts::data::TensorDataset>(x, y);
}

ts::TrainerOptions quiet(int64_t epochs) {
  return ts::TrainerOptions().runs_dir("").max_epochs(epochs).batch_size(16);
}

// Records the optimizer's groups at every batch: how many tensors, which, at what lr.
class GroupProbe : public ts::Callback {
 public:
  std::string name() const override { return "group_probe"; }
  void on_train_batch_end(ts::TrainState& s) override {
    std::vector<std::pair<int64_t, double>> groups;
    for (const auto& g : s.optimizer->param_groups())
      groups.push_back({static_cast<int64_t>(g.params().size()), g.options().get_lr()});
    by_epoch[s.epoch] = groups;
    std::vector<double> lrs;
    for (const auto& g : groups) lrs.push_back(g.second);
    lrs_by_step.push_back(lrs);
    for (const auto& g : s.optimizer->param_groups())
      for (const auto& p : g.params()) optimized.insert(p.unsafeGetTensorImpl());
  }
  std::map<int64_t, std::vector<std::pair<int64_t, double>>> by_epoch;
  std::vector<std::vector<double>> lrs_by_step;  // each step's group lrs
  std::set<const void*> optimized;
};

}  // namespace

TEST(Transfer, TheHeadIsTheLastLinearLayer) {
  auto mlp = ts::models::mlp();  // flatten, linear 256, relu, linear 128, relu, linear 10
  EXPECT_EQ(ts::models::find_head(mlp).describe(), "5 (128 -> 10)");
  const auto layers = ts::models::linear_layers(mlp);
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].describe(), "1 (784 -> 256)");
  EXPECT_EQ(ts::models::find_head(small_cnn()).describe(), "7 (16 -> 3)");
}

TEST(Transfer, AnAmbiguousOrWrongHeadIsAConfigErrorListingTheCandidates) {
  ts::Model probs(nn::Sequential(nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 3), nn::Softmax(1)),
                  "probs");
  auto message = [&](const std::string& name) {
    try {
      ts::models::find_head(probs, name);
    } catch (const ts::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(""),
            "the last layer of probs is '3' (a Softmax), not a Linear, so which layer is the head "
            "is ambiguous; name it with --head (finetune.head). Its Linear layers are: 0 (4 -> 8), "
            "2 (8 -> 3)");
  EXPECT_EQ(ts::models::find_head(probs, "2").describe(), "2 (8 -> 3)");
  EXPECT_NE(message("1").find("layer '1' of probs is a ReLU, not a Linear"), std::string::npos);
  EXPECT_NE(message("9").find("probs has no layer named '9'"), std::string::npos);
}

TEST(Transfer, ReplaceHeadResizesTheOutputAndLeavesTheBackbone) {
  auto model = small_cnn(3);
  const auto before = model.module().named_parameters();
  std::map<std::string, torch::Tensor> copies;
  for (const auto& item : before) copies[item.key()] = item.value().clone();
  const auto head = ts::models::replace_head(model, 5);
  EXPECT_EQ(head.describe(), "7 (16 -> 5)");
  EXPECT_EQ(model.forward(torch::randn({2, 1, 8, 8})).sizes(), (std::vector<int64_t>{2, 5}));
  for (const auto& item : model.module().named_parameters())
    if (item.key().rfind("7.", 0) != 0) {
      EXPECT_TRUE(torch::equal(item.value(), copies[item.key()])) << item.key();
    }
  // A new head starts at zero: every class equally likely, a first loss of exactly log(5).
  const auto y = torch::tensor({0, 4}, torch::kInt64);
  EXPECT_FLOAT_EQ(
      torch::cross_entropy_loss(model.forward(torch::randn({2, 1, 8, 8})), y).item<float>(),
      std::log(5.0f));
  // On request torch's Linear init: uniform in +-1/sqrt(in_features).
  ts::models::replace_head(model, 5, "", ts::models::HeadInit::kTorch);
  const auto w = model.module().named_parameters()["7.weight"];
  EXPECT_GT(w.abs().max().item<double>(), 0.0);
  EXPECT_LE(w.abs().max().item<double>(), 0.25);
}

// torchvision's fc, timm's ClassifierHead (fc, then a Flatten), a head behind a Dropout.
TEST(Transfer, TheHeadMayBeFollowedByLayersThatPassTheValuesOn) {
  struct Net : nn::Module {
    Net() {
      body = register_module("body", nn::Linear(4, 8));
      fc = register_module("fc", nn::Linear(8, 3));
      flatten = register_module("flatten", nn::Flatten());
    }
    nn::Linear body{nullptr}, fc{nullptr};
    nn::Flatten flatten{nullptr};
  };
  auto net = std::make_shared<Net>();
  ts::Model timm_like(
      net,
      [net](const torch::Tensor& x) { return net->flatten(net->fc(torch::relu(net->body(x)))); },
      "timm_like");
  EXPECT_EQ(ts::models::find_head(timm_like).describe(), "fc (8 -> 3)");
  ts::Model dropped(nn::Sequential(nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 3), nn::Dropout(0.2),
                                   nn::Identity()),
                    "dropped");
  EXPECT_EQ(ts::models::find_head(dropped).describe(), "2 (8 -> 3)");
}

// The features come from the model's own forward with the head as the identity: exactly what
// the layers before the head give, and the head is put back as it was.
TEST(Transfer, HeadInputsAreWhatTheHeadReceives) {
  auto model = small_cnn(3);
  const auto head = ts::models::find_head(model);
  const auto x = torch::randn({5, 1, 8, 8});
  model.eval();
  torch::NoGradGuard no_grad;
  auto seq = std::dynamic_pointer_cast<nn::SequentialImpl>(model.ptr());
  ASSERT_TRUE(seq);
  torch::Tensor before_head = x;
  size_t layer = 0;
  for (auto& any : *seq)
    if (++layer < seq->size()) before_head = any.forward(before_head);
  const auto weight = model.module().named_parameters()["7.weight"].clone();
  const auto features = ts::models::head_inputs(model, head, x);
  EXPECT_EQ(features.sizes(), (std::vector<int64_t>{5, 16}));
  EXPECT_TRUE(torch::equal(features, before_head));
  EXPECT_TRUE(torch::equal(model.module().named_parameters()["7.weight"], weight));
  EXPECT_TRUE(torch::allclose(ts::head_model(model, head).forward(features), model.forward(x)));
  EXPECT_EQ(ts::check_head_outputs(model, head, x), "");
  ts::Model probs(nn::Sequential(nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 3), nn::Softmax(1)),
                  "probs");
  EXPECT_NE(ts::check_head_outputs(probs, ts::models::find_head(probs, "2"), torch::randn({4, 4}))
                .find("something after '2' changes them"),
            std::string::npos);
}

TEST(Transfer, AFrozenBackboneIsBitIdenticalAfterTrainingAndOutOfTheOptimizer) {
  auto model = small_cnn(3);
  const auto head = ts::models::replace_head(model, 4);
  EXPECT_EQ(ts::models::freeze_backbone(model, head), 6);  // conv w, b; bn w, b; linear 16 w, b
  std::map<std::string, torch::Tensor> backbone;
  for (const auto& item : model.module().named_parameters())
    if (item.key().rfind("7.", 0) != 0) backbone[item.key()] = item.value().clone();
  for (const auto& item : model.module().named_buffers())
    backbone[item.key()] = item.value().clone();
  const auto head_before = model.module().named_parameters()["7.weight"].clone();

  ts::Trainer trainer(quiet(3));
  auto probe = std::make_shared<GroupProbe>();
  trainer.add_callback(probe);
  trainer.fit(model, images(128, 4, 1), images(64, 4, 2));

  // Only the head's weight and bias were ever in the optimizer.
  EXPECT_EQ(probe->optimized.size(), 2u);
  auto params = model.module().named_parameters();
  EXPECT_TRUE(probe->optimized.count(params["7.weight"].unsafeGetTensorImpl()));
  EXPECT_TRUE(probe->optimized.count(params["7.bias"].unsafeGetTensorImpl()));
  // Backbone weights and BatchNorm statistics (running mean, var, batches tracked) unchanged.
  for (const auto& item : model.module().named_parameters())
    if (backbone.count(item.key())) {
      EXPECT_TRUE(torch::equal(item.value(), backbone[item.key()])) << item.key();
    }
  for (const auto& item : model.module().named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), backbone[item.key()])) << item.key();
  EXPECT_FALSE(torch::equal(params["7.weight"], head_before)) << "the head trained";
}

TEST(Transfer, UnfreezingAddsTheBackboneAsAGroupWithItsOwnLr) {
  auto model = small_cnn(3);
  ts::models::freeze_backbone(model, ts::models::replace_head(model, 4));
  const auto conv_before = model.module().named_parameters()["0.weight"].clone();
  const auto bn_mean = model.module().named_buffers()["1.running_mean"].clone();
  ts::callbacks::FineTuningOptions o;
  o.unfreeze_at_epoch = 2;
  o.backbone_lr_ratio = 0.1;
  ts::Trainer trainer(quiet(3).lr(2e-3));
  auto probe = std::make_shared<GroupProbe>();
  trainer.add_callback(std::make_shared<ts::callbacks::FineTuning>(o, nullptr));
  trainer.add_callback(probe);
  trainer.fit(model, images(128, 4, 1), images(64, 4, 2));
  using Groups = std::vector<std::pair<int64_t, double>>;
  EXPECT_EQ(probe->by_epoch[1], (Groups{{2, 2e-3}}));
  EXPECT_EQ(probe->by_epoch[2].size(), 2u);
  EXPECT_EQ(probe->by_epoch[2][1].first, 6) << "the six backbone tensors";
  EXPECT_DOUBLE_EQ(probe->by_epoch[2][1].second, 2e-4) << "head lr x 0.1";
  EXPECT_EQ(probe->by_epoch[3], probe->by_epoch[2]) << "once";
  EXPECT_FALSE(torch::equal(model.module().named_parameters()["0.weight"], conv_before));
  // train_bn is off: the statistics stay the pretrained ones even once the backbone trains.
  EXPECT_TRUE(torch::equal(model.module().named_buffers()["1.running_mean"], bn_mean));
}

// The head phase on cached features trains the same head as recomputing the frozen backbone in
// every step (the same computation here, without dropout), and the backbone stays bit-identical.
TEST(Transfer, CachedAndUncachedHeadTrainingGiveTheSameHead) {
  std::map<std::string, torch::Tensor> initial;  // the backbone's parameters and buffers
  const auto source = small_cnn(3);
  for (const auto& item : source.module().named_parameters()) initial[item.key()] = item.value();
  for (const auto& item : source.module().named_buffers()) initial[item.key()] = item.value();
  auto fit = [](bool cached, std::string& cache_line) {
    auto model = small_cnn(3);
    const auto head = ts::models::replace_head(model, 4);
    ts::models::freeze_backbone(model, head);
    ts::Trainer trainer(quiet(3).head(head.name).cache_features(cached));
    cache_line = trainer.fit(model, images(128, 4, 1), images(64, 4, 2)).feature_cache;
    return model;
  };
  std::string cached_line, uncached_line;
  const auto cached = fit(true, cached_line), uncached = fit(false, uncached_line);
  EXPECT_NE(cached_line.find("the frozen backbone's features cached"), std::string::npos)
      << cached_line;
  EXPECT_NE(cached_line.find("128 training + 64 validation examples x 16 values"),
            std::string::npos)
      << cached_line;
  EXPECT_EQ(uncached_line, "head phase without a feature cache: caching is off");
  auto a = cached.module().named_parameters(), b = uncached.module().named_parameters();
  for (const auto& item : a)
    if (item.key().rfind("7.", 0) != 0) {
      EXPECT_TRUE(torch::equal(item.value(), initial[item.key()])) << item.key();
    }
  for (const auto& item : cached.module().named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), initial[item.key()])) << item.key();
  EXPECT_FALSE(torch::equal(a["7.weight"], torch::zeros_like(a["7.weight"]))) << "it trained";
  EXPECT_TRUE(torch::allclose(a["7.weight"], b["7.weight"], 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(a["7.bias"], b["7.bias"], 1e-4, 1e-5));
}

// By default the backbone unfreezes once the head's validation loss stops improving: the head
// drops to FineTuningOptions::lr, the backbone climbs to its share of it over the warm-up (with
// `anneal`, both then follow a cosine to 0 at the end of the budget), and the fit says which
// phase its best epoch came from.
TEST(Transfer, TheBackboneUnfreezesOnceTheHeadConvergesAndWarmsUp) {
  auto model = small_cnn(3);
  const auto head = ts::models::replace_head(model, 4);
  ts::models::freeze_backbone(model, head);
  ts::callbacks::FineTuningOptions o;  // unfreeze_at_epoch 0: when the head has converged
  o.head_patience = 1;
  o.head_epochs = 3;
  o.lr = 1e-3;
  o.warmup_steps = 4;
  o.anneal = true;
  auto ft = std::make_shared<ts::callbacks::FineTuning>(o, nullptr);
  auto probe = std::make_shared<GroupProbe>();
  ts::Trainer trainer(quiet(6).lr(1e-2).head(head.name));
  trainer.add_callback(ft);
  trainer.add_callback(probe);
  const ts::FitResult fit = trainer.fit(model, images(128, 4, 1), images(64, 4, 2));
  const int64_t at = ft->unfrozen_at();
  ASSERT_GE(at, 2);
  ASSERT_LE(at, 4) << "at most head_epochs head epochs";
  const size_t first = static_cast<size_t>((at - 1) * 8);  // 8 steps an epoch
  ASSERT_GT(probe->lrs_by_step.size(), first + 5);
  for (size_t i = 0; i < first; ++i) EXPECT_EQ(probe->lrs_by_step[i], std::vector<double>{1e-2});
  const double span = 6 * 8 - static_cast<double>(first);
  for (size_t k = 0; first + k < probe->lrs_by_step.size(); ++k) {
    const auto& lrs = probe->lrs_by_step[first + k];
    ASSERT_EQ(lrs.size(), 2u);
    const double cosine = 0.5 * (1 + std::cos(M_PI * static_cast<double>(k) / span));
    EXPECT_NEAR(lrs[0], 1e-3 * cosine, 1e-12) << "step " << k;
    EXPECT_NEAR(lrs[1], 1e-3 * o.backbone_lr_ratio * std::min(1.0, (k + 1) / 4.0) * cosine, 1e-12)
        << "warm-up, then the anneal: step " << k;
  }
  EXPECT_LT(probe->lrs_by_step.back()[0], 1e-3 * 0.01) << "annealed to nearly 0 by the end";
  EXPECT_EQ(ft->recipe(), fit.best_epoch >= at ? "head+backbone" : "head");
}

TEST(Transfer, GradualUnfreezingGoesGroupByGroupHeadSideFirst) {
  auto model = small_cnn(3);
  ts::models::freeze_backbone(model, ts::models::replace_head(model, 4));
  ts::callbacks::FineTuningOptions o;
  o.unfreeze_at_epoch = 2;
  o.groups = {"5", "0"};  // the hidden linear layer, then the conv (its BatchNorm stays frozen)
  o.warmup_steps = 4;
  ts::Trainer trainer(quiet(4));
  auto probe = std::make_shared<GroupProbe>();
  trainer.add_callback(std::make_shared<ts::callbacks::FineTuning>(o, nullptr));
  trainer.add_callback(probe);
  trainer.fit(model, images(64, 4, 1), nullptr);
  EXPECT_EQ(probe->by_epoch[1].size(), 1u);
  EXPECT_EQ(probe->by_epoch[2].size(), 2u);
  EXPECT_EQ(probe->by_epoch[3].size(), 3u);
  EXPECT_EQ(probe->by_epoch[4].size(), 3u);
  EXPECT_FALSE(model.module().named_parameters()["1.weight"].requires_grad())
      << "the BatchNorm's scale was in no group";
  // 4 steps an epoch: group "5" unfroze at step 4, group "0" at step 8, each warmed up from its
  // own first step to the head's lr (1e-3) x 0.3.
  ASSERT_EQ(probe->lrs_by_step.size(), 16u);
  const double target = 1e-3 * o.backbone_lr_ratio;
  EXPECT_DOUBLE_EQ(probe->lrs_by_step[4][1], target / 4);
  EXPECT_DOUBLE_EQ(probe->lrs_by_step[7][1], target);
  EXPECT_DOUBLE_EQ(probe->lrs_by_step[8][1], target);
  EXPECT_DOUBLE_EQ(probe->lrs_by_step[8][2], target / 4);
  EXPECT_DOUBLE_EQ(probe->lrs_by_step[10][2], target * 3 / 4);
  EXPECT_DOUBLE_EQ(probe->lrs_by_step[15][2], target);

  o.groups = {"nothing"};
  ts::Trainer bad(quiet(1));
  bad.add_callback(std::make_shared<ts::callbacks::FineTuning>(o, nullptr));
  EXPECT_THROW(bad.fit(model, images(32, 4, 1), nullptr), ts::ConfigError);
}

TEST(Transfer, LoadBackboneSkipsTheHeadAndNamesAMismatch) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ts_transfer_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto source = small_cnn(3);
  ts::callbacks::save_weights(source.module(), dir / "w.pt");
  torch::manual_seed(5);
  ts::models::CnnOptions o;
  o.height = o.width = 8;
  o.channels = {4};
  o.hidden = {16};
  o.outputs = 7;  // another head size
  auto target = ts::models::cnn(o);
  ts::models::load_backbone(target, dir / "w.pt", "7");
  EXPECT_TRUE(torch::equal(target.module().named_parameters()["0.weight"],
                           source.module().named_parameters()["0.weight"]));
  EXPECT_EQ(target.module().named_parameters()["7.weight"].size(0), 7);
  o.channels = {6};
  auto wider = ts::models::cnn(o);
  try {
    ts::models::load_backbone(wider, dir / "w.pt", "7");
    FAIL();
  } catch (const ts::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("holds '0.weight' of shape [4, 1, 3, 3] but the model's "
                                         "is [6, 1, 3, 3]"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

// A source that does not say how its inputs were normalized: its first BatchNorm layer's running
// statistics tell. Copies of a CNN trained on the same images, each with another normalization
// (raw in [0, 1], standardized per channel, the ImageNet statistics for colour images), are each
// given the inputs they were trained on.
TEST(Transfer, TheNormalizationProbeFindsHowASourceWasTrained) {
  const ts::data::PixelStats imagenet{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  for (const int64_t channels : {1, 3}) {
    torch::manual_seed(7);
    // In [0, 1]; colour channels brighter than ImageNet's means, and apart from each other.
    auto raw = torch::rand({256, channels, 8, 8}).square();
    if (channels == 3) raw = (raw * 0.5 + torch::tensor({0.5, 0.1, 0.3}).view({1, 3, 1, 1}));
    const auto labels = (raw.mean({1, 2, 3}) * 12).floor().remainder(3).to(torch::kInt64);
    const ts::data::PixelStats own = ts::data::pixel_stats(raw);
    ASSERT_EQ(own.mean.size(), size_t(channels));
    std::vector<ts::tune::Normalization> candidates = {{"raw [0, 1] inputs", {}},
                                                       {"the new data's statistics", own}};
    if (channels == 3) candidates.push_back({"the ImageNet statistics", imagenet});
    // The new data as a Session loads it: standardized with its own statistics.
    const ts::data::TensorDataset data(own.normalize(raw), labels);
    for (size_t trained = 0; trained < candidates.size(); ++trained) {
      SCOPED_TRACE(std::to_string(channels) + " channel(s), trained on " +
                   candidates[trained].name);
      torch::manual_seed(0);
      ts::models::CnnOptions o;
      o.in_channels = channels;
      o.height = o.width = 8;
      o.channels = {4};
      o.hidden = {16};
      o.outputs = 3;
      auto source = ts::models::cnn(o);
      ts::Trainer(quiet(2)).fit(source,
                                std::make_shared<ts::data::TensorDataset>(
                                    candidates[trained].stats.normalize(raw), labels),
                                nullptr);
      const auto head = ts::models::replace_head(source, 3);
      const auto choice = ts::tune::probe_normalization(
          source, head, data, nullptr, own, candidates, ts::Task::kClassification, 3, torch::kCPU);
      EXPECT_EQ(choice.batch_norm, "1");
      ASSERT_EQ(choice.mismatch.size(), candidates.size());
      EXPECT_EQ(choice.chosen, trained) << choice.reason;
      for (size_t i = 0; i < candidates.size(); ++i)
        if (i != trained) EXPECT_GT(choice.mismatch[i], 5 * choice.mismatch[trained]) << i;
      // The probe leaves the statistics as they were.
      const auto bn_mean = source.module().named_buffers()["1.running_mean"].clone();
      ts::tune::probe_normalization(source, head, data, nullptr, own, candidates,
                                    ts::Task::kClassification, 3, torch::kCPU);
      EXPECT_TRUE(torch::equal(source.module().named_buffers()["1.running_mean"], bn_mean));
    }
  }
}
