#include <trainscope/session/source.h>

#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/error.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/models/transfer.h>
#include <trainscope/models/zoo.h>
#include <trainscope/session/settings.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>

#include <sstream>

#include <cstdio>

namespace trainscope::session {
namespace fs = std::filesystem;

Model zoo_model(const Config& config, const std::vector<int64_t>& input_shape, int64_t outputs) {
  models::ModelSpec spec = session_options(config).model;  // model.*
  spec.input_shape = input_shape;
  spec.outputs = outputs;
  // Weights are drawn from torch's global generator: seed it so that a run is reproducible.
  torch::manual_seed(static_cast<uint64_t>(config.get_int("train.seed")));
  return models::make_model(spec);
}

std::optional<fs::path> torchscript_model_file(const Config& config, const fs::path& run_dir) {
  const std::string& name = config.get_string("model.name");
  if (name.rfind("torchscript:", 0) != 0) return std::nullopt;
  const fs::path kept = run_dir / "source" / "model.pt";
  if (!run_dir.empty() && fs::exists(kept)) return kept;
  const fs::path file = name.substr(12);
  const std::string where =
      "model.name = \"" + name + "\" (" + config.setting("model.name").source + ")";
  if (!fs::is_regular_file(file))
    throw ConfigError(where +
                      ": no such file; expected a TorchScript file saved in Python with "
                      "torch.jit.script(model).save(PATH)");
  if (!models::is_torchscript_file(file))
    throw ConfigError(where +
                      ": not a TorchScript archive; expected a file saved with "
                      "torch.jit.script(model).save(PATH) or torch.jit.trace(...).save(PATH)");
  return file;
}

std::string FinetuneSource::describe() const {
  std::string what;
  switch (kind) {
    case Kind::kRun:
      what = "run " + path.string();
      if (!weights.empty()) what += " (" + weights.filename().string() + ")";
      break;
    case Kind::kCheckpoint:
      what = "checkpoint " + path.string();
      break;
    case Kind::kTorchScript:
      what = "TorchScript model " + path.string();
      break;
  }
  if (kept)
    return (weights.empty() ? "the architecture of " : "") + path.string() +
           (weights.empty() ? " as the run keeps it" : " as the run keeps it (source/model.pt)");
  return what;
}

namespace {

// "0.286000" (runs before per-channel normalization) or "[0.485, 0.456, 0.406]".
std::vector<double> numbers(std::string text) {
  std::vector<double> out;
  for (char& c : text)
    if (c == '[' || c == ']' || c == ',') c = ' ';
  std::istringstream in(text);
  for (double v; in >> v;) out.push_back(v);
  return out;
}

std::optional<data::PixelStats> run_normalization(const fs::path& run) {
  if (!fs::exists(run / "run.sqlite")) return std::nullopt;
  track::RunStore store(run / "run.sqlite", track::RunStore::Mode::kReadOnly);
  auto mean = store.meta("data.mean"), std = store.meta("data.std");
  if (!mean || !std) return std::nullopt;
  data::PixelStats stats{numbers(*mean), numbers(*std)};
  if (stats.mean.empty() || stats.std.empty()) return std::nullopt;
  return stats;
}

Config config_of(const std::string& toml, const std::string& origin) {
  Config c = default_config();
  c.merge_text(toml, origin);
  c.resolve();
  return c;
}

Config config_file(const fs::path& file) {
  Config c = default_config();
  c.merge_file(file);
  c.resolve();
  return c;
}

}  // namespace

FinetuneSource resolve_source(const Config& config) {
  const std::string& from = config.get_string("finetune.from");
  const std::string where =
      config.setting("finetune.from").source + ": finetune.from = \"" + from + "\"";
  FinetuneSource s;
  s.path = from;
  fs::path run = from;
  if (!fs::exists(run) && fs::exists(fs::path(config.get_string("run.dir")) / from))
    run = fs::path(config.get_string("run.dir")) / from;
  if (fs::is_directory(run)) {
    if (!fs::exists(run / "run.sqlite") || !fs::exists(run / "config.toml"))
      throw ConfigError(where +
                        " is a directory but not a trainscope run (no run.sqlite and "
                        "config.toml); give a run directory, a .ckpt file or a TorchScript file");
    s.kind = FinetuneSource::Kind::kRun;
    s.path = run;
    s.weights = run / "checkpoints" / "best.ckpt";
    if (!fs::exists(s.weights))
      throw ConfigError(where + ": the run has no checkpoints/best.ckpt (did it finish an epoch?)");
    s.config = config_file(run / "config.toml");
    s.normalization = run_normalization(run);
    return s;
  }
  if (!fs::exists(s.path))
    throw ConfigError(where + " does not exist; give a run directory (or a run name under " +
                      config.get_string("run.dir") + "), a .ckpt file or a TorchScript file");
  s.weights = s.path;
  if (track::is_checkpoint_file(s.path)) {
    s.kind = FinetuneSource::Kind::kCheckpoint;
    const std::string toml = callbacks::read_checkpoint_config(s.path);
    if (toml.empty())
      throw ConfigError(where + ": the checkpoint holds no config to rebuild its model from");
    s.config = config_of(toml, s.path.string() + " (its config)");
    // A checkpoint inside a run directory: the run says how its inputs were normalized.
    s.normalization = run_normalization(s.path.parent_path().parent_path());
    return s;
  }
  if (models::is_torchscript_file(s.path)) {
    s.kind = FinetuneSource::Kind::kTorchScript;
    return s;
  }
  throw ConfigError(where +
                    " is neither a trainscope run, a .ckpt checkpoint nor a TorchScript "
                    "file (torch.jit.script(model).save(path) in Python writes one)");
}

void keep_source(const FinetuneSource& source, const fs::path& run_dir) {
  if (source.kept) return;
  const fs::path dir = run_dir / "source";
  const fs::path file =
      dir / (source.kind == FinetuneSource::Kind::kTorchScript ? "model.pt" : "config.toml");
  if (fs::exists(file)) return;
  fs::create_directories(dir);
  if (source.kind == FinetuneSource::Kind::kTorchScript)
    track::write_atomically(file, [&](const fs::path& tmp) { fs::copy_file(source.weights, tmp); });
  else
    track::write_text_atomically(file, source.config->to_toml());
}

FinetuneSource run_source(const Config& config, const fs::path& run_dir) {
  const fs::path kept_model = run_dir / "source" / "model.pt";
  const fs::path kept_config = run_dir / "source" / "config.toml";
  if (!fs::exists(kept_model) && !fs::exists(kept_config)) {
    try {
      return resolve_source(config);  // a run fine-tuned before runs kept their source
    } catch (const ConfigError& e) {
      throw ConfigError(std::string(e.what()) + "; the fine-tuned run " + run_dir.string() +
                        " keeps no copy of it (source/) to rebuild its model from");
    }
  }
  FinetuneSource s;
  s.path = config.get_string("finetune.from");
  s.kept = true;
  if (fs::exists(kept_model)) {
    s.kind = FinetuneSource::Kind::kTorchScript;
    s.weights = kept_model;
  } else {
    // Never the source's weights: it may have been retrained since.
    s.config = config_file(kept_config);
  }
  return s;
}

std::string adopt_normalization(Config& config, const FinetuneSource& source) {
  if (config.setting("data.std").source != "default")
    return "normalization: data.mean and data.std as set";
  if (!source.normalization)
    return "normalization: from the new training data (the source does not say how its inputs "
           "were normalized; set data.mean and data.std to match it)";
  const data::PixelStats& stats = *source.normalization;
  const std::string reason = "the source model's normalization (" + source.describe() + ")";
  config.set("data.mean", stats.mean, "fine-tuning", reason);
  config.set("data.std", stats.std, "fine-tuning", reason);
  return "normalization: the source's, " + stats.str();
}

std::pair<Model, std::string> finetune_model(const Config& config, const FinetuneSource& source,
                                             const std::vector<int64_t>& input_shape,
                                             int64_t outputs) {
  Model model;
  const std::string& head_name = config.get_string("finetune.head");
  if (source.kind == FinetuneSource::Kind::kTorchScript) {
    model = models::load_torchscript(source.weights);
  } else {
    // The source's architecture for the new data's inputs; the head's size changes below and is
    // the one thing not loaded.
    model = zoo_model(*source.config, input_shape, outputs);
    const auto head = models::find_head(model, head_name);
    if (!source.weights.empty()) models::load_backbone(model, source.weights, head.name);
  }
  std::string layers;  // for the errors below, as they were before the head was resized
  for (const auto& l : models::linear_layers(model))
    layers += (layers.empty() ? "" : ", ") + l.describe();
  // The new head's weights come from train.seed, as a zoo model's do.
  torch::manual_seed(static_cast<uint64_t>(config.get_int("train.seed")));
  const models::LinearLayer head =
      models::replace_head(model, outputs, head_name,
                           value_of(config.get_string("finetune.head_init"), models::kHeadInitNames)
                               .value_or(models::HeadInit::kZero));
  // The head must be the layer that gives the outputs: what follows it may keep their size (a
  // softmax), not change it. One example through the model tells.
  {
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), input_shape.begin(), input_shape.end());
    EvalModeGuard eval(model);
    torch::NoGradGuard no_grad;
    torch::Tensor out;
    try {
      out = model.forward(torch::zeros(shape));
    } catch (const c10::Error& e) {
      std::string what = e.what_without_backtrace();
      throw ConfigError("with '" + head.name + "' resized to " + std::to_string(outputs) +
                        " outputs, " + model.name() + " no longer runs (" +
                        what.substr(0, what.find('\n')) +
                        "): the head must be the layer that gives the model's outputs; its Linear "
                        "layers are: " +
                        layers);
    }
    if (out.dim() != 2 || out.size(1) != outputs)
      throw ConfigError("with '" + head.name + "' resized to " + std::to_string(outputs) +
                        " outputs, " + model.name() + " returns " + c10::str(out.sizes()) +
                        " per batch: the head must be the layer that gives the model's outputs; "
                        "its Linear layers are: " +
                        layers);
  }
  const bool train_bn = config.get_bool("finetune.train_bn");
  const int64_t frozen = models::freeze_backbone(model, head, train_bn);
  int64_t frozen_values = 0, head_values = 0;
  for (const auto& p : model.parameters())
    (p.requires_grad() ? head_values : frozen_values) += p.numel();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "fine-tuning %s: backbone frozen (%lld tensors, %lld values%s); new head %s "
                "(%lld values, from %s weights) trains first",
                source.describe().c_str(), static_cast<long long>(frozen),
                static_cast<long long>(frozen_values),
                model.kept_in_eval().empty() ? ""
                                             : (", " + std::to_string(model.kept_in_eval().size()) +
                                                " BatchNorm layers keep their statistics")
                                                   .c_str(),
                head.describe().c_str(), static_cast<long long>(head_values),
                config.get_string("finetune.head_init") == "zero" ? "zero" : "random");
  return {model, buf};
}

}  // namespace trainscope::session
