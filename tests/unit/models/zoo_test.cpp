// The zoo's options: activation, normalization, initialization, depth and width, and the resnet.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace ts = trainscope;
namespace zoo = trainscope::models;

namespace {

// How many modules of each kind the model holds, by class name without namespace or "Impl":
// "Tanh", "Linear", "BasicBlock".
std::map<std::string, int> kinds(const ts::Model& model) {
  std::map<std::string, int> out;
  for (const auto& m : model.module().modules(/*include_self=*/false)) {
    std::string name = m->name();
    name = name.substr(name.rfind(':') == std::string::npos ? 0 : name.rfind(':') + 1);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0)
      name.resize(name.size() - 4);
    ++out[name];
  }
  return out;
}

zoo::ModelSpec spec(const std::string& name, std::vector<int64_t> input = {1, 28, 28}) {
  zoo::ModelSpec s;
  s.name = name;
  s.input_shape = std::move(input);
  s.outputs = 10;
  return s;
}

}  // namespace

TEST(Zoo, DeepTanhMlpFromDepthAndWidth) {
  auto s = spec("mlp");
  s.activation = zoo::Activation::kTanh;
  s.depth = 6;
  s.width = 32;
  auto model = zoo::make_model(s);
  auto k = kinds(model);
  EXPECT_EQ(k["Tanh"], 6);
  EXPECT_EQ(k["ReLU"], 0);
  EXPECT_EQ(k["Linear"], 7);
  EXPECT_EQ(k["LayerNorm"] + k["BatchNorm1d"], 0) << "auto: no norm in an mlp";
  EXPECT_EQ(model.forward(torch::randn({4, 1, 28, 28})).sizes(), (std::vector<int64_t>{4, 10}));
}

TEST(Zoo, EveryActivationAndNormBuildsAndRuns) {
  for (const auto& a : zoo::kActivationNames)
    for (const auto& n : zoo::kNormNames)
      for (const char* name : {"mlp", "cnn", "resnet"}) {
        auto s = spec(name);
        s.activation = a.value;
        s.norm = n.value;
        auto model = zoo::make_model(s);
        model.train();
        auto out = model.forward(torch::randn({3, 1, 28, 28}));
        EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 10}))
            << name << " " << a.name << " " << n.name;
      }
}

TEST(Zoo, NormalizationIsWhereItIsAsked) {
  auto s = spec("mlp");
  s.hidden = {64, 32};
  s.norm = zoo::Norm::kLayer;
  EXPECT_EQ(kinds(zoo::make_model(s))["LayerNorm"], 2) << "after each hidden layer";
  s.norm = zoo::Norm::kBatch;
  EXPECT_EQ(kinds(zoo::make_model(s))["BatchNorm1d"], 2);
  auto c = spec("cnn");
  EXPECT_EQ(kinds(zoo::make_model(c))["BatchNorm2d"], 2) << "auto: batch norm per conv";
  c.norm = zoo::Norm::kNone;
  EXPECT_EQ(kinds(zoo::make_model(c))["BatchNorm2d"], 0);
  c.norm = zoo::Norm::kLayer;
  EXPECT_EQ(kinds(zoo::make_model(c))["GroupNorm"], 2) << "layer norm over C, H, W";
}

TEST(Zoo, TheDefaultCnnIsTheReferenceCnn) {
  // The options' defaults give the module order and parameter count of the reference CNN, so
  // runs and checkpoints from before the options load into it.
  auto model = zoo::make_model(spec("cnn"));
  EXPECT_EQ(model.num_parameters(), 421834);
  auto k = kinds(model);
  EXPECT_EQ(k["Conv2d"], 2);
  EXPECT_EQ(k["ReLU"], 3);
}

TEST(Zoo, InitializationFollowsTheChoice) {
  auto weight_std = [](zoo::Init init, zoo::Activation a) {
    auto s = spec("mlp", {1000});
    s.hidden = {1000};
    s.init = init;
    s.activation = a;
    torch::manual_seed(0);
    auto model = zoo::make_model(s);
    return model.parameters()[0].std().item<double>();  // the first Linear: 1000 x 1000
  };
  // kaiming normal: std = gain / sqrt(fan_in); relu's gain is sqrt(2), tanh's 5/3.
  EXPECT_NEAR(weight_std(zoo::Init::kKaiming, zoo::Activation::kRelu),
              std::sqrt(2.0) / std::sqrt(1000.0), 1e-3);
  EXPECT_NEAR(weight_std(zoo::Init::kKaiming, zoo::Activation::kTanh),
              (5.0 / 3.0) / std::sqrt(1000.0), 1e-3);
  // xavier uniform: std = sqrt(2 / (fan_in + fan_out)).
  EXPECT_NEAR(weight_std(zoo::Init::kXavier, zoo::Activation::kRelu), std::sqrt(2.0 / 2000.0),
              1e-3);
  // LibTorch's default (kaiming uniform, a = sqrt(5)): std = 1 / sqrt(3 fan_in).
  EXPECT_NEAR(weight_std(zoo::Init::kDefault, zoo::Activation::kRelu), 1.0 / std::sqrt(3000.0),
              1e-3);
  auto s = spec("mlp");
  s.init = zoo::Init::kXavier;
  auto model = zoo::make_model(s);
  EXPECT_EQ(model.parameters()[1].abs().sum().item<double>(), 0.0) << "biases start at zero";
}

TEST(Zoo, ResNetHasResidualStagesAndLearns) {
  for (const std::vector<int64_t>& input : {std::vector<int64_t>{1, 28, 28}, {3, 32, 32}}) {
    torch::manual_seed(1);
    auto model = zoo::make_model(spec("resnet", input));
    EXPECT_EQ(model.name(), "resnet");
    auto k = kinds(model);
    EXPECT_EQ(k["BasicBlock"], 6) << "3 stages of 2 blocks";
    EXPECT_EQ(k["Conv2d"], 1 + 6 * 2 + 2) << "stem, two per block, two shortcuts";
    // It learns: 30 Adam steps on one batch of random labels cut the loss.
    auto x = torch::randn({16, input[0], input[1], input[2]});
    auto y = torch::randint(0, 10, {16}, torch::kInt64);
    torch::optim::Adam opt(model.parameters(), 1e-2);
    model.train();
    double first = 0, last = 0;
    for (int i = 0; i < 30; ++i) {
      opt.zero_grad();
      auto loss = torch::cross_entropy_loss(model.forward(x), y);
      loss.backward();
      opt.step();
      (i == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_LT(last, 0.5 * first) << "input " << input[0] << "x" << input[1];
  }
  auto s = spec("resnet");
  s.depth = 1;
  s.width = 8;
  EXPECT_EQ(kinds(zoo::make_model(s))["BasicBlock"], 3);
  EXPECT_THROW(zoo::make_model(spec("resnet", {784})), ts::ConfigError);
  EXPECT_THROW(zoo::make_model(spec("resnet", {1, 4, 4})), ts::ConfigError);
}

TEST(Zoo, DepthWithoutWidthIsAConfigError) {
  auto s = spec("mlp");
  s.depth = 3;
  try {
    zoo::make_model(s);
    FAIL() << "expected ConfigError";
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.width"), std::string::npos) << e.what();
  }
}

TEST(Zoo, SettingsChooseTheOptions) {
  auto c = ts::default_config();
  c.set_from_string("model.name=mlp");
  c.set_from_string("model.activation=gelu");
  c.set_from_string("model.norm=layer");
  c.set_from_string("model.init=xavier");
  c.set_from_string("model.depth=3");
  c.set_from_string("model.width=64");
  c.resolve();
  const auto o = ts::session_options(c);
  EXPECT_EQ(o.model.activation, zoo::Activation::kGelu);
  EXPECT_EQ(o.model.norm, zoo::Norm::kLayer);
  EXPECT_EQ(o.model.init, zoo::Init::kXavier);
  EXPECT_EQ(o.model.depth, 3);
  auto bad = ts::default_config();
  try {
    bad.set_from_string("model.activation=swish");
    bad.resolve();
    FAIL() << "expected ConfigError";
  } catch (const ts::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("relu, leaky_relu, gelu, tanh, sigmoid"),
              std::string::npos)
        << e.what();
  }
}

namespace {
// Records the activations each logging step measured.
class SeenActivations : public trainscope::diagnose::Detector {
 public:
  explicit SeenActivations(std::shared_ptr<std::vector<std::string>> names)
      : names_(std::move(names)) {}
  std::string kind() const override { return "seen"; }
  std::optional<trainscope::diagnose::Finding> on_step(
      const trainscope::diagnose::StepSignals& s) override {
    for (const auto& a : s.activations) names_->push_back(a.name);
    return std::nullopt;
  }

 private:
  std::shared_ptr<std::vector<std::string>> names_;
};
}  // namespace

// The resnet's activations sit inside its residual blocks, not in the Sequential's list:
// diagnostics measures them there too (each block reports both of its activations).
TEST(Zoo, ResnetBlocksReportTheirActivationsToDiagnostics) {
  for (auto [activation, kind] : {std::pair{ts::models::Activation::kRelu, "relu"},
                                  std::pair{ts::models::Activation::kTanh, "tanh"}}) {
    ts::models::ResNetOptions o;
    o.layers.activation = activation;
    ts::Model model = ts::models::resnet(o);
    auto names = std::make_shared<std::vector<std::string>>();
    std::vector<std::unique_ptr<trainscope::diagnose::Detector>> detectors;
    detectors.push_back(std::make_unique<SeenActivations>(names));
    trainscope::diagnose::DiagnosticsOptions d;
    d.every = 2;
    d.print = false;
    ts::Trainer trainer(ts::TrainerOptions().max_epochs(1).batch_size(8).runs_dir(""));
    trainer.add_callback(
        std::make_shared<trainscope::diagnose::Diagnostics>(d, std::move(detectors)));
    torch::manual_seed(0);
    auto data = std::make_shared<ts::data::TensorDataset>(torch::randn({16, 1, 28, 28}),
                                                          torch::randint(0, 10, {16}));
    trainer.fit(model, data, nullptr);
    // The stem's activation, then two per block: 3 stages of 2 blocks.
    const std::set<std::string> seen(names->begin(), names->end());
    EXPECT_EQ(seen.size(), 1u + 3 * 2 * 2) << kind;
    int in_blocks = 0;
    for (const auto& n : seen) {
      EXPECT_NE(n.find(std::string(":") + kind), std::string::npos) << n;
      in_blocks += n.find(".act.") != std::string::npos;
    }
    EXPECT_EQ(in_blocks, 12) << kind;
  }
}
