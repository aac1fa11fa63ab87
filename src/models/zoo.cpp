#include <trainscope/error.h>
#include <trainscope/models/zoo.h>

#include <algorithm>

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

void add_classifier(nn::Sequential& net, int64_t in, const std::vector<int64_t>& hidden,
                    int64_t outputs, double dropout) {
  for (int64_t h : hidden) {
    if (dropout > 0) net->push_back(nn::Dropout(dropout));
    net->push_back(nn::Linear(in, h));
    net->push_back(nn::ReLU());
    in = h;
  }
  net->push_back(nn::Linear(in, outputs));
}

}  // namespace

Model mlp(const MlpOptions& o) {
  if (o.in_features < 1 || o.outputs < 1)
    throw ConfigError("mlp: in_features (" + std::to_string(o.in_features) + ") and outputs (" +
                      std::to_string(o.outputs) + ") must be positive");
  nn::Sequential net;
  net->push_back(nn::Flatten());
  add_classifier(net, o.in_features, o.hidden, o.outputs, o.dropout);
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
  for (int64_t c : o.channels) {
    net->push_back(nn::Conv2d(nn::Conv2dOptions(in, c, 3).padding(1)));
    net->push_back(nn::BatchNorm2d(c));
    net->push_back(nn::ReLU());
    net->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    in = c;
  }
  net->push_back(nn::Flatten());
  add_classifier(net, in * h * w, o.hidden, o.outputs, o.dropout);
  return Model(net, "cnn");
}

std::vector<std::string> model_names() { return {"cnn", "mlp"}; }

Model make_model(const ModelSpec& spec) {
  const auto& s = spec.input_shape;
  int64_t features = 1;
  for (int64_t d : s) features *= d;
  if (spec.name == "mlp") {
    MlpOptions o;
    o.in_features = features;
    o.hidden = spec.hidden;
    o.outputs = spec.outputs;
    o.dropout = spec.dropout;
    return mlp(o);
  }
  if (spec.name == "cnn") {
    if (s.size() != 3)
      throw ConfigError("cnn expects image inputs of shape C x H x W; the data has " +
                        std::to_string(s.size()) +
                        " dimensions per example (try model.name = \"mlp\")");
    CnnOptions o;
    o.in_channels = s[0];
    o.height = s[1];
    o.width = s[2];
    o.channels = spec.channels;
    o.hidden = spec.hidden;
    o.outputs = spec.outputs;
    o.dropout = spec.dropout;
    return cnn(o);
  }
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("unknown model '" + spec.name + "'; known models: " + known);
}

}  // namespace trainscope::models
