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
  return ts::TrainerOptions()
      .runs_dir("")
      .max_epochs(epochs)
      .batch_size(16);
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
    for (const auto& g : s.optimizer->param_groups())
      for (const auto& p : g.params()) optimized.insert(p.unsafeGetTensorImpl());
  }
  std::map<int64_t, std::vector<std::pair<int64_t, double>>> by_epoch;
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
  // torch's Linear init: uniform in +-1/sqrt(in_features).
  EXPECT_LE(model.module().named_parameters()["7.weight"].abs().max().item<double>(), 0.25);
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

TEST(Transfer, GradualUnfreezingGoesGroupByGroupHeadSideFirst) {
  auto model = small_cnn(3);
  ts::models::freeze_backbone(model, ts::models::replace_head(model, 4));
  ts::callbacks::FineTuningOptions o;
  o.unfreeze_at_epoch = 2;
  o.groups = {"5", "0"};  // the hidden linear layer, then the conv (its BatchNorm stays frozen)
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
