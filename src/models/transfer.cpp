#include <trainscope/error.h>
#include <trainscope/models/transfer.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/payload.h>

#include "scripted_module.h"

#include <cmath>
#include <set>

namespace trainscope::models {
namespace {

bool under(const std::string& name, const std::string& prefix) {
  return prefix.empty() || name == prefix ||
         (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
          name[prefix.size()] == '.');
}

bool under_any(const std::string& name, const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return true;
  for (const auto& p : prefixes)
    if (under(name, p)) return true;
  return false;
}

// The 2-D weight of a Linear module (zoo or scripted), or undefined.
torch::Tensor linear_weight(const torch::nn::Module& m) {
  if (detail::layer_kind(m) != "Linear") return {};
  const auto* w = m.named_parameters(/*recurse=*/false).find("weight");
  return w && w->dim() == 2 ? *w : torch::Tensor();
}

std::string candidates(const Model& model) {
  std::string out;
  for (const auto& l : linear_layers(model)) out += (out.empty() ? "" : ", ") + l.describe();
  return out.empty() ? "none: the model has no Linear layer" : out;
}

// A layer without parameters that gives its inputs' values back (in eval mode): what may follow
// a head, as timm's ClassifierHead puts a Flatten after its fc.
bool passes_values_on(const torch::nn::Module& m) {
  static const std::set<std::string> kinds = {"Dropout", "Dropout1d", "Dropout2d", "AlphaDropout",
                                              "Flatten", "Unflatten", "Identity"};
  return m.parameters(/*recurse=*/false).empty() && kinds.count(detail::layer_kind(m)) > 0;
}

}  // namespace

bool is_batch_norm(const torch::nn::Module& m) {
  return detail::layer_kind(m).rfind("BatchNorm", 0) == 0;
}

std::string LinearLayer::describe() const {
  return name + " (" + std::to_string(in_features) + " -> " + std::to_string(out_features) + ")";
}

std::vector<LinearLayer> linear_layers(const Model& model) {
  std::vector<LinearLayer> out;
  for (const auto& item : model.module().named_modules("", /*include_self=*/false)) {
    const torch::Tensor w = linear_weight(*item.value());
    if (w.defined()) out.push_back({item.key(), w.size(1), w.size(0)});
  }
  return out;
}

LinearLayer find_head(const Model& model, const std::string& name) {
  const auto modules = model.module().named_modules("", /*include_self=*/false);
  if (!name.empty()) {
    const auto* found = modules.find(name);
    if (found == nullptr)
      throw ConfigError("model " + model.name() + " has no layer named '" + name +
                        "'; its Linear layers are: " + candidates(model));
    const torch::Tensor w = linear_weight(**found);
    if (!w.defined())
      throw ConfigError("layer '" + name + "' of " + model.name() + " is a " +
                        detail::layer_kind(**found) +
                        ", not a Linear; a head to replace must be one of: " + candidates(model));
    return {name, w.size(1), w.size(0)};
  }
  // Leaves in registration order; the head is the last Linear, with only layers that pass the
  // values on unchanged after it.
  std::vector<std::string> leaves;
  for (const auto& item : modules)
    if (item.value()->children().empty()) leaves.push_back(item.key());
  if (leaves.empty())
    throw ConfigError("model " + model.name() + " has no layers to take as its head");
  size_t at = leaves.size();
  while (at > 0 && !linear_weight(*modules[leaves[at - 1]]).defined() &&
         passes_values_on(*modules[leaves[at - 1]]))
    --at;
  if (at == 0 || !linear_weight(*modules[leaves[at - 1]]).defined()) {
    const std::string& last = leaves.back();
    throw ConfigError("the last layer of " + model.name() + " is '" + last + "' (a " +
                      detail::layer_kind(*modules[last]) +
                      "), not a Linear, so which layer is the head is ambiguous; name it with "
                      "--head (finetune.head). Its Linear layers are: " +
                      candidates(model));
  }
  const std::string& name_found = leaves[at - 1];
  const torch::Tensor w = linear_weight(*modules[name_found]);
  return {name_found, w.size(1), w.size(0)};
}

LinearLayer replace_head(const Model& model, int64_t outputs, const std::string& name,
                         HeadInit init) {
  if (outputs < 1)
    throw ConfigError("a new head needs at least 1 output, got " + std::to_string(outputs));
  LinearLayer head = find_head(model, name);
  auto module = model.module().named_modules("", false)[head.name];
  auto params = module->named_parameters(/*recurse=*/false);
  torch::Tensor& weight = params["weight"];
  const double bound = 1.0 / std::sqrt(static_cast<double>(head.in_features));
  auto fresh = [&](std::vector<int64_t> shape, const torch::TensorOptions& options) {
    return init == HeadInit::kZero ? torch::zeros(shape, options)
                                   : torch::empty(shape, options).uniform_(-bound, bound);
  };
  torch::NoGradGuard no_grad;
  // set_data keeps each tensor's identity, so the module (zoo or scripted) holds the new sizes.
  weight.set_data(fresh({outputs, head.in_features}, weight.options()));
  if (auto* bias = params.find("bias"); bias != nullptr && bias->defined())
    bias->set_data(fresh({outputs}, bias->options()));
  if (auto* linear = module->as<torch::nn::LinearImpl>()) linear->options.out_features(outputs);
  head.out_features = outputs;
  return head;
}

HeadParameters head_parameters(const Model& model, const LinearLayer& head) {
  auto modules = model.module().named_modules("", false);
  const auto* module = modules.find(head.name);
  TORCH_CHECK(module != nullptr, "head_parameters: the model has no layer '", head.name, "'");
  auto params = (*module)->named_parameters(/*recurse=*/false);
  HeadParameters p;
  p.weight = params["weight"];
  if (const auto* bias = params.find("bias")) p.bias = *bias;
  return p;
}

HeadWeightsScope::HeadWeightsScope(const Model& model, const LinearLayer& head,
                                   const torch::Tensor& weight, const torch::Tensor& bias)
    : params_(head_parameters(model, head)) {
  torch::NoGradGuard no_grad;
  weight_ = params_.weight.data();
  params_.weight.set_data(weight);
  if (params_.bias.defined()) {
    bias_ = params_.bias.data();
    params_.bias.set_data(bias);
  }
}

HeadWeightsScope::~HeadWeightsScope() {
  torch::NoGradGuard no_grad;
  params_.weight.set_data(weight_);
  if (params_.bias.defined()) params_.bias.set_data(bias_);
}

torch::Tensor head_inputs(const Model& model, const LinearLayer& head, const torch::Tensor& x) {
  const auto options = head_parameters(model, head).weight.options();
  torch::NoGradGuard no_grad;
  const HeadWeightsScope identity(model, head, torch::eye(head.in_features, options),
                                  torch::zeros({head.in_features}, options));
  return model.forward(x);
}

std::vector<std::string> batch_norm_layers(const Model& model) {
  std::vector<std::string> out;
  for (const auto& item : model.module().named_modules("", false)) {
    if (!is_batch_norm(*item.value())) continue;
    const auto buffers = item.value()->named_buffers(/*recurse=*/false);
    if (buffers.find("running_mean") && buffers.find("running_var")) out.push_back(item.key());
  }
  return out;
}

double batch_norm_mismatch(const Model& model, const std::string& name, const torch::Tensor& x) {
  auto modules = model.module().named_modules("", false);
  const auto* found = modules.find(name);
  TORCH_CHECK(found != nullptr, "batch_norm_mismatch: no layer '", name, "'");
  const std::shared_ptr<torch::nn::Module>& bn = *found;
  auto buffers = bn->named_buffers(/*recurse=*/false);
  std::vector<torch::Tensor> kept;
  for (const auto& item : buffers) kept.push_back(item.value().clone());
  const torch::Tensor mean = buffers["running_mean"].clone(), var = buffers["running_var"].clone();
  EvalModeGuard eval(model);
  torch::NoGradGuard no_grad;
  bn->train(true);
  // Puts the statistics and the mode back however the forward ends.
  struct PutBack {
    const std::shared_ptr<torch::nn::Module>& bn;
    torch::OrderedDict<std::string, torch::Tensor>& buffers;
    const std::vector<torch::Tensor>& kept;
    ~PutBack() {
      bn->train(false);
      size_t i = 0;
      for (auto& item : buffers) item.value().copy_(kept[i++]);
    }
  } put_back{bn, buffers, kept};
  model.forward(x);
  // running = (1 - m) running + m batch: the change is m (batch - running).
  const torch::Tensor d_mean = buffers["running_mean"] - mean, d_var = buffers["running_var"] - var;
  const torch::Tensor v = var.clamp_min(1e-12);
  return (d_mean.square() / v + d_var.square() / v.square()).sum().item<double>();
}

std::vector<std::string> parameter_names(const Model& model,
                                         const std::vector<std::string>& prefixes) {
  std::vector<std::string> out;
  for (const auto& item : model.module().named_parameters())
    if (under_any(item.key(), prefixes)) out.push_back(item.key());
  return out;
}

namespace {

// requires_grad for the matching parameters; their BatchNorm layers kept in eval mode (freezing)
// or let go (unfreezing) when `norms` says so.
int64_t set_trainable(const Model& model, const std::vector<std::string>& prefixes, bool train,
                      bool norms) {
  int64_t n = 0;
  for (auto& item : model.module().named_parameters())
    if (under_any(item.key(), prefixes)) {
      item.value().set_requires_grad(train);
      ++n;
    }
  if (norms)
    for (const auto& item : model.module().named_modules("", false))
      if (is_batch_norm(*item.value()) && under_any(item.key(), prefixes))
        train ? model.release_from_eval(item.value()) : model.keep_in_eval(item.value());
  return n;
}

}  // namespace

int64_t freeze(const Model& model, const std::vector<std::string>& prefixes,
               bool freeze_norm_stats) {
  return set_trainable(model, prefixes, /*train=*/false, freeze_norm_stats);
}

int64_t unfreeze(const Model& model, const std::vector<std::string>& prefixes,
                 bool release_norm_stats) {
  return set_trainable(model, prefixes, /*train=*/true, release_norm_stats);
}

int64_t freeze_backbone(const Model& model, const LinearLayer& head, bool train_bn) {
  int64_t n = 0;
  for (auto& item : model.module().named_parameters())
    if (!under(item.key(), head.name)) {
      item.value().set_requires_grad(false);
      ++n;
    }
  if (!train_bn)
    for (const auto& item : model.module().named_modules("", false))
      if (is_batch_norm(*item.value()) && !under(item.key(), head.name))
        model.keep_in_eval(item.value());
  return n;
}

void load_backbone(const Model& model, const std::filesystem::path& file, const std::string& skip) {
  torch::serialize::InputArchive weights;
  try {
    if (track::is_checkpoint_file(file))
      weights = track::PayloadReader::of_file(file).model_archive();
    else
      weights.load_from(file.string());
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError("cannot read weights from " + file.string() + ": " +
                          what.substr(0, what.find('\n')));
  }
  // Walks "features.0.weight" down the nested archives: features -> 0 -> weight.
  auto load = [&](const std::string& name, torch::Tensor& target, bool is_buffer) {
    std::vector<std::string> parts;
    for (size_t start = 0, dot; start <= name.size(); start = dot + 1) {
      dot = name.find('.', start);
      if (dot == std::string::npos) dot = name.size();
      parts.push_back(name.substr(start, dot - start));
    }
    torch::serialize::InputArchive* at = &weights;
    std::vector<torch::serialize::InputArchive> nested(parts.size());
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (!at->try_read(parts[i], nested[i]))
        throw CheckpointError(file.string() + " has no '" + name +
                              "': it holds another architecture than this model's");
      at = &nested[i];
    }
    torch::Tensor saved;
    if (!at->try_read(parts.back(), saved, is_buffer))
      throw CheckpointError(file.string() + " has no '" + name +
                            "': it holds another architecture than this model's");
    if (!saved.sizes().equals(target.sizes()))
      throw CheckpointError(file.string() + " holds '" + name + "' of shape " +
                            c10::str(saved.sizes()) + " but the model's is " +
                            c10::str(target.sizes()) +
                            " (another architecture, or inputs of another size than the "
                            "source model's)");
    torch::NoGradGuard no_grad;
    target.copy_(saved);
  };
  for (auto& item : model.module().named_parameters())
    if (!under(item.key(), skip)) load(item.key(), item.value(), false);
  for (auto& item : model.module().named_buffers())
    if (!under(item.key(), skip)) load(item.key(), item.value(), true);
}

}  // namespace trainscope::models
