// Segmentation of synthetic shapes: 24x24 images with a disc and a square; every pixel is
// background, disc or square. train.task = segmentation trains cross-entropy per pixel on
// [N, 3, H, W] logits; the metrics are pixel accuracy and mIoU, and the test report gives each
// class's IoU.
#include "../common/example.h"

namespace ts = trainscope;

namespace {

ts::data::TensorDataset make(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t s = 24;
  auto images = torch::rand({n, 1, s, s}, gen) * 0.3;
  auto masks = torch::zeros({n, s, s}, torch::kInt64);
  const auto ys = torch::arange(s).view({s, 1}).expand({s, s});
  const auto xs = torch::arange(s).view({1, s}).expand({s, s});
  auto where = torch::randint(4, s - 4, {n, 4}, gen);
  auto size = torch::randint(3, 6, {n, 2}, gen);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t cy = where[i][0].item<int64_t>(), cx = where[i][1].item<int64_t>();
    const int64_t r = size[i][0].item<int64_t>();
    const auto disc = (ys - cy).square() + (xs - cx).square() <= r * r;
    const int64_t sy = where[i][2].item<int64_t>() - 2, sx = where[i][3].item<int64_t>() - 2;
    const int64_t a = size[i][1].item<int64_t>();
    const auto square =
        (ys >= sy).logical_and(ys < sy + a).logical_and(xs >= sx).logical_and(xs < sx + a);
    masks[i].masked_fill_(disc, 1);
    masks[i].masked_fill_(square, 2);  // the square lies on top
    images[i][0] += disc.to(torch::kFloat32) * 0.6 + square.to(torch::kFloat32) * 0.6;
  }
  return ts::data::TensorDataset((images - 0.3) / 0.3, masks);
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = example::parse_args(argc, argv);
  torch::manual_seed(0);
  ts::data::DataSplits data;
  data.train = std::make_shared<ts::data::TensorDataset>(make(600, 1));
  data.val = std::make_shared<ts::data::TensorDataset>(make(120, 2));
  data.test = std::make_shared<ts::data::TensorDataset>(make(120, 3));
  data.num_classes = 3;
  data.class_names = {"background", "disc", "square"};
  data.input_shape = {1, 24, 24};
  data.source = "segmentation (synthetic shapes)";
  auto config = example::config(args, "segmentation");
  config.set("train.task", std::string("segmentation"));
  return example::run(args, config, [&](ts::Session& session) {
    // A small fully convolutional net: the shapes' edges (3x3), then a wider view (dilated) to
    // tell a disc's edge from a square's.
    namespace nn = torch::nn;
    nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(1, 16, 3).padding(1)), nn::ReLU(),
                       nn::Conv2d(nn::Conv2dOptions(16, 16, 3).padding(2).dilation(2)), nn::ReLU(),
                       nn::Conv2d(nn::Conv2dOptions(16, 16, 3).padding(4).dilation(4)), nn::ReLU(),
                       nn::Conv2d(nn::Conv2dOptions(16, 3, 1)));
    session.data(data).model(ts::Model(net, "fcn"));
  });
}
