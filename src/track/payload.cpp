#include <trainscope/track/payload.h>

#include <trainscope/error.h>
#include <trainscope/track/archive.h>
#include <trainscope/track/checkpoint_file.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <cmath>
#include <vector>

namespace trainscope::track {
namespace {

std::string first_line(const c10::Error& e) {
  std::string what = e.what_without_backtrace();
  return what.substr(0, what.find('\n'));
}

// A value that earlier checkpoints do not have: nullopt there.
std::optional<double> optional_double(torch::serialize::InputArchive& archive,
                                      const std::string& key) {
  c10::IValue value;
  if (!archive.try_read(key, value)) return std::nullopt;
  return value.toDouble();
}

// lr and momentum of each parameter group: libtorch's Optimizer::load restores the per-parameter
// state but keeps the groups' options as constructed, and schedules change them.
torch::Tensor group_options(const torch::optim::Optimizer& optimizer) {
  std::vector<double> out;
  for (const auto& group : optimizer.param_groups()) {
    const auto& o = group.options();
    double momentum = std::nan("");
    if (auto* adam = dynamic_cast<const torch::optim::AdamOptions*>(&o))
      momentum = std::get<0>(adam->betas());
    else if (auto* adamw = dynamic_cast<const torch::optim::AdamWOptions*>(&o))
      momentum = std::get<0>(adamw->betas());
    else if (auto* sgd = dynamic_cast<const torch::optim::SGDOptions*>(&o))
      momentum = sgd->momentum();
    out.push_back(o.get_lr());
    out.push_back(momentum);
  }
  return torch::tensor(out, torch::kFloat64);
}

void set_group_options(torch::optim::Optimizer& optimizer, const torch::Tensor& saved,
                       const std::string& origin) {
  auto values = saved.to(torch::kCPU, torch::kFloat64).contiguous();
  auto& groups = optimizer.param_groups();
  if (values.numel() != static_cast<int64_t>(2 * groups.size()))
    throw CheckpointError("checkpoint " + origin + " has " + std::to_string(values.numel() / 2) +
                          " optimizer parameter groups; this fit has " +
                          std::to_string(groups.size()));
  const double* v = values.data_ptr<double>();
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& o = groups[i].options();
    o.set_lr(v[2 * i]);
    const double m = v[2 * i + 1];
    if (std::isnan(m)) continue;
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&o))
      adam->betas(std::make_tuple(m, std::get<1>(adam->betas())));
    else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&o))
      adamw->betas(std::make_tuple(m, std::get<1>(adamw->betas())));
    else if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&o))
      sgd->momentum(m);
  }
}

}  // namespace

PayloadWriter::PayloadWriter() { root_.write("format", c10::IValue(kPayloadFormat)); }

void PayloadWriter::model(const torch::nn::Module& module) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  root_.write("model", archive);
}

void PayloadWriter::optimizer(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  root_.write("optimizer", archive);
  root_.write("optimizer_groups", group_options(optimizer), /*is_buffer=*/true);
}

void PayloadWriter::callback(const std::string& key,
                             const std::function<void(torch::serialize::OutputArchive&)>& save) {
  torch::serialize::OutputArchive archive;
  save(archive);
  root_.write("callback/" + key, archive);
}

void PayloadWriter::rng() {
  root_.write("rng/cpu", at::detail::getDefaultCPUGenerator().get_state(), /*is_buffer=*/true);
  const auto& hooks = at::detail::getCUDAHooks();
  if (!hooks.hasCUDA()) return;
  for (int i = 0; i < hooks.getNumGPUs(); ++i)
    root_.write("rng/cuda/" + std::to_string(i),
                hooks.getDefaultCUDAGenerator(static_cast<c10::DeviceIndex>(i)).get_state(),
                /*is_buffer=*/true);
}

void PayloadWriter::counters(const PayloadCounters& c) {
  auto put = [&](const char* key, c10::IValue v) { root_.write(key, v); };
  put("trainer/epoch", c.epoch);
  put("trainer/batches", c.batches);
  put("trainer/epoch_complete", c.epoch_complete);
  put("trainer/global_step", c.global_step);
  put("trainer/batches_per_epoch", c.batches_per_epoch);
  if (c.world_size) put("trainer/world_size", *c.world_size);
  put("trainer/seed", c.seed);
  put("trainer/epochs_done", c.epochs_done);
  put("trainer/best_epoch", c.best_epoch);
  put("trainer/best_metric", c.best_metric);
  put("trainer/best_value", c.best_value);
  put("trainer/best_val_loss", c.best_val_loss);
  put("trainer/stop_reason", c.stop_reason);
  put("trainer/stop_message", c.stop_message);
  if (c.grad_scale) {
    put("trainer/grad_scale", *c.grad_scale);
    put("trainer/grad_scale_good_steps", c.grad_scale_good_steps);
  }
  if (c.lr) put("trainer/lr", *c.lr);
  if (c.weight_decay) put("trainer/weight_decay", *c.weight_decay);
}

void PayloadWriter::epoch_metrics(
    const std::function<void(torch::serialize::OutputArchive&)>& save) {
  torch::serialize::OutputArchive archive;
  save(archive);
  root_.write("trainer/epoch_metrics", archive);
}

void PayloadWriter::config(const std::string& toml) { root_.write("config", c10::IValue(toml)); }

std::string PayloadWriter::bytes() {
  std::string out;
  root_.save_to([&](const void* data, size_t size) {
    out.append(static_cast<const char*>(data), size);
    return size;
  });
  return out;
}

PayloadReader::PayloadReader(const std::string& bytes, std::string origin,
                             std::optional<torch::Device> device)
    : origin_(std::move(origin)) {
  try {
    if (device)
      root_.load_from(bytes.data(), bytes.size(), *device);
    else
      root_.load_from(bytes.data(), bytes.size());
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + origin_ +
                          " holds no training state this trainscope "
                          "reads: " +
                          first_line(e));
  }
}

PayloadReader PayloadReader::of_file(const std::filesystem::path& file,
                                     std::optional<torch::Device> device) {
  return PayloadReader(read_checkpoint_payload(file), file.string(), device);
}

void PayloadReader::check_format() {
  if (read_int(root_, "format") != kPayloadFormat)
    throw CheckpointError("checkpoint " + origin_ +
                          " has a training-state layout this trainscope does not read");
}

torch::serialize::InputArchive PayloadReader::model_archive() {
  torch::serialize::InputArchive archive;
  try {
    root_.read("model", archive);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + origin_ + " holds no model weights: " + first_line(e));
  }
  return archive;
}

void PayloadReader::load_model(torch::nn::Module& module) {
  auto archive = model_archive();
  try {
    module.load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + origin_ + " holds the weights of another model: " +
                          first_line(e) + " (resume with the run's own config.toml)");
  }
}

void PayloadReader::load_optimizer(torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::InputArchive archive;
    root_.read("optimizer", archive);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + origin_ +
                          " holds the state of another optimizer: " + first_line(e));
  }
  torch::Tensor groups;
  root_.read("optimizer_groups", groups, /*is_buffer=*/true);
  set_group_options(optimizer, groups, origin_);
}

bool PayloadReader::callback(const std::string& key, torch::serialize::InputArchive& archive) {
  return root_.try_read("callback/" + key, archive);
}

void PayloadReader::restore_rng() {
  torch::Tensor cpu_state;
  root_.read("rng/cpu", cpu_state, /*is_buffer=*/true);
  at::Generator cpu = at::detail::getDefaultCPUGenerator();  // a handle to the global one
  cpu.set_state(cpu_state.to(torch::kCPU));
  const auto& hooks = at::detail::getCUDAHooks();
  if (!hooks.hasCUDA()) return;
  for (int i = 0; i < hooks.getNumGPUs(); ++i) {
    torch::Tensor state;
    if (root_.try_read("rng/cuda/" + std::to_string(i), state, /*is_buffer=*/true)) {
      at::Generator cuda = hooks.getDefaultCUDAGenerator(static_cast<c10::DeviceIndex>(i));
      cuda.set_state(state.to(torch::kCPU));
    }
  }
}

PayloadCounters PayloadReader::counters() {
  PayloadCounters c;
  auto get_int = [&](const char* key) { return read_int(root_, key); };
  c.epoch = get_int("trainer/epoch");
  c.batches = get_int("trainer/batches");
  c.epoch_complete = read_bool(root_, "trainer/epoch_complete");
  c.global_step = get_int("trainer/global_step");
  c.batches_per_epoch = get_int("trainer/batches_per_epoch");
  if (c10::IValue world; root_.try_read("trainer/world_size", world)) c.world_size = world.toInt();
  c.seed = get_int("trainer/seed");
  c.epochs_done = get_int("trainer/epochs_done");
  c.best_epoch = get_int("trainer/best_epoch");
  c.best_val_loss = read_double(root_, "trainer/best_val_loss");
  if (c10::IValue metric; root_.try_read("trainer/best_metric", metric)) {
    c.best_metric = metric.toStringRef();
    c.best_value = read_double(root_, "trainer/best_value");
  } else if (c.best_epoch > 0) {  // before the best had a metric of its own: val_loss
    c.best_metric = "val_loss";
    c.best_value = c.best_val_loss;
  }
  c.stop_reason = get_int("trainer/stop_reason");
  c.stop_message = read_string(root_, "trainer/stop_message");
  // Written only by fp16 fits, always both.
  if (c10::IValue probe; root_.try_read("trainer/grad_scale", probe)) {
    c.grad_scale = read_double(root_, "trainer/grad_scale");
    c.grad_scale_good_steps = get_int("trainer/grad_scale_good_steps");
  }
  c.lr = optional_double(root_, "trainer/lr");
  c.weight_decay = optional_double(root_, "trainer/weight_decay");
  return c;
}

void PayloadReader::epoch_metrics(torch::serialize::InputArchive& archive) {
  root_.read("trainer/epoch_metrics", archive);
}

std::string PayloadReader::config() {
  c10::IValue config;
  return root_.try_read("config", config) && config.isString() ? config.toStringRef() : "";
}

}  // namespace trainscope::track
