// Two inputs: an image and tabular features, in one model. The batch carries the features as a
// named input (data::Batch::inputs, from TensorDataset's inputs); the model's forward takes
// (x, inputs). The class needs both: how bright the image's blob is, and the sign of a feature.
#include "../common/example.h"

namespace ts = trainscope;

namespace {

// N examples: 1x12x12 images with a blob, dim or bright, and 3 features; class = bright XOR (f0>0).
ts::data::TensorDataset make(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto bright = torch::randint(0, 2, {n}, gen);
  auto features = torch::randn({n, 3}, gen);
  auto images = torch::rand({n, 1, 12, 12}, gen) * 0.2;
  auto at = torch::randint(2, 8, {n, 2}, gen);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = at[i][0].item<int64_t>(), c = at[i][1].item<int64_t>();
    images[i].slice(1, r, r + 4).slice(2, c, c + 4) += bright[i].item<int64_t>() ? 0.8 : 0.3;
  }
  auto label = bright.logical_xor(features.select(1, 0) > 0).to(torch::kInt64);
  return ts::data::TensorDataset((images - 0.2) / 0.25, label, {{"features", features}});
}

struct TwoInputsImpl : torch::nn::Module {
  TwoInputsImpl()
      : conv(register_module("conv",
                             torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3).padding(1)))),
        tab(register_module("tab", torch::nn::Linear(3, 16))),
        head(register_module("head",
                             torch::nn::Sequential(torch::nn::Linear(8 + 16, 32), torch::nn::ReLU(),
                                                   torch::nn::Linear(32, 2)))) {}
  torch::Tensor forward(const torch::Tensor& image, const torch::Tensor& features) {
    auto a = torch::relu(conv(image)).amax({2, 3});  // the brightest response per channel
    auto b = torch::relu(tab(features));
    return head->forward(torch::cat({a, b}, 1));  // XOR needs a hidden layer after the join
  }
  torch::nn::Conv2d conv;
  torch::nn::Linear tab;
  torch::nn::Sequential head;
};
TORCH_MODULE(TwoInputs);

}  // namespace

int main(int argc, char** argv) {
  const auto args = example::parse_args(argc, argv);
  torch::manual_seed(0);
  ts::data::DataSplits data;
  data.train = std::make_shared<ts::data::TensorDataset>(make(1200, 1));
  data.val = std::make_shared<ts::data::TensorDataset>(make(300, 2));
  data.test = std::make_shared<ts::data::TensorDataset>(make(300, 3));
  data.num_classes = 2;
  data.class_names = {"A", "B"};
  data.input_shape = {1, 12, 12};
  data.source = "two_inputs (synthetic images and features)";
  auto config = example::config(args, "two_inputs");
  config.set("data.augment", std::vector<std::string>{});  // the blob's place does not matter
  return example::run(args, config, [&](ts::Session& session) {
    TwoInputs net;
    session.data(data).model(
        ts::Model(net.ptr(),
                  ts::Model::ForwardWithInputs(
                      [m = net.ptr()](const torch::Tensor& x, const ts::TensorMap& in) {
                        return m->forward(x, in.at("features"));
                      }),
                  "two_inputs"));
  });
}
