#include <trainscope/error.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/track/run.h>

#include "scripted_module.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <fstream>

namespace trainscope::models {
namespace detail {

ScriptedModule::ScriptedModule(torch::jit::Module module) : module_(std::move(module)) {
  const auto type = module_.type()->name();
  kind_ = type ? type->name() : "Module";
  for (const auto& p : module_.named_parameters(/*recurse=*/false))
    register_parameter(p.name, p.value, /*requires_grad=*/true);
  for (const auto& b : module_.named_buffers(/*recurse=*/false)) register_buffer(b.name, b.value);
  for (const auto& c : module_.named_children())
    register_module(c.name, std::make_shared<ScriptedModule>(c.value));
}

void ScriptedModule::train(bool on) {
  // The scripted flag of this module alone: children are reached by the recursion below, so a
  // child kept in eval mode afterwards stays so.
  module_.setattr("training", on);
  torch::nn::Module::train(on);
}

std::string layer_kind(const torch::nn::Module& module) {
  if (auto* scripted = dynamic_cast<const ScriptedModule*>(&module)) return scripted->kind();
  std::string name = module.name();  // "torch::nn::LinearImpl"
  if (auto colon = name.rfind("::"); colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0)
    name = name.substr(0, name.size() - 4);
  return name;
}

}  // namespace detail

void save_torchscript(const Model& model, const std::filesystem::path& file) {
  auto* scripted = dynamic_cast<detail::ScriptedModule*>(&model.module());
  if (!scripted)
    throw ConfigError("model " + model.name() +
                      " is not a TorchScript model: a zoo model exports as a state dict (the "
                      "default format); TorchScript export needs a model trained from "
                      "model.name = \"torchscript:PATH\"");
  try {
    track::write_atomically(
        file, [&](const std::filesystem::path& tmp) { scripted->scripted().save(tmp.string()); });
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError("writing " + file.string() +
                          " failed: " + what.substr(0, what.find('\n')));
  }
}

namespace {

std::string activation_of_module(const std::shared_ptr<torch::nn::Module>& module) {
  auto seq = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(module);
  if (!seq || seq->is_empty()) return "";
  auto last = seq->ptr(seq->size() - 1);
  if (last->as<torch::nn::SequentialImpl>()) return activation_of_module(last);
  if (last->as<torch::nn::SigmoidImpl>()) return "sigmoid";
  if (last->as<torch::nn::TanhImpl>()) return "tanh";
  if (last->as<torch::nn::ReLUImpl>() || last->as<torch::nn::ReLU6Impl>()) return "relu";
  if (last->as<torch::nn::SoftplusImpl>()) return "softplus";
  return "";
}

}  // namespace

std::string output_activation(const Model& model) {
  auto* scripted = dynamic_cast<detail::ScriptedModule*>(&model.module());
  if (!scripted) return activation_of_module(model.ptr());
  try {
    auto graph = scripted->scripted().get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);  // submodules' forwards (nn.Sigmoid()) become their operations
    if (graph->outputs().size() != 1) return "";
    const std::string op = graph->outputs()[0]->node()->kind().toQualString();
    if (op == "aten::sigmoid" || op == "aten::sigmoid_") return "sigmoid";
    if (op == "aten::tanh" || op == "aten::tanh_") return "tanh";
    if (op == "aten::relu" || op == "aten::relu_" || op == "aten::relu6") return "relu";
    if (op == "aten::softplus") return "softplus";
  } catch (const c10::Error&) {
  }
  return "";
}

ActivationOutputs torchscript_activations(const Model& model) {
  auto* scripted = dynamic_cast<detail::ScriptedModule*>(&model.module());
  if (!scripted) return nullptr;
  auto graph = scripted->scripted().get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  // F.relu's `if inplace:` becomes the one branch taken, out of its block.
  torch::jit::ConstantPropagation(graph);
  std::vector<torch::jit::Value*> outputs;
  std::vector<std::string> names;
  for (auto* node : graph->nodes()) {  // the top block: values inside if/loop bodies cannot leave
    const std::string op = node->kind().toQualString();
    const char* kind = op == "aten::relu" || op == "aten::relu_"         ? "relu"
                       : op == "aten::sigmoid" || op == "aten::sigmoid_" ? "sigmoid"
                       : op == "aten::tanh" || op == "aten::tanh_"       ? "tanh"
                                                                         : nullptr;
    if (!kind) continue;
    outputs.push_back(node->output());
    names.push_back(std::to_string(names.size()) + ":" + kind);
  }
  if (outputs.empty()) return nullptr;
  // The same computation, returning the activations instead of the model's output.
  while (graph->outputs().size() > 0) graph->eraseOutput(0);
  graph->registerOutput(graph->insertNode(graph->createTuple(outputs))->output());
  auto probe = std::make_shared<torch::jit::GraphFunction>("activations", graph, nullptr);
  auto self = scripted->scripted()._ivalue();
  return [probe, self, names](const torch::Tensor& x, const TensorMap& inputs) {
    torch::jit::Kwargs kwargs;
    for (const auto& [key, value] : inputs) kwargs[key] = value;
    const auto tuple = (*probe)({self, x}, kwargs).toTuple();
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (size_t i = 0; i < names.size(); ++i)
      out.emplace_back(names[i], tuple->elements()[i].toTensor());
    return out;
  };
}

bool is_torchscript_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[4] = {};
  in.read(head, 4);
  return in.gcount() == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
}

Model load_torchscript(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    throw CheckpointError("TorchScript file " + file.string() + " does not exist");
  torch::jit::Module scripted;
  try {
    scripted = torch::jit::load(file.string());
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError("cannot load " + file.string() +
                          " as TorchScript: " + what.substr(0, what.find('\n')) +
                          " (save it in Python with torch.jit.script(model).save(path) or "
                          "torch.jit.trace(model, example).save(path))");
  }
  auto mirror = std::make_shared<detail::ScriptedModule>(scripted);
  const std::string name = file.filename().string();
  auto tensor_of = [name](const torch::jit::IValue& out) {
    if (!out.isTensor())
      throw ShapeError("the TorchScript model " + name + " returns a " + out.tagKind() +
                       ", not a tensor; export a module whose forward returns the logits");
    return out.toTensor();
  };
  // forward(self, x, ...): the arguments after x are the batch's named inputs, by name.
  const c10::FunctionSchema& schema = scripted.get_method("forward").function().getSchema();
  const auto& args = schema.arguments();
  if (args.size() < 2)
    throw ShapeError("the TorchScript model " + name + "'s " + c10::str(schema) +
                     " takes no input; expected forward(self, x: Tensor, ...) with the batch's "
                     "input first");
  if (args.size() == 2)
    return Model(mirror, Model::Forward([mirror, tensor_of](const torch::Tensor& x) {
                   return tensor_of(mirror->scripted().forward({x}));
                 }),
                 file.stem().string());
  std::vector<std::pair<std::string, bool>> named;  // name, required
  for (size_t i = 2; i < args.size(); ++i)
    named.emplace_back(args[i].name(), !args[i].default_value().has_value());
  const std::string signature = c10::str(schema);
  Model::ForwardWithInputs forward = [mirror, tensor_of, named, name, signature](
                                         const torch::Tensor& x, const TensorMap& inputs) {
    torch::jit::Kwargs kwargs;
    for (const auto& [key, value] : inputs) {
      if (std::none_of(named.begin(), named.end(), [&](const auto& n) { return n.first == key; }))
        throw ShapeError("the batch carries the named input \"" + key + "\" but the TorchScript " +
                         "model " + name + "'s " + signature + " takes no argument of that name");
      kwargs[key] = value;
    }
    for (const auto& [arg, required] : named)
      if (required && !inputs.contains(arg))
        throw ShapeError("the TorchScript model " + name + "'s " + signature +
                         " needs the named input \"" + arg +
                         "\", which the batch does not carry (data::TensorDataset's inputs name "
                         "them)");
    return tensor_of(mirror->scripted().get_method("forward")({x}, kwargs));
  };
  return Model(mirror, std::move(forward), file.stem().string());
}

}  // namespace trainscope::models
