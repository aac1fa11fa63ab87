#include <trainscope/train/head_features.h>

#include <chrono>

namespace trainscope {

HeadFeatures head_features(const Model& model, const models::LinearLayer& head,
                           const data::Dataset& dataset, int64_t batch_size,
                           const torch::Device& device,
                           const std::function<torch::Tensor(const torch::Tensor&)>& transform) {
  const auto start = std::chrono::steady_clock::now();
  EvalModeGuard eval(model);
  torch::NoGradGuard no_grad;
  const int64_t n = dataset.size();
  HeadFeatures out;
  std::vector<torch::Tensor> features, targets;
  for (int64_t at = 0; at < n; at += batch_size) {
    const auto batch = dataset.get_batch(torch::arange(at, std::min(n, at + batch_size)));
    torch::Tensor x = batch.x.to(device);
    if (transform) x = transform(x);
    features.push_back(models::head_inputs(model, head, x).to(torch::kCPU, torch::kFloat32));
    targets.push_back(batch.y);
  }
  if (!features.empty()) {
    out.features = torch::cat(features);
    out.targets = torch::cat(targets);
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

Model head_model(const Model& model, const models::LinearLayer& head) {
  const models::HeadParameters p = models::head_parameters(model, head);
  return model.with_forward([weight = p.weight, bias = p.bias](const torch::Tensor& features) {
    return torch::linear(features, weight, bias);
  });
}

std::string check_head_outputs(const Model& model, const models::LinearLayer& head,
                               const torch::Tensor& x) {
  EvalModeGuard eval(model);
  torch::NoGradGuard no_grad;
  // A new head is all zeros, which a scale after it would keep: the check runs with fixed,
  // non-trivial weights (drawn from no generator, so that the fit's random stream is untouched).
  const models::HeadParameters p = models::head_parameters(model, head);
  auto fixed = [](const torch::Tensor& like, double phase) {
    return (torch::arange(like.numel(), like.options()).add(phase).sin() * 0.1).view_as(like);
  };
  const models::HeadWeightsScope weights(model, head, fixed(p.weight, 0.0),
                                         p.bias.defined() ? fixed(p.bias, 0.5) : p.bias);
  torch::Tensor whole, features;
  try {
    whole = model.forward(x);
    features = models::head_inputs(model, head, x);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    return "the model does not run with '" + head.name + "' as the identity (" +
           what.substr(0, what.find('\n')) + "): its forward needs the head's output size";
  }
  if (features.dim() != 2 || features.size(1) != head.in_features)
    return "with '" + head.name + "' as the identity the model returns " +
           c10::str(features.sizes()) + ", not the head's " + std::to_string(head.in_features) +
           " inputs per example: something after the head reshapes them";
  const torch::Tensor by_head = head_model(model, head).forward(features);
  if (!whole.sizes().equals(by_head.sizes()) ||
      !torch::allclose(whole.to(torch::kFloat32), by_head, 1e-4,
                       1e-5 * std::max(1.0, by_head.abs().max().item<double>())))
    return "the model's outputs are not its head's: something after '" + head.name +
           "' changes them (a softmax, a scale)";
  return "";
}

}  // namespace trainscope
