// A loss and a metric of your own, and a step of your own, on an imbalanced problem (1 positive
// in 7):
//   - a focal loss (Lin et al., 2017), down-weighting the easy majority, as the fit's loss;
//   - balanced accuracy, the mean of each class's recall, as a Metric: its state is counts, so a
//     checkpoint mid-epoch and the ranks of a data-parallel job carry it; train.monitor ranks
//     epochs by it;
//   - with --multi-loss, a step of your own (TrainerOptions::step): the model also predicts the
//     example's distance from the origin, a second target the batch carries by name, and the
//     step adds that regression loss to the focal loss.
#include "../common/example.h"

#include <cstring>

namespace ts = trainscope;

namespace {

// Focal loss, gamma 2: cross-entropy scaled by (1 - p_true)^gamma.
torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& target) {
  const auto log_p = torch::log_softmax(logits, 1).gather(1, target.view({-1, 1})).squeeze(1);
  return (-(1 - log_p.exp()).pow(2) * log_p).mean();
}

class BalancedAccuracy : public ts::Metric {
 public:
  std::string name() const override { return "balanced_accuracy"; }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    const int64_t c = output.size(1);
    const auto right = output.argmax(1).eq(target).to(torch::kFloat64);
    // [classes, 2]: right answers and examples of each class, summed on the device.
    auto counts = torch::stack({torch::zeros({c}, right.options()).index_add_(0, target, right),
                                torch::bincount(target, {}, c).to(torch::kFloat64)},
                               1);
    counts_ = counts_.defined() ? counts_ + counts : counts;
  }
  double compute() const override {
    if (!counts_.defined()) return std::nan("");
    const auto c = counts_.to(torch::kCPU);
    const auto present = c.select(1, 1) > 0;
    return (c.select(1, 0) / c.select(1, 1).clamp_min(1))
        .masked_select(present)
        .mean()
        .item<double>();
  }
  void reset() override { counts_ = torch::Tensor(); }
  std::vector<torch::Tensor> state() const override { return {counts_}; }
  void load_state(const std::vector<torch::Tensor>& s) override { counts_ = s.at(0); }
  std::unique_ptr<ts::Metric> fresh() const override {
    return std::make_unique<BalancedAccuracy>();
  }

 private:
  torch::Tensor counts_;
};

// Two features; the positives (about 1 in 7) lie outside a circle of radius 2.
ts::data::TensorDataset make(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x = torch::randn({n, 2}, gen);
  auto radius = x.norm(2, 1);
  auto y = radius.gt(2.0).to(torch::kInt64);
  return ts::data::TensorDataset(x, y, {}, {{"radius", radius}});
}

}  // namespace

int main(int argc, char** argv) {
  bool multi_loss = false;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i)
    if (std::strcmp(argv[i], "--multi-loss") == 0)
      multi_loss = true;
    else
      rest.push_back(argv[i]);
  const auto args = example::parse_args(static_cast<int>(rest.size()), rest.data());
  torch::manual_seed(0);
  ts::data::DataSplits data;
  data.train = std::make_shared<ts::data::TensorDataset>(make(3000, 1));
  data.val = std::make_shared<ts::data::TensorDataset>(make(600, 2));
  data.test = std::make_shared<ts::data::TensorDataset>(make(600, 3));
  data.num_classes = 2;
  data.class_names = {"inside", "outside"};
  data.input_shape = {2};
  data.source = "points outside a circle (synthetic)";
  auto config = example::config(args, multi_loss ? "multi_loss" : "focal");
  config.set("train.monitor", std::string("val_balanced_accuracy"));
  return example::run(args, config, [&](ts::Session& session) {
    // Two class logits, and with --multi-loss a third output: the predicted radius.
    torch::nn::Sequential net(torch::nn::Linear(2, 64), torch::nn::Tanh(),
                              torch::nn::Linear(64, 64), torch::nn::Tanh(),
                              torch::nn::Linear(64, multi_loss ? 3 : 2));
    session.data(data)
        .model(ts::Model(net, "ring_mlp"))
        .add_metric(std::make_shared<BalancedAccuracy>());
    if (!multi_loss) {
      session.loss(focal_loss);
      return;
    }
    session.step([](const ts::Model& model, const ts::data::Batch& batch) {
      const auto out = model.forward(batch.x);
      const auto logits = out.slice(1, 0, 2);
      const auto radius = torch::mse_loss(out.select(1, 2), batch.targets.at("radius"));
      return ts::StepResult{focal_loss(logits, batch.y) + 0.1 * radius, logits};
    });
  });
}
