#pragma once
// The model zoo: small, well-known architectures chosen by name, with their sizes as options.

#include <trainscope/models/model.h>

#include <cstdint>
#include <string>
#include <vector>

namespace trainscope::models {

// Multi-layer perceptron: flatten -> [linear -> relu -> dropout] per hidden size -> linear.
struct MlpOptions {
  int64_t in_features = 784;
  std::vector<int64_t> hidden = {256, 128};
  int64_t outputs = 10;  // classes, or regression targets
  double dropout = 0.0;
  MlpOptions& in(int64_t v) {
    in_features = v;
    return *this;
  }
  MlpOptions& classes(int64_t v) {
    outputs = v;
    return *this;
  }
};

// The reference CNN: per entry of `channels` a block conv3x3 (padding 1) -> batchnorm -> relu
// -> maxpool 2; then flatten -> [linear -> relu] per hidden size -> linear to `outputs`.
// With the defaults on 1x28x28 inputs: conv 32, conv 64, linear 128, linear 10.
struct CnnOptions {
  int64_t in_channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  std::vector<int64_t> channels = {32, 64};
  std::vector<int64_t> hidden = {128};
  int64_t outputs = 10;
  double dropout = 0.0;
  CnnOptions& classes(int64_t v) {
    outputs = v;
    return *this;
  }
};

Model mlp(const MlpOptions& options = {});
// Throws ConfigError when the input is too small for the number of pooling blocks.
Model cnn(const CnnOptions& options = {});

// What make_model needs to size a zoo model for a task.
struct ModelSpec {
  std::string name = "cnn";                        // one of model_names()
  std::vector<int64_t> input_shape = {1, 28, 28};  // per example: C x H x W (or features)
  int64_t outputs = 10;
  std::vector<int64_t> channels = {32, 64};  // cnn only
  std::vector<int64_t> hidden = {128};
  double dropout = 0.0;
};

// Builds a zoo model by name. Throws ConfigError for an unknown name, listing the known ones.
Model make_model(const ModelSpec& spec);
std::vector<std::string> model_names();

}  // namespace trainscope::models
