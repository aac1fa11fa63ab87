#pragma once
// The model zoo: small, well-known architectures chosen by name, with their sizes as options.

#include <trainscope/config.h>
#include <trainscope/models/model.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace trainscope::models {

// The nonlinearity after each hidden layer (model.activation).
enum class Activation { kRelu, kLeakyRelu, kGelu, kTanh, kSigmoid };
inline constexpr EnumName<Activation> kActivationNames[] = {{Activation::kRelu, "relu"},
                                                            {Activation::kLeakyRelu, "leaky_relu"},
                                                            {Activation::kGelu, "gelu"},
                                                            {Activation::kTanh, "tanh"},
                                                            {Activation::kSigmoid, "sigmoid"}};
// Normalization after each hidden layer's linear or conv (model.norm). kAuto: batch norm in the
// cnn and the resnet, none in the mlp. Layer norm on conv features normalizes over C, H and W.
enum class Norm { kAuto, kNone, kBatch, kLayer };
inline constexpr EnumName<Norm> kNormNames[] = {
    {Norm::kAuto, "auto"}, {Norm::kNone, "none"}, {Norm::kBatch, "batch"}, {Norm::kLayer, "layer"}};
// Initialization of the weights of linear and conv layers (model.init): LibTorch's default
// (kaiming uniform with a = sqrt(5), as PyTorch), kaiming normal for the activation, or xavier
// uniform; biases start at zero with the latter two.
enum class Init { kDefault, kKaiming, kXavier };
inline constexpr EnumName<Init> kInitNames[] = {
    {Init::kDefault, "default"}, {Init::kKaiming, "kaiming"}, {Init::kXavier, "xavier"}};

// What every zoo model's hidden layers are made of.
struct LayerOptions {
  Activation activation = Activation::kRelu;
  Norm norm = Norm::kAuto;
  Init init = Init::kDefault;
};

// Multi-layer perceptron: flatten -> [dropout -> linear -> norm -> activation] per hidden size ->
// linear.
struct MlpOptions {
  int64_t in_features = 784;
  std::vector<int64_t> hidden = {256, 128};
  int64_t outputs = 10;  // classes, or regression targets
  double dropout = 0.0;  // before each hidden linear layer
  LayerOptions layers = {};
  MlpOptions& in(int64_t v) {
    in_features = v;
    return *this;
  }
  MlpOptions& classes(int64_t v) {
    outputs = v;
    return *this;
  }
};

// The reference CNN: per entry of `channels` a block conv3x3 (padding 1) -> norm -> activation
// -> maxpool 2; then flatten -> [dropout -> linear -> activation] per hidden size -> linear to
// `outputs`. With the defaults on 1x28x28 inputs: conv 32, conv 64, linear 128, linear 10.
struct CnnOptions {
  int64_t in_channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  std::vector<int64_t> channels = {32, 64};
  std::vector<int64_t> hidden = {128};
  int64_t outputs = 10;
  double dropout = 0.0;  // before each hidden linear layer
  LayerOptions layers = {};
  CnnOptions& classes(int64_t v) {
    outputs = v;
    return *this;
  }
};

// A small residual network for 28x28 and 32x32 images (1 or 3 channels), after He et al.'s
// CIFAR ResNets: a conv3x3 stem of `width` channels; three stages of `blocks` basic blocks
// (conv3x3 -> norm -> activation -> conv3x3 -> norm, plus the input, then activation) at width,
// 2 x width and 4 x width channels, the second and third starting with stride 2 (a 1x1 conv
// with norm on the shortcut); global average pooling; [dropout] -> linear to `outputs`.
// The defaults (width 16, 2 blocks) make a ResNet-14 of 0.17 M parameters. With model.init at its
// default the convs get kaiming normal (fan out) and the classifier LibTorch's default, as in
// torchvision.
struct ResNetOptions {
  int64_t in_channels = 1;
  int64_t height = 28;
  int64_t width_px = 28;
  int64_t width = 16;  // channels of the first stage
  int64_t blocks = 2;  // basic blocks per stage
  int64_t outputs = 10;
  double dropout = 0.0;
  LayerOptions layers = {};
};

Model mlp(const MlpOptions& options = {});
// Throws ConfigError when the input is too small for the number of pooling blocks.
Model cnn(const CnnOptions& options = {});
// Throws ConfigError for sizes below 1 or an input smaller than 8x8.
Model resnet(const ResNetOptions& options = {});

// What make_model needs to size a zoo model for a task.
struct ModelSpec {
  std::string name = "cnn";                        // one of model_names()
  std::vector<int64_t> input_shape = {1, 28, 28};  // per example: C x H x W (or features)
  int64_t outputs = 10;
  std::vector<int64_t> channels = {32, 64};  // cnn only
  std::vector<int64_t> hidden = {128};
  double dropout = 0.0;
  Activation activation = Activation::kRelu;
  Norm norm = Norm::kAuto;
  Init init = Init::kDefault;
  // Depth and width instead of the lists (0: the lists): the mlp gets `depth` hidden layers of
  // `width`; the cnn `depth` conv blocks of width, 2 x width, ...; the resnet `depth` blocks per
  // stage and `width` channels in its first (defaults 2 and 16).
  int64_t depth = 0;
  int64_t width = 0;
};

// A module that is not a Sequential but reports its activations' outputs as it computes, so
// that diagnostics can measure them (dead ReLUs, saturated units) inside it: the resnet's
// residual blocks are such modules. A module of your own may implement it too.
class TracesActivations {
 public:
  // name: the activation's place in the module ("act.1"); kind: "relu", "sigmoid" or "tanh".
  using Seen = std::function<void(const std::string& name, const std::string& kind,
                                  const torch::Tensor& output)>;
  virtual ~TracesActivations() = default;
  // forward(x), calling `seen` (when set) with each activation's output.
  virtual torch::Tensor forward_traced(const torch::Tensor& x, const Seen& seen) = 0;
};

// Builds a zoo model by name. Throws ConfigError for an unknown name, listing the known ones.
Model make_model(const ModelSpec& spec);
std::vector<std::string> model_names();

}  // namespace trainscope::models
