#include <trainscope/error.h>
#include <trainscope/models/transfer.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/payload.h>

#include "scripted_module.h"

#include <cmath>

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

bool is_batch_norm(const torch::nn::Module& m) {
  return detail::layer_kind(m).rfind("BatchNorm", 0) == 0;
}

}  // namespace

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
  std::string last;
  for (const auto& item : modules)
    if (item.value()->children().empty()) last = item.key();
  if (last.empty())
    throw ConfigError("model " + model.name() + " has no layers to take as its head");
  const auto& module = *modules[last];
  const torch::Tensor w = linear_weight(module);
  if (!w.defined())
    throw ConfigError("the last layer of " + model.name() + " is '" + last + "' (a " +
                      detail::layer_kind(module) +
                      "), not a Linear, so which layer is the head is ambiguous; name it with "
                      "--head (finetune.head). Its Linear layers are: " +
                      candidates(model));
  return {last, w.size(1), w.size(0)};
}

LinearLayer replace_head(const Model& model, int64_t outputs, const std::string& name) {
  if (outputs < 1)
    throw ConfigError("a new head needs at least 1 output, got " + std::to_string(outputs));
  LinearLayer head = find_head(model, name);
  auto module = model.module().named_modules("", false)[head.name];
  auto params = module->named_parameters(/*recurse=*/false);
  torch::Tensor& weight = params["weight"];
  const double bound = 1.0 / std::sqrt(static_cast<double>(head.in_features));
  torch::NoGradGuard no_grad;
  // set_data keeps each tensor's identity, so the module (zoo or scripted) holds the new sizes.
  weight.set_data(
      torch::empty({outputs, head.in_features}, weight.options()).uniform_(-bound, bound));
  if (auto* bias = params.find("bias"); bias != nullptr && bias->defined())
    bias->set_data(torch::empty({outputs}, bias->options()).uniform_(-bound, bound));
  if (auto* linear = module->as<torch::nn::LinearImpl>()) linear->options.out_features(outputs);
  head.out_features = outputs;
  return head;
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
