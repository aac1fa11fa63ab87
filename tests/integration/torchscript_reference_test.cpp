// A model defined in Python and saved with torch.jit.script (tests/interop/make_reference.py,
// run here with Debian's python3-torch) trains in trainscope exactly as in Python: loaded as
// `--model torchscript:PATH` loads it, in train mode, on Python's batch, its outputs, its loss
// (the built-in classification loss) and the gradients its first optimizer step would take equal
// the ones Python computed with the eager model, parameter by parameter, by name. BatchNorm's
// running statistics move by the same batch too.
#include <trainscope/diagnose/diagnostics.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/train/loss.h>
#include <trainscope/train/trainer.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/scratch_dir.h"
#include "process.h"

#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace ts = trainscope;
using nlohmann::json;

namespace {

// The script writes little-endian bytes; read as they are, they are this machine's numbers.
static_assert(std::endian::native == std::endian::little);

// One array make_reference.py wrote: raw C-order bytes in entry["file"], with its dtype and shape.
torch::Tensor read_array(const fs::path& dir, const json& entry) {
  const auto dtype = entry.at("dtype").get<std::string>();
  if (dtype != "float32" && dtype != "int64")
    throw std::runtime_error("reference.json: unexpected dtype " + dtype);
  auto tensor = torch::empty(entry.at("shape").get<std::vector<int64_t>>(),
                             dtype == "float32" ? torch::kFloat32 : torch::kInt64);
  const fs::path file = dir / entry.at("file").get<std::string>();
  std::ifstream in(file, std::ios::binary);
  in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(tensor.nbytes()));
  if (in.gcount() != static_cast<std::streamsize>(tensor.nbytes()) ||
      in.peek() != std::ifstream::traits_type::eof())
    throw std::runtime_error(file.string() + " does not hold " + std::to_string(tensor.nbytes()) +
                             " bytes");
  return tensor;
}

std::set<std::string> keys(const json& object) {
  std::set<std::string> out;
  for (const auto& item : object.items()) out.insert(item.key());
  return out;
}

template <typename Dict>
std::set<std::string> keys_of(const Dict& dict) {
  std::set<std::string> out;
  for (const auto& item : dict) out.insert(item.key());
  return out;
}

// Within float tolerance (floating tensors) or equal (counters such as num_batches_tracked).
::testing::AssertionResult matches(const torch::Tensor& got, const torch::Tensor& want) {
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure()
           << "shape " << got.sizes() << ", Python's " << want.sizes();
  if (!got.is_floating_point())
    return torch::equal(got, want.to(got.scalar_type()))
               ? ::testing::AssertionSuccess()
               : ::testing::AssertionFailure() << got << " vs Python's " << want;
  if (torch::allclose(got, want, /*rtol=*/1e-5, /*atol=*/1e-6))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max |difference| " << (got - want).abs().max().item<double>();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ts::ShapeError& e) {
    return e.what();
  }
  return "";
}

class TorchScriptReference : public ts::testing::ScratchDirTest {
 protected:
  // Runs make_reference.py into the scratch directory; false when python3-torch is missing.
  bool make(json& ref) {
    if (ts::testing::sh("/usr/bin/python3 -c 'import torch'").status != 0) return false;
    const auto made = ts::testing::sh("/usr/bin/python3 '" TRAINSCOPE_SOURCE_DIR
                                      "/tests/interop/make_reference.py' '" +
                                      dir_.string() + "'");
    EXPECT_EQ(made.status, 0) << made.out;
    std::ifstream ref_file(dir_ / "reference.json");
    ref = json::parse(ref_file);
    return true;
  }
};

TEST_F(TorchScriptReference, OutputsLossAndFirstGradientsEqualPython) {
  json ref;
  if (!make(ref)) GTEST_SKIP() << "needs python3-torch";
  const auto x = read_array(dir_, ref.at("x"));
  const auto y = read_array(dir_, ref.at("y"));

  ts::Model model = ts::models::load_torchscript(dir_ / "model.pt");
  model.train();
  const auto output = model.forward(x);
  const auto loss = ts::make_loss(ts::Task::kClassification, {})(output, y);
  loss.backward();

  EXPECT_TRUE(matches(output, read_array(dir_, ref.at("output"))));
  EXPECT_NEAR(loss.item<double>(), ref.at("loss").get<double>(), 1e-6);

  // The same names both ways: a parameter renamed, missing or extra fails here, not silently.
  const auto params = model.module().named_parameters();
  const json& grads = ref.at("gradients");
  ASSERT_FALSE(grads.empty());
  EXPECT_EQ(keys_of(params), keys(grads));
  for (const auto& p : params) {
    if (!grads.contains(p.key())) continue;
    SCOPED_TRACE("gradient of " + p.key());
    ASSERT_TRUE(p.value().grad().defined());
    EXPECT_TRUE(matches(p.value().grad(), read_array(dir_, grads.at(p.key()))));
  }

  // Train mode reached the scripted BatchNorm: its running statistics took the same step.
  const auto buffers = model.module().named_buffers();
  const json& want_buffers = ref.at("buffers");
  EXPECT_EQ(keys_of(buffers), keys(want_buffers));
  for (const auto& b : buffers) {
    if (!want_buffers.contains(b.key())) continue;
    SCOPED_TRACE("buffer " + b.key());
    EXPECT_TRUE(matches(b.value(), read_array(dir_, want_buffers.at(b.key()))));
  }
}

// forward(self, x, features, scale: float = 2.0): the batch's named inputs reach the arguments
// of the same names, a default may be left out, and a missing or unknown input is named with the
// signature. The Trainer fits it on a TensorDataset that carries the features.
TEST_F(TorchScriptReference, NamedInputsReachTheForwardsArgumentsOfTheSameName) {
  json ref;
  if (!make(ref)) GTEST_SKIP() << "needs python3-torch";
  const auto x = read_array(dir_, ref.at("x"));
  const auto features = read_array(dir_, ref.at("two_inputs").at("features"));
  ts::Model model = ts::models::load_torchscript(dir_ / "two_inputs.pt");
  ASSERT_TRUE(model.takes_inputs());
  model.eval();
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(matches(model.forward(x, {{"features", features}}),
                        read_array(dir_, ref.at("two_inputs").at("output"))));
  }
  const std::string missing = error_of([&] { model.forward(x); });
  EXPECT_NE(missing.find("needs the named input \"features\""), std::string::npos) << missing;
  EXPECT_NE(missing.find("forward("), std::string::npos) << missing;
  const std::string unknown = error_of([&] {
    model.forward(x, {{"features", features}, {"lengths", features}});
  });
  EXPECT_NE(unknown.find("named input \"lengths\""), std::string::npos) << unknown;

  torch::manual_seed(1);
  const auto train_x = torch::rand({64, 1, 28, 28});
  const auto train_f = torch::randn({64, 3});
  const auto train_y = (train_f.select(1, 0) > 0).to(torch::kInt64) * 3;  // from the features
  auto data = std::make_shared<ts::data::TensorDataset>(train_x, train_y,
                                                        ts::TensorMap{{"features", train_f}});
  ts::Trainer trainer(ts::TrainerOptions().max_epochs(15).batch_size(16).lr(1e-2).runs_dir(""));
  model.train();
  const ts::FitResult fit = trainer.fit(model, data, nullptr);
  EXPECT_GT(fit.train_metrics.at("accuracy"), 0.9) << fit.train_metrics.at("loss");
}

// Activations called in a TorchScript forward (F.relu, torch.tanh) are found in its graph: their
// outputs are the ones the model's own layers give, and diagnostics sees dead ReLUs in a model
// that is not a Sequential.
TEST_F(TorchScriptReference, ActivationsInTheGraphAreMeasured) {
  json ref;
  if (!make(ref)) GTEST_SKIP() << "needs python3-torch";
  ts::Model model = ts::models::load_torchscript(dir_ / "activations.pt");
  const auto probe = ts::models::torchscript_activations(model);
  ASSERT_TRUE(probe);
  const auto x = read_array(dir_, ref.at("x"));
  const auto params = model.module().named_parameters();
  torch::NoGradGuard no_grad;
  const auto relu = torch::relu(torch::linear(x.flatten(1), params["a.weight"], params["a.bias"]));
  const auto outputs = probe(x, {});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].first, "0:relu");
  EXPECT_EQ(outputs[1].first, "1:tanh");
  EXPECT_TRUE(matches(outputs[0].second, relu));
  EXPECT_TRUE(matches(outputs[1].second, torch::tanh(relu)));
  EXPECT_FALSE(ts::models::torchscript_activations(ts::Model(torch::nn::Linear(2, 2))));

  // Every unit of the hidden layer dead: a bias far below any input's reach.
  params["a.bias"].fill_(-100.0);
  torch::manual_seed(1);
  auto data = std::make_shared<ts::data::TensorDataset>(torch::rand({256, 1, 28, 28}),
                                                        torch::randint(0, 10, {256}));
  ts::Trainer trainer(ts::TrainerOptions().max_epochs(2).batch_size(16).runs_dir(""));
  ts::diagnose::DiagnosticsOptions d;
  d.every = 4;
  d.print = false;
  auto diagnostics = std::make_shared<ts::diagnose::Diagnostics>(d);
  trainer.add_callback(diagnostics);
  torch::GradMode::set_enabled(true);
  trainer.fit(model, data, nullptr);
  // Named by the activation, not only by the zero gradients of the layer before it.
  bool dead_units = false;
  for (const auto& f : diagnostics->findings())
    dead_units = dead_units || (f.kind == "dying_relu" &&
                                f.message.find("100% of the units of 0:relu") != std::string::npos);
  EXPECT_TRUE(dead_units);
}

}  // namespace
