#include <trainscope/error.h>
#include <trainscope/models/zoo.h>

#include <algorithm>
#include <optional>

namespace trainscope {

void Model::train(bool on) const {
  module_->train(on);
  if (on)
    for (const auto& m : *kept_) m->eval();
}

void Model::keep_in_eval(const std::shared_ptr<torch::nn::Module>& module) const {
  if (std::find(kept_->begin(), kept_->end(), module) == kept_->end()) kept_->push_back(module);
  if (module_->is_training()) module->eval();
}

void Model::release_from_eval(const std::shared_ptr<torch::nn::Module>& module) const {
  kept_->erase(std::remove(kept_->begin(), kept_->end(), module), kept_->end());
  module->train(module_->is_training());
}

torch::Tensor Model::forward(const torch::Tensor& x, const TensorMap& inputs) const {
  if (with_inputs_) return with_inputs_(x, inputs);
  if (!inputs.empty()) {
    std::string names;
    for (const auto& [k, v] : inputs) names += (names.empty() ? "" : ", ") + k;
    throw ShapeError("the batch carries the named inputs " + names + " but the model's forward " +
                     "takes x alone; build the Model with a forward of (x, inputs) that uses them");
  }
  return forward_(x);
}

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : module_->parameters()) n += p.numel();
  return n;
}

std::vector<torch::Tensor> Model::snapshot() const {
  std::vector<torch::Tensor> out;
  for (const auto& p : module_->parameters()) out.push_back(p.detach().clone());
  for (const auto& b : module_->buffers()) out.push_back(b.detach().clone());
  return out;
}

void Model::restore(const std::vector<torch::Tensor>& saved) const {
  torch::NoGradGuard no_grad;
  auto params = module_->parameters();
  auto buffers = module_->buffers();
  TORCH_CHECK(saved.size() == params.size() + buffers.size(),
              "Model::restore: snapshot of another model");
  size_t i = 0;
  for (auto& p : params) p.copy_(saved[i++]);
  for (auto& b : buffers) b.copy_(saved[i++]);
}

}  // namespace trainscope

namespace trainscope::models {
namespace nn = torch::nn;

namespace {

nn::AnyModule activation(Activation a) {
  switch (a) {
    case Activation::kLeakyRelu:
      return nn::AnyModule(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.01)));
    case Activation::kGelu:
      return nn::AnyModule(nn::GELU());
    case Activation::kTanh:
      return nn::AnyModule(nn::Tanh());
    case Activation::kSigmoid:
      return nn::AnyModule(nn::Sigmoid());
    case Activation::kRelu:
      break;
  }
  return nn::AnyModule(nn::ReLU());
}

// Normalization of `features` units (a linear layer's outputs, or `features` conv channels).
std::optional<nn::AnyModule> norm(Norm n, int64_t features, bool conv) {
  if (n == Norm::kBatch)
    return conv ? nn::AnyModule(nn::BatchNorm2d(features))
                : nn::AnyModule(nn::BatchNorm1d(features));
  if (n == Norm::kLayer)
    return conv ? nn::AnyModule(nn::GroupNorm(nn::GroupNormOptions(1, features)))
                : nn::AnyModule(nn::LayerNorm(nn::LayerNormOptions({features})));
  return std::nullopt;
}

// The gain kaiming initialization uses for an activation (as torch.nn.init.calculate_gain).
torch::nn::init::NonlinearityType nonlinearity(Activation a) {
  switch (a) {
    case Activation::kLeakyRelu:
      return torch::kLeakyReLU;
    case Activation::kTanh:
      return torch::kTanh;
    case Activation::kSigmoid:
      return torch::kSigmoid;
    case Activation::kGelu:
    case Activation::kRelu:
      break;
  }
  return torch::kReLU;
}

void initialize(nn::Module& net, const LayerOptions& o) {
  if (o.init == Init::kDefault) return;
  torch::NoGradGuard no_grad;
  for (auto& m : net.modules(/*include_self=*/true)) {
    torch::Tensor w, b;
    if (auto* l = m->as<nn::Linear>())
      w = l->weight, b = l->bias;
    else if (auto* c = m->as<nn::Conv2d>())
      w = c->weight, b = c->bias;
    else
      continue;
    if (o.init == Init::kKaiming)
      torch::nn::init::kaiming_normal_(w, o.activation == Activation::kLeakyRelu ? 0.01 : 0.0,
                                       torch::kFanIn, nonlinearity(o.activation));
    else
      torch::nn::init::xavier_uniform_(w);
    if (b.defined()) b.zero_();
  }
}

Norm resolved(Norm n, Norm by_default) { return n == Norm::kAuto ? by_default : n; }

void add_classifier(nn::Sequential& net, int64_t in, const std::vector<int64_t>& hidden,
                    int64_t outputs, double dropout, const LayerOptions& o, Norm hidden_norm) {
  for (int64_t h : hidden) {
    if (dropout > 0) net->push_back(nn::Dropout(dropout));
    net->push_back(nn::Linear(in, h));
    if (auto n = norm(hidden_norm, h, /*conv=*/false)) net->push_back(*n);
    net->push_back(activation(o.activation));
    in = h;
  }
  net->push_back(nn::Linear(in, outputs));
}

nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

// conv3x3 -> norm -> activation -> conv3x3 -> norm, plus the shortcut, then activation.
struct BasicBlockImpl : nn::Module, TracesActivations {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, const LayerOptions& o)
      : conv1(register_module("conv1", conv3x3(in, out, stride))),
        conv2(register_module("conv2", conv3x3(out, out, 1))),
        act(activation(o.activation)),
        kind(o.activation == Activation::kRelu      ? "relu"
             : o.activation == Activation::kTanh    ? "tanh"
             : o.activation == Activation::kSigmoid ? "sigmoid"
                                                    : "") {
    const Norm n = resolved(o.norm, Norm::kBatch);
    norm1 = register_module("norm1", nn::Sequential());
    norm2 = register_module("norm2", nn::Sequential());
    for (auto* seq : {&norm1, &norm2}) {
      auto m = norm(n, out, true);
      (*seq)->push_back(m ? *m : nn::AnyModule(nn::Identity()));
    }
    register_module("act", act.ptr());
    if (stride != 1 || in != out) {
      shortcut = register_module("shortcut", nn::Sequential());
      shortcut->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      if (auto m = norm(n, out, true)) shortcut->push_back(*m);
    }
  }
  torch::Tensor forward(const torch::Tensor& x) { return forward_traced(x, nullptr); }
  torch::Tensor forward_traced(const torch::Tensor& x, const Seen& seen) override {
    auto y = act.forward(norm1->forward(conv1->forward(x)));
    if (seen && !kind.empty()) seen("act.0", kind, y);
    y = norm2->forward(conv2->forward(y));
    auto out = act.forward(y + (shortcut ? shortcut->forward(x) : x));
    if (seen && !kind.empty()) seen("act.1", kind, out);
    return out;
  }
  nn::Conv2d conv1, conv2;
  nn::Sequential norm1{nullptr}, norm2{nullptr}, shortcut{nullptr};
  nn::AnyModule act;
  std::string kind;  // of the activation, as diagnostics measures it; "" for the others
};
TORCH_MODULE(BasicBlock);

struct GlobalAvgPoolImpl : nn::Module {
  torch::Tensor forward(const torch::Tensor& x) { return x.mean({2, 3}); }
};
TORCH_MODULE(GlobalAvgPool);

}  // namespace

Model mlp(const MlpOptions& o) {
  if (o.in_features < 1 || o.outputs < 1)
    throw ConfigError("mlp: in_features (" + std::to_string(o.in_features) + ") and outputs (" +
                      std::to_string(o.outputs) + ") must be positive");
  nn::Sequential net;
  net->push_back(nn::Flatten());
  add_classifier(net, o.in_features, o.hidden, o.outputs, o.dropout, o.layers,
                 resolved(o.layers.norm, Norm::kNone));
  initialize(*net, o.layers);
  return Model(net, "mlp");
}

Model cnn(const CnnOptions& o) {
  const int64_t blocks = static_cast<int64_t>(o.channels.size());
  int64_t h = o.height, w = o.width;
  for (int64_t i = 0; i < blocks; ++i) h /= 2, w /= 2;
  if (h < 1 || w < 1)
    throw ConfigError("cnn: " + std::to_string(blocks) +
                      " pooling blocks need inputs of at least " + std::to_string(1 << blocks) +
                      "x" + std::to_string(1 << blocks) + " pixels; got " +
                      std::to_string(o.height) + "x" + std::to_string(o.width));
  nn::Sequential net;
  int64_t in = o.in_channels;
  const Norm conv_norm = resolved(o.layers.norm, Norm::kBatch);
  for (int64_t c : o.channels) {
    net->push_back(nn::Conv2d(nn::Conv2dOptions(in, c, 3).padding(1)));
    if (auto n = norm(conv_norm, c, /*conv=*/true)) net->push_back(*n);
    net->push_back(activation(o.layers.activation));
    net->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    in = c;
  }
  net->push_back(nn::Flatten());
  // The classifier's hidden layers stay unnormalized unless a norm is asked for.
  add_classifier(net, in * h * w, o.hidden, o.outputs, o.dropout, o.layers,
                 resolved(o.layers.norm, Norm::kNone));
  initialize(*net, o.layers);
  return Model(net, "cnn");
}

Model resnet(const ResNetOptions& o) {
  if (o.width < 1 || o.blocks < 1 || o.outputs < 1 || o.in_channels < 1)
    throw ConfigError("resnet: width (" + std::to_string(o.width) + "), blocks (" +
                      std::to_string(o.blocks) + "), channels and outputs must be positive");
  if (o.height < 8 || o.width_px < 8)
    throw ConfigError("resnet needs images of at least 8x8 pixels; got " +
                      std::to_string(o.height) + "x" + std::to_string(o.width_px));
  nn::Sequential net;
  net->push_back(conv3x3(o.in_channels, o.width, 1));
  if (auto n = norm(resolved(o.layers.norm, Norm::kBatch), o.width, true)) net->push_back(*n);
  net->push_back(activation(o.layers.activation));
  int64_t in = o.width;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t out = o.width << stage;
    for (int64_t b = 0; b < o.blocks; ++b) {
      net->push_back(BasicBlock(in, out, stage > 0 && b == 0 ? 2 : 1, o.layers));
      in = out;
    }
  }
  net->push_back(GlobalAvgPool());
  if (o.dropout > 0) net->push_back(nn::Dropout(o.dropout));
  net->push_back(nn::Linear(in, o.outputs));
  if (o.layers.init != Init::kDefault) {
    initialize(*net, o.layers);
  } else {
    // As torchvision's ResNets: kaiming normal (fan out) for the convs; the classifier keeps
    // LibTorch's default, so that a fresh model's loss starts near log C.
    torch::NoGradGuard no_grad;
    for (auto& m : net->modules(/*include_self=*/true))
      if (auto* c = m->as<nn::Conv2d>())
        torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  return Model(net, "resnet");
}

std::vector<std::string> model_names() { return {"cnn", "mlp", "resnet"}; }

Model make_model(const ModelSpec& spec) {
  const auto& s = spec.input_shape;
  int64_t features = 1;
  for (int64_t d : s) features *= d;
  LayerOptions layers{spec.activation, spec.norm, spec.init};
  const bool sized = spec.depth > 0 && spec.width > 0;
  if ((spec.depth > 0) != (spec.width > 0))
    throw ConfigError("model.depth (" + std::to_string(spec.depth) + ") and model.width (" +
                      std::to_string(spec.width) +
                      ") go together: set both, or neither to use the size lists");
  if (spec.name == "mlp") {
    MlpOptions o;
    o.in_features = features;
    o.hidden = sized ? std::vector<int64_t>(spec.depth, spec.width) : spec.hidden;
    o.outputs = spec.outputs;
    o.dropout = spec.dropout;
    o.layers = layers;
    return mlp(o);
  }
  if (spec.name == "cnn" || spec.name == "resnet") {
    if (s.size() != 3)
      throw ConfigError(spec.name + " expects image inputs of shape C x H x W; the data has " +
                        std::to_string(s.size()) +
                        " dimensions per example (try model.name = \"mlp\")");
    if (spec.name == "resnet") {
      ResNetOptions o;
      o.in_channels = s[0];
      o.height = s[1];
      o.width_px = s[2];
      if (sized) o.blocks = spec.depth, o.width = spec.width;
      o.outputs = spec.outputs;
      o.dropout = spec.dropout;
      o.layers = layers;
      return resnet(o);
    }
    CnnOptions o;
    o.in_channels = s[0];
    o.height = s[1];
    o.width = s[2];
    o.channels = spec.channels;
    if (sized) {
      o.channels.clear();
      for (int64_t i = 0; i < spec.depth; ++i) o.channels.push_back(spec.width << i);
    }
    o.hidden = spec.hidden;
    o.outputs = spec.outputs;
    o.dropout = spec.dropout;
    o.layers = layers;
    return cnn(o);
  }
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("unknown model '" + spec.name + "'; known models: " + known);
}

}  // namespace trainscope::models
