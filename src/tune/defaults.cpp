// The defaults policy and the Config that carries it: every known key, its default and the
// reason for it, in one table. `trainscope train --help`, config.toml and the run store all
// read this table.

#include <trainscope/config.h>
#include <trainscope/runtime.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <thread>

#include <sched.h>

namespace trainscope {
namespace {

using Ints = std::vector<int64_t>;
using Strings = std::vector<std::string>;

const std::vector<SettingSpec>& spec_table() {
  static const std::vector<SettingSpec> table = {
      {"run.name", std::string(""), "named <model>-<date>-<time> when empty",
       "run directory name under run.dir"},
      {"run.dir", std::string("runs"), "runs are kept side by side for comparison",
       "directory that holds run directories"},
      {"data.dataset", std::string("fashion-mnist"),
       "the built-in default task (Debian package dataset-fashion-mnist)",
       "data set: fashion-mnist, idx:DIR (IDX files), folder:DIR (one sub-folder of JPEG/PNG "
       "images per "
       "class), csv:FILE,target=COLUMN[,target=COLUMN2][,test=FILE]"},
      {"data.augment", Strings{"hflip", "crop(pad=2)"},
       "flips and 2-pixel shifts help Fashion-MNIST and keep 10-epoch accuracy (bench/README.md)",
       "training-batch augmentation on the device, in order: hflip, vflip, rotate(deg), "
       "crop([size,] pad=N), "
       "translate(frac), scale(lo, hi), resized_crop(size), brightness(b), contrast(c), erase, "
       "mixup(a), "
       "cutmix(a); [] for none; image data only"},
      {"data.workers", int64_t{0},
       "in-memory data gathers a batch in microseconds; loader threads would only take cores from "
       "the step "
       "(bench/README.md)",
       "loader worker threads (0: load batches in the step loop)"},
      {"data.on_bad_image", std::string("fail"), "a corrupt image usually means a broken data set",
       "fail or skip (count reported) for images that cannot be decoded"},
      {"data.mean", 0.0, "used only with data.std; otherwise computed from the training split",
       "pixel mean of raw [0, 1] images for normalization (images only)"},
      {"data.std", 0.0,
       "0: mean and std are computed from the training split, never from val or test",
       "pixel standard deviation for normalization; > 0 uses data.mean and data.std as given"},
      {"data.dir", std::string("/usr/share/datasets/fashion-mnist"),
       "where dataset-fashion-mnist installs its files", "directory of the IDX files"},
      {"data.val_fraction", 0.1, "10% held out of the training set for validation",
       "fraction of the training set held out for validation, in [0, 1)"},
      {"data.split_seed", int64_t{0}, "a fixed split keeps runs comparable",
       "seed of the train/validation split"},
      {"data.limit", int64_t{0}, "all training samples",
       "use only the first N training samples (0: all)"},
      {"data.test_limit", int64_t{0}, "all test samples",
       "use only the first N test samples (0: all)"},
      {"data.classes", Ints{}, "every class of the data set",
       "keep only these class labels (IDX data), relabeled 0, 1, ... in this order"},
      {"model.name", std::string("cnn"), "the reference CNN for image classification",
       "model from the zoo: cnn or mlp"},
      {"model.channels", Ints{32, 64}, "the reference CNN: conv 32, conv 64",
       "cnn: output channels of each conv-batchnorm-relu-maxpool block"},
      {"model.hidden", Ints{128}, "the reference CNN: one hidden layer of 128",
       "hidden layer sizes of the classifier (cnn) or of the network (mlp)"},
      {"model.dropout", 0.0, "early stopping guards against overfitting first",
       "dropout before each hidden linear layer"},
      {"train.task", std::string("classification"), "Fashion-MNIST has 10 classes",
       "classification or regression"},
      {"train.regime", std::string("scratch"), "a new model is trained from scratch",
       "scratch or finetune; sets the epoch budget"},
      {"train.max_epochs", int64_t{50},
       "training from scratch (30-100); early stopping ends sooner", "upper bound on epochs"},
      {"train.optimizer", std::string("adam"), "Adam converges well without tuning",
       "adam, adamw or sgd (momentum 0.9)"},
      {"train.lr", 0.001, "the Adam rule of thumb", "learning rate"},
      {"train.weight_decay", 0.0, "no regularisation until a run shows it is needed",
       "L2 weight decay (decoupled for adamw)"},
      {"train.loss", std::string("auto"), "chosen from the task", "auto, cross_entropy or mse"},
      {"train.batch_size", std::string("auto"),
       "the largest batch that fits in memory, short of where throughput stops improving",
       "training batch size, or auto: searched with real training steps (tune.*)"},
      {"train.lr_scaling", std::string("keep"),
       "Adam's step size barely depends on the batch size, so lr stays at 1e-3",
       "how lr follows a batch size other than 128: keep, linear or sqrt"},
      {"train.eval_batch_size", int64_t{1000},
       "evaluation needs no gradients, so larger batches are cheap",
       "validation and test batch size"},
      {"train.seed", int64_t{0}, "runs are reproducible by default",
       "seed of weights and shuffling"},
      {"train.log_every", int64_t{50}, "per-step metrics without a sync every step",
       "store training loss every N steps"},
      {"train.early_stopping", true, "stop when validation loss stops improving",
       "early stopping on val_loss"},
      {"train.patience", int64_t{5}, "5 epochs without improvement", "early stopping patience"},
      {"train.min_delta", 0.0, "any improvement counts", "smallest val_loss decrease that counts"},
      {"train.restore_best", true, "keep the weights of the best validation epoch",
       "restore the best weights at the end"},
      {"train.checkpoints", true, "never lose progress",
       "resumable checkpoints: last.ckpt every epoch, best.ckpt, the top-k epochs"},
      {"train.precision", std::string("fp32"),
       "float32 throughout: nothing to scale, and exact resume",
       "fp32, bf16 (autocast to bfloat16, CPU or CUDA) or fp16 (autocast with a loss scaler, "
       "CUDA)"},
      {"train.monitor", std::string("val_loss"),
       "validation loss is the most direct measure of generalization",
       "metric that early stopping, the best checkpoint and the plateau schedule watch: "
       "<train|val>_<metric>"},
      {"train.monitor_mode", std::string("auto"), "max for accuracy-like metrics, min otherwise",
       "min, max or auto"},
      {"train.lr_schedule", std::string("none"),
       "Adam at 1e-3 converges without a schedule; early stopping ends the plateau",
       "none, step, cosine (with warm-up), onecycle or plateau (schedule.* sets them)"},
      {"stopping.baseline", std::nan(""), "no baseline: any first value is the best so far",
       "early stopping: the monitored value must beat this within patience epochs (nan: off)"},
      {"stopping.start_from_epoch", int64_t{0}, "monitoring starts with the first epoch",
       "early stopping: epochs of warm-up before monitoring starts"},
      {"stopping.check_finite", true, "a NaN or Inf loss never recovers",
       "early stopping: stop at once when the monitored value is NaN or Inf"},
      {"stopping.threshold", std::nan(""), "train until patience runs out",
       "early stopping: stop at once when the monitored value is at least this good (nan: off)"},
      {"stopping.divergence", std::nan(""), "patience catches divergence too, later",
       "early stopping: stop at once when the monitored value is worse than this (nan: off)"},
      {"checkpoint.keep_top_k", int64_t{1}, "the best epoch beside last.ckpt is what a run needs",
       "keep epoch-NNNN-<monitor>-<value>.ckpt of the k best epochs (0: none)"},
      {"checkpoint.every_steps", int64_t{0}, "an epoch of Fashion-MNIST takes seconds to redo",
       "also save last.ckpt every N optimizer steps, mid-epoch (0: off)"},
      {"checkpoint.every_minutes", 0.0, "epoch ends are frequent enough here",
       "also save last.ckpt when this many minutes passed since the last save (0: off)"},
      {"checkpoint.background", true,
       "the training thread only serializes; a second thread writes and fsyncs (bench/README.md)",
       "write checkpoint files on a background thread, one save in flight"},
      {"checkpoint.on_error", std::string("stop"),
       "a run that cannot checkpoint can lose its progress; stopping keeps what is saved",
       "when a save fails (full disk, read-only directory): stop or continue (without saving)"},
      {"schedule.step_size", int64_t{10}, "torch's StepLR habit", "step: epochs between decays"},
      {"schedule.gamma", 0.1, "a tenfold decay", "step: factor per decay"},
      {"schedule.warmup_epochs", int64_t{0}, "Adam needs no warm-up on small models",
       "cosine: epochs of linear warm-up"},
      {"schedule.warmup_start", 0.01, "warm-up starts at 1% of the lr",
       "cosine: warm-up's first lr as a fraction of the lr"},
      {"schedule.min_lr", 0.0, "cosine anneals to zero", "cosine and plateau: the lowest lr"},
      {"schedule.max_lr", 0.0, "0: ten times train.lr", "onecycle: the peak lr"},
      {"schedule.pct_start", 0.3, "torch's OneCycleLR default",
       "onecycle: share of the steps spent rising"},
      {"schedule.factor", 0.1, "torch's ReduceLROnPlateau default", "plateau: lr factor"},
      {"schedule.patience", int64_t{2},
       "lowers the lr at the third flat epoch, before early stopping's patience of 5",
       "plateau: epochs without improvement tolerated"},
      {"schedule.threshold", 1e-4, "torch's ReduceLROnPlateau default",
       "plateau: relative improvement that counts"},
      {"schedule.cooldown", int64_t{0}, "torch's default", "plateau: epochs to wait after a decay"},
      {"finetune.from", std::string(""), "a new model is trained from scratch",
       "fine-tune from a run directory (its best.ckpt), a .ckpt checkpoint or a TorchScript file: "
       "its last layer is replaced by a new head and the rest frozen"},
      {"finetune.head", std::string(""), "the model's last layer, when it is a Linear",
       "name of the layer replaced by the new head (the error lists the candidates)"},
      {"finetune.unfreeze_at_epoch", int64_t{0},
       "on a small data set the head alone adapts; training the backbone risks overfitting it",
       "epoch from which the backbone trains too (0: it stays frozen)"},
      {"finetune.backbone_lr_ratio", 0.1,
       "discriminative rates: pretrained layers move 10x slower than the new head",
       "an unfrozen backbone group's lr as a fraction of the head's"},
      {"finetune.groups", Strings{}, "the whole backbone unfreezes at once",
       "layer-name prefixes unfrozen one at a time, head side first (gradual unfreezing)"},
      {"finetune.unfreeze_every", int64_t{1}, "one more group each epoch",
       "epochs between unfreezing one group and the next"},
      {"finetune.train_bn", false,
       "a pretrained backbone's BatchNorm statistics stay as they were learned on more data",
       "let the backbone's BatchNorm layers update their running statistics"},
      {"tune.memory_share", 0.5,
       "half the available memory leaves room for the rest of the machine",
       "batch-size search (CPU): share of available memory a batch may use"},
      {"tune.headroom", 0.1, "10% below the measured peak absorbs allocator noise",
       "batch-size search: headroom under the memory budget"},
      {"tune.min_gain", 0.05,
       "past +5% samples/s per doubling, larger batches only cost generalization",
       "batch-size search: keep doubling while throughput improves by this share"},
      {"tune.time_budget", 15.0, "the search must not delay the run noticeably",
       "batch-size search: seconds at most"},
      {"tune.cpu_batch", int64_t{128},
       "CPU throughput levels off by 64-128 on a few cores, and a measured knee follows load noise: "
       "a rule gives the same batch, so the same run, every time",
       "batch size auto on CPU: at most this (a power of two), memory permitting"},
      {"tune.min_steps", int64_t{32},
       "a small data set gets smaller batches rather than a handful of steps per epoch",
       "batch size auto on CPU: at least this many optimizer steps per epoch"},
      {"diagnose.enabled", true, "watching the run for known problems is what trainscope is for",
       "gather signals and run the problem detectors"},
      {"diagnose.every", int64_t{0}, "0: the logging interval (train.log_every)",
       "gather step signals every N steps"},
      {"diagnose.activations", true,
       "dead ReLUs and saturated units are cheap to spot on one batch",
       "per-layer activation statistics for zoo models"},
      {"diagnose.preflight", true, "seconds to catch a broken setup before spending the epochs",
       "run the pre-flight checks before training"},
      {"diagnose.auto_remedy", false, "remedies change the run, so the user opts in",
       "clip gradients, lower the lr or stop when a detector fires"},
      {"runtime.threads", int64_t{0}, "one intra-op thread per core (LibTorch's default uses half)",
       "intra-op threads (0: one per core)"},
      {"runtime.openblas_threads", int64_t{1},
       "OpenBLAS threads inside OpenMP's workers would fight over the cores",
       "OpenBLAS threads (0: leave OpenBLAS alone)"},
      {"runtime.malloc_tuning", true,
       "keep freed activations instead of returning them to the kernel (~9,000 page faults a "
       "batch)",
       "raise glibc malloc's mmap and trim thresholds"},
      {"runtime.device", std::string("auto"), "CUDA when there is one, else the CPU",
       "device to train on: auto, cpu, cuda or cuda:N"},
      {"runtime.channels_last", std::string("auto"),
       "NHWC convolutions are faster on CUDA tensor cores and not on this CPU path",
       "4-D weights and inputs in channels-last layout: auto (on with CUDA), on or off"},
      {"dist.backend", std::string("auto"), "Gloo on CPU, NCCL on CUDA",
       "data-parallel backend: auto, gloo or nccl"},
      {"dist.timeout", 60.0,
       "a rank that died is noticed within a minute; slow steps rarely take that long",
       "seconds a collective may take before the job stops (a rank died or hangs)"},
      {"dist.bucket_mb", 25.0, "DistributedDataParallel's bucket size",
       "gradients are all-reduced in buckets of about this many megabytes, during backward"},
      {"ui.progress", std::string("auto"), "a live bar on a terminal, plain lines otherwise",
       "auto, bar, plain or off"},
      {"ui.dashboard", true,
       "watching the curves and findings live is the point; it serves loopback only, read-only, "
       "and "
       "costs training under 5% even under load (bench/README.md)",
       "serve the dashboard beside the run while training (--no-dashboard turns it off)"},
      {"ui.port", int64_t{6150},
       "a fixed port keeps the URL stable; the next free one is used when it is taken",
       "dashboard port on 127.0.0.1 (0: any free port)"},
  };
  return table;
}

const char* type_name(const ConfigValue& v) {
  switch (v.index()) {
    case 0:
      return "a boolean (true or false)";
    case 1:
      return "an integer";
    case 2:
      return "a number";
    case 3:
      return "a string";
    case 5:
      return "a list of strings";
    default:
      return "a list of integers";
  }
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// Closest known key by edit distance, for "did you mean" hints.
std::string closest_key(const std::string& key) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = 4;  // farther than this is not a typo
  for (const auto& s : spec_table()) {
    size_t d = distance(key, s.key);
    if (d < best_d) best_d = d, best = s.key;
  }
  return best;
}

std::string unknown_key_message(const std::string& where, const std::string& key) {
  std::string msg = where + ": unknown setting '" + key + "'";
  std::string near = closest_key(key);
  if (!near.empty()) return msg + "; did you mean '" + near + "'?";
  return msg + "; `trainscope train --help` lists the settings";
}

// `[a, "b(1, 2)"]` or `a, b(1, 2)`: commas inside parentheses or quotes do not split items.
template <typename Fail>
Strings parse_string_list(std::string t, const Fail& fail) {
  if (!t.empty() && t.front() == '[') {
    if (t.back() != ']') throw fail();
    t = t.substr(1, t.size() - 2);
  }
  Strings out;
  std::string item;
  int depth = 0;
  bool quoted = false;
  auto push = [&]() {
    std::string v = trim(item);
    item.clear();
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    if (!v.empty()) out.push_back(v);
  };
  for (char c : t) {
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '(') ++depth;
    if (!quoted && c == ')') --depth;
    if (c == ',' && depth == 0 && !quoted) {
      push();
      continue;
    }
    item += c;
  }
  if (quoted || depth != 0) throw fail();
  push();
  return out;
}

// Parses CLI text into the type of `like`.
ConfigValue parse_as(const ConfigValue& like, const std::string& text, const std::string& where) {
  std::string t = trim(text);
  auto fail = [&]() -> ConfigError {
    return ConfigError(where + ": expected " + type_name(like) + ", got '" + text + "'");
  };
  try {
    switch (like.index()) {
      case 0:
        if (t == "true" || t == "1" || t == "on" || t == "yes") return true;
        if (t == "false" || t == "0" || t == "off" || t == "no") return false;
        throw fail();
      case 1: {
        size_t used = 0;
        long long v = std::stoll(t, &used);
        if (used != t.size()) throw fail();
        return int64_t{v};
      }
      case 2: {
        size_t used = 0;
        double v = std::stod(t, &used);
        if (used != t.size()) throw fail();
        return v;
      }
      case 3:
        if (t.size() >= 2 && t.front() == '"' && t.back() == '"') return t.substr(1, t.size() - 2);
        return t;
      case 5:
        return parse_string_list(t, fail);
      default: {
        if (!t.empty() && t.front() == '[') {
          if (t.back() != ']') throw fail();
          t = t.substr(1, t.size() - 2);
        }
        Ints out;
        std::stringstream ss(t);
        std::string item;
        while (std::getline(ss, item, ',')) {
          item = trim(item);
          if (item.empty()) continue;
          size_t used = 0;
          out.push_back(std::stoll(item, &used));
          if (used != item.size()) throw fail();
        }
        return out;
      }
    }
  } catch (const std::logic_error&) {  // stoll/stod: invalid_argument, out_of_range
    throw fail();
  }
}

// Converts a TOML node to the type of `like`; integers are accepted where numbers are expected.
ConfigValue from_toml(const ConfigValue& like, const toml::node& node, const std::string& where) {
  auto fail = [&]() {
    return ConfigError(
        where + ": expected " + type_name(like) + ", got a " +
        std::string(toml::impl::node_type_friendly_names[static_cast<int>(node.type())]));
  };
  switch (like.index()) {
    case 0:
      if (auto v = node.value_exact<bool>()) return *v;
      throw fail();
    case 1:
      if (auto v = node.value_exact<int64_t>()) return *v;
      throw fail();
    case 2:
      if (node.is_number()) return *node.value<double>();
      throw fail();
    case 3:
      if (auto v = node.value_exact<std::string>()) return *v;
      // "auto"-or-number settings (train.batch_size) take a bare integer too; resolve() checks it.
      if (auto v = node.value_exact<int64_t>()) return std::to_string(*v);
      throw fail();
    case 5: {
      const toml::array* arr = node.as_array();
      if (!arr) throw fail();
      Strings out;
      for (const auto& item : *arr) {
        auto v = item.value_exact<std::string>();
        if (!v) throw fail();
        out.push_back(*v);
      }
      return out;
    }
    default: {
      const toml::array* arr = node.as_array();
      if (!arr) throw fail();
      Ints out;
      for (const auto& item : *arr) {
        auto v = item.value_exact<int64_t>();
        if (!v) throw fail();
        out.push_back(*v);
      }
      return out;
    }
  }
}

}  // namespace

std::string to_toml_literal(const ConfigValue& value) {
  std::ostringstream out;
  switch (value.index()) {
    case 0:
      out << (std::get<bool>(value) ? "true" : "false");
      break;
    case 1:
      out << std::get<int64_t>(value);
      break;
    case 2: {
      double d = std::get<double>(value);
      out << std::setprecision(17) << d;
      std::string s = out.str();
      // Shortest text that reads back to the same double; TOML floats need a '.' or exponent.
      for (int p = 1; p <= 17; ++p) {
        std::ostringstream o;
        o << std::setprecision(p) << d;
        if (std::stod(o.str()) == d) {
          s = o.str();
          break;
        }
      }
      // Whole numbers read better without an exponent: 60.0, not 6e+01.
      if (s.find_first_of("eE") != std::string::npos && std::isfinite(d) && d == std::floor(d) &&
          std::fabs(d) < 1e15) {
        std::ostringstream whole;
        whole << std::fixed << std::setprecision(0) << d;
        s = whole.str();
      }
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    case 3:
      out << quote(std::get<std::string>(value));
      break;
    case 5: {
      out << "[";
      const auto& v = std::get<Strings>(value);
      for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << quote(v[i]);
      out << "]";
      break;
    }
    default: {
      out << "[";
      const auto& v = std::get<Ints>(value);
      for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
      out << "]";
    }
  }
  return out.str();
}

const std::vector<SettingSpec>& Config::schema() { return spec_table(); }

Config Config::defaults() {
  Config c;
  for (const auto& s : spec_table())
    c.settings_.push_back({s.key, s.default_value, "default", s.reason});
  return c;
}

Setting& Config::find(const std::string& key, const std::string& where) {
  for (auto& s : settings_)
    if (s.key == key) return s;
  throw ConfigError(unknown_key_message(where, key));
}

const Setting& Config::setting(const std::string& key) const {
  for (const auto& s : settings_)
    if (s.key == key) return s;
  throw ConfigError(unknown_key_message("config", key));
}

void Config::set(const std::string& key, ConfigValue value, const std::string& source,
                 const std::string& reason) {
  Setting& s = find(key, source);
  if (value.index() == 1 && s.value.index() == 2) value = double(std::get<int64_t>(value));
  if (value.index() == 1 && s.value.index() == 3) value = std::to_string(std::get<int64_t>(value));
  if (value.index() != s.value.index())
    throw ConfigError(source + ": " + key + " expects " + type_name(s.value) + ", got " +
                      to_toml_literal(value));
  s.value = std::move(value);
  s.source = source;
  s.reason = reason.empty() ? "set by the user" : reason;
}

void Config::set_from_string(const std::string& assignment, const std::string& source) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos)
    throw ConfigError(source + " '" + assignment +
                      "': expected key=value, for example train.lr=0.0003");
  std::string key = trim(assignment.substr(0, eq));
  const Setting& s = find(key, source + " " + key);
  set(key, parse_as(s.value, assignment.substr(eq + 1), source + " " + key), source);
}

void Config::merge_file(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file))
    throw ConfigError("config file " + file.string() + " does not exist");
  std::ifstream in(file, std::ios::binary);
  merge_text(std::string(std::istreambuf_iterator<char>(in), {}), file.string());
}

void Config::merge_text(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError(origin + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()) + " (not valid TOML)");
  }
  const std::filesystem::path file = origin;
  for (auto&& [section, node] : root) {
    std::string line = std::to_string(node.source().begin.line);
    const toml::table* table = node.as_table();
    if (!table)
      throw ConfigError(file.string() + ":" + line + ": '" + std::string(section.str()) +
                        "' must be a section such as [train]");
    for (auto&& [name, value] : *table) {
      std::string key = std::string(section.str()) + "." + std::string(name.str());
      std::string where = file.string() + ":" + std::to_string(value.source().begin.line);
      Setting& s = find(key, where);
      set(key, from_toml(s.value, value, where + ": " + key), where);
    }
  }
}

void Config::resolve() {
  auto where = [&](const std::string& key) {
    const Setting& s = setting(key);
    return s.source + ": " + key + " = " + to_toml_literal(s.value);
  };
  auto require = [&](bool ok, const std::string& key, const std::string& expected) {
    if (!ok) throw ConfigError(where(key) + " is out of range; expected " + expected);
  };
  auto one_of = [&](const std::string& key, std::initializer_list<const char*> options) {
    const std::string& v = get_string(key);
    std::string list;
    for (const char* o : options) {
      if (v == o) return;
      list += (list.empty() ? "" : ", ") + std::string(o);
    }
    throw ConfigError(where(key) + " is not known; expected one of: " + list);
  };

  one_of("model.name", {"cnn", "mlp"});
  one_of("train.task", {"classification", "regression"});
  one_of("train.regime", {"scratch", "finetune"});
  one_of("train.optimizer", {"adam", "adamw", "sgd"});
  one_of("train.loss", {"auto", "cross_entropy", "mse"});
  one_of("ui.progress", {"auto", "bar", "plain", "off"});
  const std::string& ds = get_string("data.dataset");
  if (ds != "fashion-mnist" && ds.rfind("idx:", 0) != 0 && ds.rfind("folder:", 0) != 0 &&
      ds.rfind("csv:", 0) != 0)
    throw ConfigError(
        where("data.dataset") +
        " is not known; expected fashion-mnist, idx:DIR, folder:DIR or csv:FILE,target=COLUMN");
  one_of("data.on_bad_image", {"fail", "skip"});
  require(get_double("data.std") >= 0, "data.std", ">= 0 (0: computed from the training split)");
  require(get_int("data.workers") >= 0 && get_int("data.workers") <= 64, "data.workers",
          "0 to 64 threads");

  const double lr = get_double("train.lr");
  require(std::isfinite(lr) && lr > 0, "train.lr", "a positive number such as 0.001");
  require(get_double("train.weight_decay") >= 0, "train.weight_decay", ">= 0");
  {
    const std::string& b = get_string("train.batch_size");
    bool ok = b == "auto";
    if (!ok) try {
        size_t used = 0;
        ok = std::stoll(b, &used) >= 1 && used == b.size();
      } catch (const std::logic_error&) {
      }
    require(ok, "train.batch_size", "auto or a positive integer such as 128");
  }
  one_of("train.lr_scaling", {"keep", "linear", "sqrt"});
  const double share = get_double("tune.memory_share"), headroom = get_double("tune.headroom");
  require(share > 0 && share <= 1, "tune.memory_share", "a fraction in (0, 1]");
  require(headroom >= 0 && headroom < 1, "tune.headroom", "a fraction in [0, 1)");
  require(get_double("tune.min_gain") >= 0, "tune.min_gain", ">= 0");
  require(get_double("tune.time_budget") > 0, "tune.time_budget", "a positive number of seconds");
  require(get_int("tune.cpu_batch") >= 1, "tune.cpu_batch", "a positive batch size such as 128");
  require(get_int("tune.min_steps") >= 1, "tune.min_steps", "a positive number of steps");
  require(get_int("train.eval_batch_size") >= 1, "train.eval_batch_size", "a positive integer");
  require(get_int("train.max_epochs") >= 1, "train.max_epochs", "a positive integer");
  require(get_int("train.patience") >= 0, "train.patience", ">= 0");
  require(get_double("train.min_delta") >= 0, "train.min_delta", ">= 0");
  require(get_int("train.log_every") >= 1, "train.log_every", ">= 1");
  const double vf = get_double("data.val_fraction");
  require(vf >= 0 && vf < 1, "data.val_fraction", "a fraction in [0, 1) such as 0.1");
  require(get_int("data.limit") >= 0, "data.limit", ">= 0 (0: all)");
  require(get_int("data.test_limit") >= 0, "data.test_limit", ">= 0 (0: all)");
  const double dropout = get_double("model.dropout");
  require(dropout >= 0 && dropout < 1, "model.dropout", "a probability in [0, 1)");
  for (const char* key : {"model.channels", "model.hidden"}) {
    const auto& v = get_ints(key);
    require(!v.empty() || std::string(key) == "model.hidden", key, "a non-empty list");
    for (int64_t n : v) require(n >= 1, key, "positive sizes such as [32, 64]");
  }
  require(get_int("diagnose.every") >= 0, "diagnose.every", ">= 0 (0: train.log_every)");
  {
    const std::string& m = get_string("train.monitor");
    const bool ok =
        (m.rfind("val_", 0) == 0 && m.size() > 4) || (m.rfind("train_", 0) == 0 && m.size() > 6);
    require(ok, "train.monitor", "<split>_<metric> such as val_loss, val_accuracy or train_loss");
  }
  one_of("train.monitor_mode", {"auto", "min", "max"});
  one_of("train.precision", {"fp32", "bf16", "fp16"});
  one_of("runtime.channels_last", {"auto", "on", "off"});
  one_of("dist.backend", {"auto", "gloo", "nccl"});
  require(get_double("dist.timeout") > 0, "dist.timeout", "a positive number of seconds");
  require(get_double("dist.bucket_mb") > 0, "dist.bucket_mb", "a positive size in megabytes");
  {
    const std::string& d = get_string("runtime.device");
    const bool ok = d == "auto" || d == "cpu" || d == "cuda" ||
                    (d.rfind("cuda:", 0) == 0 && d.size() > 5 &&
                     d.find_first_not_of("0123456789", 5) == std::string::npos);
    require(ok, "runtime.device", "auto, cpu, cuda or cuda:N");
  }
  one_of("train.lr_schedule", {"none", "step", "cosine", "onecycle", "plateau"});
  require(get_int("stopping.start_from_epoch") >= 0, "stopping.start_from_epoch", ">= 0");
  require(get_int("checkpoint.keep_top_k") >= 0, "checkpoint.keep_top_k", ">= 0");
  require(get_int("checkpoint.every_steps") >= 0, "checkpoint.every_steps", ">= 0 (0: off)");
  require(get_double("checkpoint.every_minutes") >= 0, "checkpoint.every_minutes", ">= 0 (0: off)");
  one_of("checkpoint.on_error", {"stop", "continue"});
  require(get_int("schedule.step_size") >= 1, "schedule.step_size", "a positive number of epochs");
  require(get_double("schedule.gamma") > 0, "schedule.gamma", "a positive factor such as 0.1");
  require(get_int("schedule.warmup_epochs") >= 0, "schedule.warmup_epochs", ">= 0");
  const double ws = get_double("schedule.warmup_start");
  require(ws > 0 && ws <= 1, "schedule.warmup_start", "a fraction in (0, 1]");
  require(get_double("schedule.min_lr") >= 0, "schedule.min_lr", ">= 0");
  require(get_double("schedule.max_lr") >= 0, "schedule.max_lr", ">= 0 (0: ten times train.lr)");
  const double ps = get_double("schedule.pct_start");
  require(ps > 0 && ps < 1, "schedule.pct_start", "a fraction in (0, 1)");
  const double f = get_double("schedule.factor");
  require(f > 0 && f < 1, "schedule.factor", "a fraction in (0, 1) such as 0.1");
  require(get_int("schedule.patience") >= 0, "schedule.patience", ">= 0");
  require(get_double("schedule.threshold") >= 0, "schedule.threshold", ">= 0");
  require(get_int("schedule.cooldown") >= 0, "schedule.cooldown", ">= 0");
  require(get_int("ui.port") >= 0 && get_int("ui.port") <= 65535, "ui.port",
          "a port from 0 to 65535 (0: any free port)");
  require(get_int("runtime.threads") >= 0, "runtime.threads", ">= 0 (0: one per core)");
  require(get_int("runtime.openblas_threads") >= 0, "runtime.openblas_threads", ">= 0");
  const std::string& name = get_string("run.name");
  require(name.find('/') == std::string::npos && name != "." && name != "..", "run.name",
          "a plain directory name without '/'");

  require(get_int("finetune.unfreeze_at_epoch") >= 0, "finetune.unfreeze_at_epoch",
          ">= 0 (0: the backbone stays frozen)");
  require(get_double("finetune.backbone_lr_ratio") > 0, "finetune.backbone_lr_ratio",
          "a positive factor such as 0.1");
  require(get_int("finetune.unfreeze_every") >= 1, "finetune.unfreeze_every",
          "a positive number of epochs");
  for (int64_t c : get_ints("data.classes"))
    require(c >= 0, "data.classes", "class labels >= 0 such as [5, 6, 7, 8, 9]");

  // Dependent defaults: each keeps source "default" and says what it was derived from.
  Setting& regime = find("train.regime", "resolve");
  if (regime.source == "default" && !get_string("finetune.from").empty()) {
    regime.value = std::string("finetune");
    regime.reason = "fine-tuning from " + get_string("finetune.from");
  }
  Setting& epochs = find("train.max_epochs", "resolve");
  if (epochs.source == "default" && get_string("train.regime") == "finetune") {
    epochs.value = int64_t{6};
    epochs.reason = "fine-tuning converges in 5-6 epochs";
  }
  Setting& workers = find("data.workers", "resolve");
  if (workers.source == "default" && get_string("data.dataset").rfind("folder:", 0) == 0) {
    workers.value = int64_t{2};
    workers.reason = "image folders decode JPEG/PNG: two threads decode ahead of the step loop";
  }
  Setting& loss = find("train.loss", "resolve");
  if (std::get<std::string>(loss.value) == "auto") {
    bool cls = get_string("train.task") == "classification";
    loss.value = std::string(cls ? "cross_entropy" : "mse");
    if (loss.source == "default")
      loss.reason = cls ? "cross-entropy for classification" : "mean squared error for regression";
  }
  Setting& hidden = find("model.hidden", "resolve");
  if (hidden.source == "default" && get_string("model.name") == "mlp") {
    hidden.value = Ints{256, 128};
    hidden.reason = "mlp: two hidden layers, 256 and 128";
  }
  Setting& threads = find("runtime.threads", "resolve");
  if (std::get<int64_t>(threads.value) == 0) {
    threads.value = int64_t{available_cores()};
    if (threads.source == "default")
      threads.reason = "one intra-op thread per core (LibTorch's default uses half)";
  }
}

bool Config::get_bool(const std::string& key) const { return std::get<bool>(setting(key).value); }
int64_t Config::get_int(const std::string& key) const {
  return std::get<int64_t>(setting(key).value);
}
double Config::get_double(const std::string& key) const {
  return std::get<double>(setting(key).value);
}
const std::string& Config::get_string(const std::string& key) const {
  return std::get<std::string>(setting(key).value);
}
const std::vector<int64_t>& Config::get_ints(const std::string& key) const {
  return std::get<Ints>(setting(key).value);
}
const std::vector<std::string>& Config::get_strings(const std::string& key) const {
  return std::get<Strings>(setting(key).value);
}

std::string Config::to_toml() const {
  std::ostringstream out;
  out << "# trainscope resolved configuration; reuse it with `trainscope train --config FILE`.\n";
  // TOML defines a table once: the settings of a section together, sections in the order they
  // first appear.
  std::vector<std::string> sections;
  for (const auto& s : settings_) {
    const std::string sec = s.key.substr(0, s.key.find('.'));
    if (std::find(sections.begin(), sections.end(), sec) == sections.end()) sections.push_back(sec);
  }
  std::vector<const Setting*> ordered;
  for (const auto& sec : sections)
    for (const auto& s : settings_)
      if (s.key.compare(0, sec.size() + 1, sec + ".") == 0) ordered.push_back(&s);
  std::string section;
  for (const Setting* setting : ordered) {
    const Setting& s = *setting;
    auto dot = s.key.find('.');
    std::string sec = s.key.substr(0, dot), name = s.key.substr(dot + 1);
    if (sec != section) {
      out << "\n[" << sec << "]\n";
      section = sec;
    }
    out << name << " = " << to_toml_literal(s.value);
    if (s.source == "default")
      out << "  # default: " << s.reason;
    else
      out << "  # from " << s.source;
    out << "\n";
  }
  return out.str();
}

void Config::print_defaults(std::ostream& out) const {
  size_t width = 0;
  for (const auto& s : settings_)
    width = std::max(width, s.key.size() + 3 + to_toml_literal(s.value).size());
  for (const auto& s : settings_) {
    std::string lhs = s.key + " = " + to_toml_literal(s.value);
    out << "  " << std::left << std::setw(int(width)) << lhs << "  "
        << (s.source == "default" ? s.reason : "from " + s.source) << "\n";
  }
}

}  // namespace trainscope
