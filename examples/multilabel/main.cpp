// Multilabel classification: each example may have any of four labels. train.task =
// multilabel trains with BCE-with-logits on one logit per label; f1 macro and micro come from
// train.metrics, and the test report has a row per label.
#include "../common/example.h"

namespace ts = trainscope;

namespace {

// 10 features; each label is a rule over a few of them.
ts::data::TensorDataset make(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x = torch::randn({n, 10}, gen);
  auto y = torch::stack({x.select(1, 0) > 0.5, (x.select(1, 1) + x.select(1, 2)) > 0,
                         x.select(1, 3) * x.select(1, 4) > 0, x.select(1, 5) < -0.8},
                        1)
               .to(torch::kFloat32);
  return ts::data::TensorDataset(x, y);
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = example::parse_args(argc, argv);
  torch::manual_seed(0);
  ts::data::DataSplits data;
  data.train = std::make_shared<ts::data::TensorDataset>(make(2000, 1));
  data.val = std::make_shared<ts::data::TensorDataset>(make(400, 2));
  data.test = std::make_shared<ts::data::TensorDataset>(make(400, 3));
  data.num_classes = 4;  // one output per label
  data.class_names = {"sunny", "outdoor", "people", "night"};
  data.input_shape = {10};
  data.source = "multilabel (synthetic)";
  auto config = example::config(args, "multilabel");
  config.set("train.task", std::string("multilabel"));
  config.set("train.metrics", std::vector<std::string>{"f1_macro", "f1_micro"});
  return example::run(args, config, [&](ts::Session& session) {
    torch::nn::Sequential net(torch::nn::Linear(10, 64), torch::nn::ReLU(),
                              torch::nn::Linear(64, 64), torch::nn::ReLU(),
                              torch::nn::Linear(64, 4));
    session.data(data).model(ts::Model(net, "multilabel_mlp"));
  });
}
