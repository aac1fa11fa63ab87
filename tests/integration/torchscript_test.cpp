// A TorchScript model trained and saved by Debian's python3-torch (tests/interop/
// make_torchscript.py), used from C++: its outputs match Python's; `trainscope finetune` replaces
// its head for new classes and trains only that head, leaving every backbone tensor bit-identical;
// a model whose last layer is not a Linear is refused with the candidates, and naming the head
// works.
#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/models/transfer.h>

#include <gtest/gtest.h>

#include "process.h"
#include <sqlite3.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
namespace ts = trainscope;

namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

using Result = trainscope::testing::ShellResult;
using trainscope::testing::sh;

torch::Tensor load_tensor(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  return torch::pickle_load(bytes).toTensor();
}

double test_accuracy(const fs::path& db) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT value FROM metrics WHERE split='test' AND tag='accuracy'", -1, &st,
                     nullptr);
  const double v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

std::string meta(const fs::path& db, const std::string& key) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT value FROM meta WHERE key=?", -1, &st, nullptr);
  sqlite3_bind_text(st, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  std::string v = sqlite3_step(st) == SQLITE_ROW
                      ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                      : "";
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

class TorchScript : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kFashion) || std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null") != 0)
      return;
    dir_ = fs::temp_directory_path() / ("ts_torchscript_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    made_ = sh("/usr/bin/python3 '" TRAINSCOPE_SOURCE_DIR "/tests/interop/make_torchscript.py' '" +
               dir_.string() + "'");
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (dir_.empty()) GTEST_SKIP() << "needs dataset-fashion-mnist and python3-torch";
    ASSERT_EQ(made_.status, 0) << made_.out;
  }
  Result cli(const std::string& args) {
    return sh("cd '" + dir_.string() + "' && '" TRAINSCOPE_CLI "' " + args);
  }
  static fs::path dir_;
  static Result made_;
};

fs::path TorchScript::dir_;
Result TorchScript::made_;

TEST_F(TorchScript, ScriptedAndTracedModelsGivePythonsOutputs) {
  const auto x = load_tensor(dir_ / "inputs.pt");
  const auto want = load_tensor(dir_ / "outputs.pt");
  for (const char* file : {"scripted.pt", "traced.pt"}) {
    SCOPED_TRACE(file);
    ts::Model model = ts::models::load_torchscript(dir_ / file);
    EXPECT_EQ(model.name(), fs::path(file).stem().string());
    model.eval();
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::allclose(model.forward(x), want, 1e-5, 1e-6));
    // The same tensors under Python's names, parameters and buffers alike.
    auto params = model.module().named_parameters();
    ASSERT_NE(params.find("features.0.weight"), nullptr);
    EXPECT_EQ(params["fc.weight"].sizes(), (std::vector<int64_t>{5, 64}));
    EXPECT_NE(model.module().named_buffers().find("features.1.running_mean"), nullptr);
    const auto head = ts::models::find_head(model);
    EXPECT_EQ(head.name, "fc");
    EXPECT_EQ(head.describe(), "fc (64 -> 5)");
  }
}

// Diagnostics knows the range a regression output can reach from the model's last operation,
// scripted or traced, a module or a function call in forward.
TEST_F(TorchScript, TheOutputActivationIsReadFromTheGraph) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"regress_sigmoid.pt", "sigmoid"},
      {"regress_tanh.pt", "tanh"},
      {"regress_relu_traced.pt", "relu"},
      {"scripted.pt", ""},
      {"traced.pt", ""}};
  for (const auto& [file, activation] : cases)
    EXPECT_EQ(ts::models::output_activation(ts::models::load_torchscript(dir_ / file)), activation)
        << file;
  namespace nn = torch::nn;
  EXPECT_EQ(
      ts::models::output_activation(ts::Model(nn::Sequential(nn::Linear(4, 1), nn::Softplus()))),
      "softplus");
  EXPECT_EQ(ts::models::output_activation(ts::Model(nn::Sequential(nn::Linear(4, 1)))), "");
}

TEST_F(TorchScript, TrainModeReachesTheScriptedCode) {
  const auto x = load_tensor(dir_ / "inputs.pt");
  torch::NoGradGuard no_grad;
  {
    ts::Model model = ts::models::load_torchscript(dir_ / "scripted.pt");
    model.eval();
    const auto eval_out = model.forward(x);
    model.train();  // BatchNorm now normalizes with the batch's statistics (and updates its own)
    EXPECT_FALSE(torch::allclose(model.forward(x), eval_out, 1e-4, 1e-5));
  }
  // Kept in eval, the BatchNorm layers use their running statistics, and leave them alone.
  ts::Model model = ts::models::load_torchscript(dir_ / "scripted.pt");
  model.eval();
  const auto eval_out = model.forward(x);
  const auto mean = model.module().named_buffers()["features.1.running_mean"].clone();
  ts::models::freeze(model, {"features"}, /*freeze_norm_stats=*/true);
  model.train();
  EXPECT_TRUE(torch::allclose(model.forward(x), eval_out, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(model.module().named_buffers()["features.1.running_mean"], mean));
}

// Fine-tuned in C++ on the other five classes: only the new head changes.
TEST_F(TorchScript, FinetuneTrainsANewHeadOnAFrozenBackbone) {
  // The source was trained on standardized inputs and does not say so: the probe finds out.
  Result r =
      cli("finetune --from scripted.pt --set 'data.classes=[5,6,7,8,9]' --set "
          "data.limit=2000 --set data.test_limit=2000 --epochs 3 --batch-size 64 --name ft "
          "--progress plain --no-dashboard --head-only");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("normalization: the new data's statistics (mean 0."), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("recorded the statistics of its training inputs"), std::string::npos);
  EXPECT_NE(r.out.find("epoch 1: head phase: the frozen backbone's features cached"),
            std::string::npos);
  EXPECT_NE(r.out.find("fine-tuning: head only (finetune.head_only)"), std::string::npos);
  // The choices are the run's too: the normalization in its config, the cache and the recipe in
  // its meta.
  std::ifstream config(dir_ / "runs" / "ft" / "config.toml");
  const std::string toml((std::istreambuf_iterator<char>(config)), {});
  EXPECT_NE(toml.find("normalization probe"), std::string::npos) << toml;
  const fs::path db = dir_ / "runs" / "ft" / "run.sqlite";
  EXPECT_NE(meta(db, "finetune.feature_cache").find("features cached"), std::string::npos);
  EXPECT_EQ(meta(db, "finetune.recipe").rfind("head only", 0), 0u) << meta(db, "finetune.recipe");
  EXPECT_NE(r.out.find("fine-tuning TorchScript model scripted.pt: backbone frozen (10 tensors"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("2 BatchNorm layers keep their statistics"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("new head fc (64 -> 5)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train.max_epochs = 3"), std::string::npos);
  // The backbone is the Python model's, bit for bit (BatchNorm statistics included).
  ts::Model original = ts::models::load_torchscript(dir_ / "scripted.pt");
  ts::Model tuned = ts::models::load_torchscript(dir_ / "scripted.pt");
  ts::models::replace_head(tuned, 5);
  ts::callbacks::load_weights(tuned.module(), dir_ / "runs" / "ft" / "checkpoints" / "best.ckpt");
  auto before = original.module().named_parameters();
  for (const auto& item : tuned.module().named_parameters()) {
    const bool head = item.key().rfind("fc.", 0) == 0;
    EXPECT_EQ(torch::equal(item.value(), before[item.key()]), !head) << item.key();
  }
  auto buffers = original.module().named_buffers();
  for (const auto& item : tuned.module().named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), buffers[item.key()])) << item.key();
  // The head learned the new classes from the frozen features: well above chance (0.2). (How well
  // head-only fine-tuning does against other recipes is bench/run_finetune_bench.sh's question.)
  const double accuracy = test_accuracy(dir_ / "runs" / "ft" / "run.sqlite");
  EXPECT_GT(accuracy, 0.4);

  // The run keeps a copy of the scripted model: with the original moved away (or replaced),
  // `trainscope test` rebuilds the same model and scores it the same.
  EXPECT_EQ(trainscope::testing::file_text(dir_ / "runs" / "ft" / "source" / "model.pt"),
            trainscope::testing::file_text(dir_ / "scripted.pt"));
  fs::rename(dir_ / "scripted.pt", dir_ / "scripted.away");
  Result tested = cli("test ft");
  fs::rename(dir_ / "scripted.away", dir_ / "scripted.pt");
  ASSERT_EQ(tested.status, 0) << tested.out;
  EXPECT_NE(tested.out.find("test accuracy: "), std::string::npos) << tested.out;
  EXPECT_DOUBLE_EQ(test_accuracy(dir_ / "runs" / "ft" / "run.sqlite"), accuracy);
}

TEST_F(TorchScript, AnAmbiguousHeadListsTheCandidatesAndCanBeNamed) {
  const std::string common =
      " --set 'data.classes=[5,6,7,8,9]' --set data.limit=500 --set data.test_limit=500 "
      "--epochs 1 --batch-size 64 --progress off --no-dashboard --no-test";
  Result r = cli("finetune --from softmax.pt --name bad" + common);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("the last layer of softmax is 'out' (a Softmax), not a Linear"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Its Linear layers are: net.hidden (128 -> 64), net.fc (64 -> 5)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line: " << r.out;
  Result named = cli("finetune --from softmax.pt --head net.fc --name named" + common);
  EXPECT_EQ(named.status, 0) << named.out;
  Result relu = cli("finetune --from softmax.pt --head net.features.2 --name relu" + common);
  EXPECT_EQ(relu.status, 2);
  EXPECT_NE(relu.out.find("layer 'net.features.2' of softmax is a ReLU, not a Linear"),
            std::string::npos)
      << relu.out;
  Result missing = cli("finetune --from nowhere.pt --name missing" + common);
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.out.find("finetune.from = \"nowhere.pt\" does not exist"), std::string::npos)
      << missing.out;
}

}  // namespace

// --model torchscript:PATH trains the Python model itself, every parameter, from its weights,
// with every default; the run keeps a copy to resume, test and export from, and exports back to
// TorchScript with the trained weights.
TEST_F(TorchScript, ModelTorchscriptTrainsThePythonModelAndExportsIt) {
  Result r =
      cli("train --model torchscript:scripted.pt --set 'data.classes=[0,1,2,3,4]' --set "
          "data.limit=1500 --set data.test_limit=1000 --epochs 2 --name own --progress plain "
          "--no-dashboard");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("model: TorchScript scripted.pt ("), std::string::npos) << r.out;
  const fs::path run = dir_ / "runs" / "own";
  EXPECT_TRUE(fs::exists(run / "source" / "model.pt")) << "the run keeps its model";
  // Pretrained on these classes, it is well above chance (20%) after two short epochs.
  EXPECT_GT(test_accuracy(run / "run.sqlite"), 0.6);
  // Every tensor trained: the weights moved from the file's.
  ts::Model original = ts::models::load_torchscript(dir_ / "scripted.pt");
  ts::Model trained = ts::models::load_torchscript(dir_ / "scripted.pt");
  ts::callbacks::load_weights(trained.module(), run / "checkpoints" / "best.ckpt");
  EXPECT_FALSE(torch::equal(original.module().named_parameters()["features.0.weight"],
                            trained.module().named_parameters()["features.0.weight"]));
  // Exported as TorchScript, it gives the trained model's outputs; the source file may go.
  fs::rename(dir_ / "scripted.pt", dir_ / "scripted.moved");
  Result e = cli("export own --format torchscript --out own.pt");
  fs::rename(dir_ / "scripted.moved", dir_ / "scripted.pt");
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("torch.jit.load"), std::string::npos) << e.out;
  ts::Model exported = ts::models::load_torchscript(dir_ / "own.pt");
  const auto x = load_tensor(dir_ / "inputs.pt");
  exported.eval();
  trained.eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(exported.forward(x), trained.forward(x)));
}

TEST_F(TorchScript, ModelTorchscriptThatDoesNotFitTheDataIsAUserError) {
  // 5 outputs for 10 classes.
  Result r =
      cli("train --model torchscript:scripted.pt --epochs 1 --set data.limit=500 --no-dashboard");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("returns outputs of shape [2, 5]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10 outputs per example"), std::string::npos) << r.out;
  Result missing = cli("train --model torchscript:nope.pt --epochs 1 --no-dashboard");
  EXPECT_EQ(missing.status, 2) << missing.out;
  EXPECT_NE(missing.out.find("model.name = \"torchscript:nope.pt\" (--model): no such file"),
            std::string::npos)
      << missing.out;
  // A zoo model does not export as TorchScript, and says why.
  Result zoo =
      cli("train --model mlp --epochs 1 --set data.limit=300 --name zoo --no-test "
          "--no-dashboard --progress off");
  ASSERT_EQ(zoo.status, 0) << zoo.out;
  Result e = cli("export zoo --format torchscript");
  EXPECT_EQ(e.status, 2) << e.out;
  EXPECT_NE(e.out.find("is not a TorchScript model"), std::string::npos) << e.out;
}
