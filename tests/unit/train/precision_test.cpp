// Mixed precision and devices: bf16 autocast trains on CPU with float32 weights; the fp16 loss
// scaler skips overflowing steps and adapts its scale as torch.cuda.amp.GradScaler does; device and
// precision mistakes are named. The _CUDA tests run where there is a GPU and skip elsewhere.
#include <trainscope/trainscope.h>

#include <gtest/gtest.h>

#include "train/amp.h"

namespace ts = trainscope;

namespace {

std::shared_ptr<ts::data::TensorDataset> separable(int64_t n) {
  torch::manual_seed(2);
  auto x = torch::randn({n, 8});
  auto y = (x.slice(1, 0, 4).sum(1) > 0).to(torch::kInt64);
  return std::make_shared<ts::data::TensorDataset>(x, y);
}

ts::TrainerOptions quiet() {
  return ts::TrainerOptions().runs_dir("").max_epochs(6).batch_size(32).lr(1e-2);
}

// What the step computed in: the outputs' dtype and the weights' dtype.
class DtypeProbe : public ts::Callback {
 public:
  std::string name() const override { return "dtype_probe"; }
  void on_after_backward(ts::TrainState& s) override {
    output = s.outputs.scalar_type();
    weight = s.model->parameters().front().scalar_type();
    grad = s.model->parameters().front().grad().scalar_type();
  }
  c10::ScalarType output = c10::ScalarType::Undefined, weight = output, grad = output;
};

ts::Model net() {
  torch::manual_seed(0);
  return ts::Model(
      torch::nn::Sequential(torch::nn::Linear(8, 32), torch::nn::ReLU(), torch::nn::Linear(32, 2)));
}

}  // namespace

TEST(Precision, Bf16AutocastTrainsOnCpuWithFloat32Weights) {
  auto data = separable(512);
  auto model = net();
  ts::Trainer trainer(quiet().precision(ts::Precision::kBf16));
  auto probe = std::make_shared<DtypeProbe>();
  trainer.add_callback(probe);
  auto fit = trainer.fit(model, data, data);
  EXPECT_EQ(probe->output, torch::kBFloat16) << "the forward ran in bfloat16";
  EXPECT_EQ(probe->weight, torch::kFloat32);
  EXPECT_EQ(probe->grad, torch::kFloat32);
  EXPECT_GT(fit.val_metrics.at("accuracy"), 0.9);
  EXPECT_FALSE(at::autocast::is_cpu_enabled()) << "autocast is off again after the step";
}

// Channels-last on the CPU: every 4-D weight, the first convolution's one input channel included,
// gets NHWC strides (.contiguous() would keep NCHW strides there, the slow mixed-format path), and
// the step, validation and the test pass give the NCHW model's results within float tolerance.
TEST(Precision, ChannelsLastOnCpuStridesEveryConvolutionAndTrainsTheSameModel) {
  torch::manual_seed(0);
  auto x = torch::randn({256, 1, 8, 8});
  auto y = (x.slice(2, 0, 4).mean({1, 2, 3}) > 0).to(torch::kInt64);
  auto data = std::make_shared<ts::data::TensorDataset>(x, y);
  auto fit = [&](bool channels_last) {
    ts::models::CnnOptions o;
    o.height = o.width = 8;
    o.channels = {4, 8};
    o.hidden = {16};
    o.outputs = 2;
    torch::manual_seed(1);
    ts::Model model = ts::models::cnn(o);
    ts::Trainer trainer(quiet().max_epochs(2).channels_last(channels_last));
    const ts::FitResult result = trainer.fit(model, data, data);
    return std::make_tuple(model, result, trainer.test(model, *data));
  };
  auto [nchw, nchw_fit, ignored] = fit(false);
  auto [nhwc, nhwc_fit, nhwc_test] = fit(true);
  for (const auto& p : nhwc.parameters()) {
    if (p.dim() != 4) continue;
    const int64_t c = p.size(1), h = p.size(2), w = p.size(3);
    EXPECT_EQ(p.strides(), c10::IntArrayRef({c * h * w, 1, w * c, c})) << p.sizes();
  }
  // 16 steps apart, rounding differences grow a little.
  EXPECT_NEAR(nhwc_fit.train_metrics.at("loss"), nchw_fit.train_metrics.at("loss"), 1e-3);
  EXPECT_NEAR(nhwc_fit.val_metrics.at("loss"), nchw_fit.val_metrics.at("loss"), 1e-3);
  // The same weights in either layout: the same outputs.
  const ts::EvalResult again = ts::Trainer(quiet()).test(nhwc, *data);
  EXPECT_NEAR(again.metrics.at("loss"), nhwc_test.metrics.at("loss"), 1e-5);
}

TEST(Precision, GradScalerSkipsOverflowAndAdaptsItsScale) {
  ts::detail::GradScaler scaler;
  EXPECT_EQ(scaler.scale(), 65536.0);
  auto w = torch::ones({3}, torch::requires_grad());
  (scaler.scale_loss(w.sum() * 2)).backward();
  EXPECT_TRUE(scaler.unscale({w}));
  EXPECT_TRUE(torch::allclose(w.grad(), torch::full({3}, 2.0))) << "unscaled";
  scaler.update(true);
  w.mutable_grad() = torch::tensor({1.0f, std::numeric_limits<float>::infinity(), 0.0f});
  EXPECT_FALSE(scaler.unscale({w})) << "an overflow is found";
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_EQ(scaler.good_steps(), 0);
  for (int i = 0; i < 2000; ++i) scaler.update(true);
  EXPECT_EQ(scaler.scale(), 65536.0) << "doubles after 2000 finite steps";
}

TEST(Precision, DeviceAndPrecisionMistakesAreNamed) {
  EXPECT_FALSE(ts::value_of("fp8", ts::kPrecisionNames));
  if (!torch::cuda::is_available()) {
    try {
      ts::Trainer t(quiet().precision(ts::Precision::kFp16));
      FAIL();
    } catch (const ts::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("precision \"fp16\" needs a CUDA device"),
                std::string::npos);
    }
    EXPECT_THROW(ts::Trainer(quiet().device(*ts::DeviceChoice::parse("cuda"))), ts::ConfigError);
    EXPECT_EQ(ts::Trainer(quiet().device(ts::DeviceChoice{})).device(), torch::Device(torch::kCPU));
  }
}

TEST(Precision, Fp16WithLossScalingAndChannelsLastTrainOnCuda_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(0);
  auto x = torch::randn({512, 1, 8, 8});
  auto y = (x.mean({1, 2, 3}) > 0).to(torch::kInt64);
  auto data = std::make_shared<ts::data::TensorDataset>(x, y);
  ts::models::CnnOptions o;
  o.height = o.width = 8;
  o.channels = {8};
  o.outputs = 2;
  auto model = ts::models::cnn(o);
  ts::Trainer trainer(quiet()
                          .device(*ts::DeviceChoice::parse("cuda"))
                          .precision(ts::Precision::kFp16)
                          .channels_last(true));
  auto probe = std::make_shared<DtypeProbe>();
  trainer.add_callback(probe);
  auto fit = trainer.fit(model, data, data);
  EXPECT_EQ(probe->output, torch::kHalf);
  EXPECT_EQ(probe->weight, torch::kFloat32);
  EXPECT_TRUE(model.parameters().front().is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_GT(fit.val_metrics.at("accuracy"), 0.8);
}

TEST(Precision, AutoPicksTheGpuAndBf16Trains_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto data = separable(512);
  auto model = net();
  ts::Trainer trainer(quiet().device(ts::DeviceChoice{}).precision(ts::Precision::kBf16));
  EXPECT_TRUE(trainer.device().is_cuda());
  auto fit = trainer.fit(model, data, data);
  EXPECT_TRUE(model.parameters().front().is_cuda());
  EXPECT_GT(fit.val_metrics.at("accuracy"), 0.9);
}
