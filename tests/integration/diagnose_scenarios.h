#pragma once
// Training runs built to show one problem each, and healthy controls. The test suite runs them
// small (tests/integration/diagnose_scenarios_test.cpp); bench/diagnose_scenarios.cpp runs them
// full-size and reports the epoch of first detection, the detection rate and false positives.

#include <trainscope/trainscope.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace trainscope::scenarios {

struct Scale {
  int64_t train_examples = 2000;   // Fashion-MNIST training examples before the 10% holdout
  int64_t overfit_examples = 300;  // the overfitting scenario's tiny training set
  int64_t epochs = 6;
  int64_t every = 5;  // diagnostics interval in steps
  uint64_t seed = 0;  // initial weights, shuffling and augmentation
};

struct Scenario {
  std::string name;
  std::string expected;  // the finding kind(s) the run must raise, "a|b"; "" for a healthy control
  std::function<Model()> model;
  std::function<void(data::IdxOptions&)> data;   // how the data is prepared
  std::function<void(SessionOptions&)> options;  // how the trainer is configured
  bool small_train = false;                      // use Scale::overfit_examples
  int64_t epoch_factor = 1;                      // epochs = Scale::epochs x this
  bool augment = false;  // the default run's augmentation (hflip, 2-pixel shifts)
  std::function<void(data::DataSplits&)> splits;  // changes the loaded splits (optional)
};

struct Result {
  std::string name, expected;
  bool detected = false;              // the expected kind was found (controls: nothing found)
  int64_t first_epoch = 0;            // epoch of the expected finding
  std::vector<std::string> warnings;  // every warning/error finding as "kind@epoch"
  std::vector<std::string> messages;  // their messages, in the same order
  std::vector<std::string> remedies;  // messages of applied remedies (auto-remedy)
  // Remedies that spell a CLI flag, or propose a setting that is not one (unknown key, a value of
  // the wrong type or out of range): a library user could not apply them.
  std::vector<std::string> remedy_problems;
  StopReason stop_reason = StopReason::kNone;
  int64_t epochs = 0;
  double seconds = 0.0;
};

// `gain` scales the initial weights (1: LibTorch's default initialization).
inline Model sequential_mlp(std::vector<int64_t> hidden, const std::string& activation,
                            double bias = 0.0, double gain = 1.0) {
  namespace nn = torch::nn;
  nn::Sequential net;
  net->push_back(nn::Flatten());
  int64_t in = 784;
  for (int64_t h : hidden) {
    nn::Linear lin(in, h);
    {
      torch::NoGradGuard g;
      if (bias != 0.0) lin->bias.fill_(bias);
      lin->weight.mul_(gain);
    }
    net->push_back(lin);
    if (activation == "sigmoid")
      net->push_back(nn::Sigmoid());
    else if (activation == "tanh")
      net->push_back(nn::Tanh());
    else
      net->push_back(nn::ReLU());
    in = h;
  }
  net->push_back(nn::Linear(in, 10));
  return Model(net, "mlp");
}

// An MLP whose Linear layers start at `weight` everywhere, biases at 0 (torch.nn.init.constant_
// and zeros_ on every layer).
inline Model constant_mlp(std::vector<int64_t> hidden, double weight) {
  Model m = sequential_mlp(std::move(hidden), "relu");
  torch::NoGradGuard g;
  for (auto& p : m.module().named_parameters())
    p.value().fill_(p.key().find("bias") != std::string::npos ? 0.0 : weight);
  return m;
}

// A head sized on its first forward (as torch.nn.LazyLinear), which comes after the optimizer
// was built from the parameters there were: the head never trains.
struct LazyHeadNet : torch::nn::Module {
  torch::nn::Sequential body{torch::nn::Flatten(), torch::nn::Linear(784, 128), torch::nn::ReLU()};
  torch::nn::Linear head{nullptr};
  LazyHeadNet() { register_module("body", body); }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = body->forward(x);
    if (!head) head = register_module("head", torch::nn::Linear(h.size(1), 10));
    return head->forward(h);
  }
};

// The seed of the scenario being run (run() sets it before building the model): the Python-defined
// models are made at it, as the zoo's are initialized at it.
inline uint64_t& scenario_seed() {
  static uint64_t seed = 0;
  return seed;
}

// Models defined in Python (tests/interop/make_scenario_models.py), made once per process and
// seed into a temporary folder with Debian's python3-torch, initialized under that seed; loaded
// as TorchScript, as `trainscope train --model FILE` loads them.
inline Model scripted(const std::string& name) {
#ifndef TRAINSCOPE_SOURCE_DIR
#error "TRAINSCOPE_SOURCE_DIR: the scenarios' Python models live in the source tree"
#endif
  // The folder goes when the process ends.
  static struct Folder {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("trainscope-scenario-models-" + std::to_string(::getpid()));
    ~Folder() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } folder;
  static std::mutex mutex;
  static std::set<uint64_t> made;
  const uint64_t seed = scenario_seed();
  const std::filesystem::path dir = folder.path / ("seed-" + std::to_string(seed));
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!made.count(seed)) {
      const std::string command = "/usr/bin/python3 '" TRAINSCOPE_SOURCE_DIR
                                  "/tests/interop/make_scenario_models.py' '" +
                                  dir.string() + "' " + std::to_string(seed);
      if (std::system(command.c_str()) != 0)
        throw Error("cannot make the scenarios' TorchScript models: " + command +
                    " failed (python3-torch is installed by scripts/deps.sh)");
      made.insert(seed);
    }
  }
  return models::load_torchscript(dir / (name + ".pt"));
}

// The training split with its labels permuted among its examples: every image keeps a label,
// none its own (a pipeline that shuffles images and labels separately).
inline void shuffle_labels(data::DataSplits& splits) {
  const int64_t n = splits.train->size();
  data::Batch all = splits.train->get_batch(torch::arange(n));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  torch::Tensor y = all.y.index_select(0, torch::randperm(n, gen));
  splits.train = std::make_shared<data::TensorDataset>(all.x, y);
}

inline std::vector<Scenario> all() {
  auto none = [](auto&) {};
  auto raw_pixels = [](data::IdxOptions& d) {  // (x/255 - 0) / (1/255): pixel values 0..255
    d.mean = {0.0};
    d.std = {1.0 / 255.0};
  };
  return {
      {"vanishing: 12-layer sigmoid MLP", "vanishing_gradients",
       [] { return sequential_mlp(std::vector<int64_t>(12, 64), "sigmoid"); }, none, none},
      {"explosion: deep ReLU MLP initialized 4x too large, SGD lr 0.1",
       "exploding_gradients|non_finite",
       [] { return sequential_mlp(std::vector<int64_t>(8, 256), "relu", 0.0, 4.0); }, none,
       [](SessionOptions& o) { o.train.optimizer(Optimizer::kSgd).lr(0.1); }},
      {"saturation: sigmoid MLP on unnormalized pixels", "saturated_activations",
       [] {
         return sequential_mlp({128, 128}, "sigmoid");
       },
       raw_pixels, none},
      {"dying ReLU: ReLU units that start dead (bias -5)", "dying_relu",
       [] {
         return sequential_mlp({128, 128}, "relu", -5.0);
       },
       none, none},
      {"underfitting: a 1-unit bottleneck", "underfitting",
       [] { return sequential_mlp({1}, "relu"); }, none, none},
      {"overfitting: wide MLP on a few hundred examples", "overfitting",
       [] {
         return sequential_mlp({1024, 1024}, "relu");
       },
       none, none, /*small_train=*/true, /*epoch_factor=*/4},
      {"zero initialization: every weight and bias of a ReLU MLP at 0", "symmetric_units",
       [] {
         return constant_mlp({128, 128}, 0.0);
       },
       none, none},
      {"constant initialization: every weight at 0.01", "symmetric_units",
       [] {
         return constant_mlp({128, 128}, 0.01);
       },
       none, none},
      {"a softmax before cross-entropy (nn.Softmax as the last layer)", "softmax_before_loss",
       [] {
         Model m = sequential_mlp({256, 128}, "relu");
         std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m.ptr())->push_back(
             torch::nn::Softmax(1));
         return m;
       },
       none, none},
      {"logits through a ReLU (an activation after the last Linear)", "relu_on_logits",
       [] {
         Model m = sequential_mlp({256, 128}, "relu");
         std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m.ptr())->push_back(
             torch::nn::ReLU());
         return m;
       },
       none, none},
      {"a learning rate 1000x too low (Adam 1e-6)", "learning_rate|loss_not_moving|underfitting",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, [](SessionOptions& o) { o.train.lr(1e-6); }},
      {"a backbone frozen by hand, its BatchNorm left in training mode", "frozen_norm_drift",
       [] {
         Model m = models::cnn();
         auto params = m.module().parameters();  // all but the last Linear's weight and bias
         for (size_t i = 0; i + 2 < params.size(); ++i) params[i].set_requires_grad(false);
         return m;
       },
       none, none},
      {"a lazily sized head, created after the optimizer", "stuck_parameters",
       [] {
         auto net = std::make_shared<LazyHeadNet>();
         return Model(
             net, [net](const torch::Tensor& x) { return net->forward(x); }, "lazy_head");
       },
       none, none},
      {"too few steps: full-batch, one batch as large as the training set", "too_few_steps",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, [](SessionOptions& o) { o.train.batch_size(1 << 20); }},
      // Translated from the published fault benchmarks (DeepFD, AUTOTRAINER, DeepDiagnosis,
      // UMLAUT) to what PyTorch users write.
      {"a sigmoid after the last Linear (DeepDiagnosis: wrong last-layer activation)",
       "bounded_logits",
       [] {
         Model m = sequential_mlp({256, 128}, "relu");
         std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m.ptr())->push_back(
             torch::nn::Sigmoid());
         return m;
       },
       none, none},
      {"a tanh after the last Linear (UMLAUT: activation on the logits)", "bounded_logits",
       [] {
         Model m = sequential_mlp({256, 128}, "relu");
         std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m.ptr())->push_back(
             torch::nn::Tanh());
         return m;
       },
       none, none},
      {"labels shuffled apart from their images (DeepFD: broken training data)",
       "underfitting|loss_not_moving",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, none, false, 1, false, shuffle_labels},
      {"vanishing: 20-layer tanh MLP (AUTOTRAINER: vanishing gradients)", "vanishing_gradients",
       [] { return sequential_mlp(std::vector<int64_t>(20, 64), "tanh"); }, none, none},
      {"SGD with lr 1e-5 (AUTOTRAINER: learning rate too small)",
       "learning_rate|loss_not_moving|underfitting",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, [](SessionOptions& o) { o.train.optimizer(Optimizer::kSgd).lr(1e-5); }},
      {"Adam with lr 0.1 (DeepFD: learning rate too large)",
       "learning_rate|oscillating_loss|exploding_gradients|non_finite|dying_relu",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, [](SessionOptions& o) { o.train.lr(0.1); }},
      {"Python model: F.softmax at the end of forward, then cross-entropy (TorchScript)",
       "softmax_before_loss", [] { return scripted("softmax_mlp"); }, none, none},
      {"Python model: torch.sigmoid at the end of forward (TorchScript)", "bounded_logits",
       [] { return scripted("sigmoid_cnn"); }, none, none},
      // The default run's recipe. Without augmentation the CNN really does overfit by epoch ~8 of
      // a 20,000-example subset, and the detector rightly says so.
      {"healthy: reference CNN with the default augmentation", "", [] { return models::cnn(); },
       none, none, false, 1,
       /*augment=*/true},
      {"healthy: tanh MLP 256-128", "",
       [] {
         return sequential_mlp({256, 128}, "tanh");
       },
       none, none},
      {"healthy: zoo MLP with GELU, batch norm and dropout 0.2", "",
       [] {
         models::MlpOptions m;
         m.dropout = 0.2;
         m.layers.activation = models::Activation::kGelu;
         m.layers.norm = models::Norm::kBatch;
         return models::mlp(m);
       },
       none, none},
      {"healthy: MLP with SGD, momentum 0.9, lr 0.05", "",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, [](SessionOptions& o) { o.train.optimizer(Optimizer::kSgd).lr(0.05); }},
      {"healthy: MLP with AdamW on batches of 32", "",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, [](SessionOptions& o) { o.train.optimizer(Optimizer::kAdamW).batch_size(32); }},
      {"healthy: MLP whose last layer starts at zero", "",
       [] {
         Model m = sequential_mlp({256, 128}, "relu");
         torch::NoGradGuard g;
         auto params = m.module().parameters();
         params[params.size() - 2].zero_(), params.back().zero_();
         return m;
       },
       none, none},
      {"healthy: zoo ResNet-8 (width 8, 1 block per stage)", "",
       [] {
         models::ResNetOptions r;
         r.width = 8;
         r.blocks = 1;
         return models::resnet(r);
       },
       none, none},
      {"healthy: MLP 256-128", "",
       [] {
         return sequential_mlp({256, 128}, "relu");
       },
       none, none},
      {"healthy: Python MLP 256-128 (TorchScript)", "", [] { return scripted("mlp"); }, none, none},
      {"healthy: Python CNN with batch norm (TorchScript)", "", [] { return scripted("cnn"); },
       none, none},
  };
}

inline Result run(const Scenario& s, const Scale& scale) {
  data::IdxOptions d;
  d.limit = s.small_train ? scale.overfit_examples : scale.train_examples;
  d.test_limit = 10;
  if (s.small_train) d.val_fraction = 0.5;
  s.data(d);
  auto splits = data::fashion_mnist(d);
  if (s.splits) s.splits(splits);
  torch::manual_seed(scale.seed);
  scenario_seed() = scale.seed;
  Model model = s.model();
  // The Session's diagnostics and early stopping (patience 5, restoring the best epoch), as a
  // default run has them; no checkpoints.
  SessionOptions o;
  o.train.max_epochs(scale.epochs * s.epoch_factor)
      .seed(scale.seed)
      .runs_dir("")
      .batch_size(s.small_train ? 32 : 128);
  o.progress = "off";
  o.checkpoints = false;
  o.diagnose_every = scale.every;
  if (s.augment)
    o.train.augment(data::parse_augmentation({"hflip", "crop(pad=2)"}, {splits.pixels, 10}));
  s.options(o);
  auto trainer_ptr = session::make_trainer(o);
  Trainer& trainer = *trainer_ptr;
  auto start = std::chrono::steady_clock::now();
  auto fit = trainer.fit(model, splits.train, splits.val);
  Result r;
  r.stop_reason = fit.stop_reason;
  r.epochs = fit.epochs;
  r.name = s.name;
  r.expected = s.expected;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& cb : trainer.callbacks()) {
    auto diag = std::dynamic_pointer_cast<diagnose::Diagnostics>(cb);
    if (!diag) continue;
    for (const auto& f : diag->findings()) {
      if (f.kind == "remedy") r.remedies.push_back(f.message);
      if (f.remedy.find("--") != std::string::npos)
        r.remedy_problems.push_back(f.kind + ": names a flag: " + f.remedy);
      for (const auto& [key, value] : f.changes()) {
        try {
          Config proposed = default_config();
          proposed.set_from_string(key + "=" + value, f.kind);
          proposed.resolve();
        } catch (const Error& e) {
          r.remedy_problems.push_back(f.kind + ": " + e.what());
        }
      }
      if (f.severity == diagnose::Severity::kInfo) continue;
      r.warnings.push_back(f.kind + "@" + std::to_string(f.epoch));
      r.messages.push_back(f.message);
      const bool expected = ("|" + s.expected + "|").find("|" + f.kind + "|") != std::string::npos;
      if (expected && !r.detected) r.detected = true, r.first_epoch = f.epoch;
    }
  }
  if (s.expected.empty()) r.detected = r.warnings.empty();
  return r;
}

}  // namespace trainscope::scenarios
