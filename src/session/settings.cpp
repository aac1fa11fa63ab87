// The settings table: each setting's key, default, reason, help and check, bound to the options
// field it sets. Nothing else declares a setting: --help, config.toml, the run store, the
// conversions to and from SessionOptions and the CLI's flags all read this table.

#include <trainscope/session/settings.h>

#include <trainscope/error.h>
#include <trainscope/runtime.h>

#include <cmath>
#include <type_traits>

namespace trainscope {
namespace {

using Ints = std::vector<int64_t>;
using Strings = std::vector<std::string>;
using Check = std::function<std::optional<std::string>(const ConfigValue&)>;
using Problem = std::optional<std::string>;

// ---- checks: each says what is expected, in the words of the message the user reads ----

template <typename T, typename Pred>
Check require(Pred ok, std::string expected) {
  return [ok, expected](const ConfigValue& v) -> Problem {
    if (ok(std::get<T>(v))) return std::nullopt;
    return " is out of range; expected " + expected;
  };
}
template <typename Pred>
Check int_is(Pred ok, std::string expected) {
  return require<int64_t>(ok, std::move(expected));
}
template <typename Pred>
Check num_is(Pred ok, std::string expected) {
  return require<double>(ok, std::move(expected));
}
Check at_least(int64_t lo, std::string expected) {
  return int_is([lo](int64_t v) { return v >= lo; }, std::move(expected));
}
Check non_negative_number(std::string expected = ">= 0") {
  return num_is([](double v) { return v >= 0; }, std::move(expected));
}
Check positive_number(std::string expected) {
  return num_is([](double v) { return std::isfinite(v) && v > 0; }, std::move(expected));
}
Check fraction_in(double lo, bool lo_open, double hi, bool hi_open, std::string expected) {
  return num_is(
      [=](double v) { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); },
      std::move(expected));
}
Check one_of(Strings names) {
  return [names](const ConfigValue& v) -> Problem {
    const auto& s = std::get<std::string>(v);
    std::string list;
    for (const auto& n : names) {
      if (s == n) return std::nullopt;
      list += (list.empty() ? "" : ", ") + n;
    }
    return " is not known; expected one of: " + list;
  };
}
template <typename E, size_t N>
Strings names_of(const EnumName<E> (&names)[N]) {
  Strings out;
  for (const auto& n : names) out.push_back(n.name);
  return out;
}

// ---- codecs: a field's C++ type to the setting's type and back ----

template <typename T>
struct Codec {
  static ConfigValue encode(const T& v) { return v; }
  static T decode(const ConfigValue& v) { return std::get<T>(v); }
};
template <>
struct Codec<int> {
  static ConfigValue encode(int v) { return int64_t{v}; }
  static int decode(const ConfigValue& v) { return static_cast<int>(std::get<int64_t>(v)); }
};
template <>
struct Codec<uint64_t> {
  static ConfigValue encode(uint64_t v) { return static_cast<int64_t>(v); }
  static uint64_t decode(const ConfigValue& v) {
    return static_cast<uint64_t>(std::get<int64_t>(v));
  }
};
template <>
struct Codec<std::filesystem::path> {
  static ConfigValue encode(const std::filesystem::path& v) { return v.string(); }
  static std::filesystem::path decode(const ConfigValue& v) { return std::get<std::string>(v); }
};
// train.batch_size: "auto" or a number, kept as text so that a file may say either.
template <>
struct Codec<std::optional<int64_t>> {
  static ConfigValue encode(const std::optional<int64_t>& v) {
    return v ? std::to_string(*v) : std::string("auto");
  }
  static std::optional<int64_t> decode(const ConfigValue& v) {
    const auto& s = std::get<std::string>(v);
    if (s == "auto") return std::nullopt;
    return std::stoll(s);
  }
};
// data.mean, data.std: [] means "computed from the training split"; so does 0, which config.toml
// files wrote before the settings took a value per channel.
struct EmptyWhenZero {
  static ConfigValue encode(const std::vector<double>& v) { return v; }
  static std::vector<double> decode(const ConfigValue& v) {
    const auto& d = std::get<std::vector<double>>(v);
    return d.size() == 1 && d[0] == 0.0 ? std::vector<double>{} : d;
  }
};
Check positive_numbers(std::string expected) {
  return [expected](const ConfigValue& v) -> Problem {
    const auto& list = std::get<std::vector<double>>(v);
    for (double d : list)
      if (!std::isfinite(d) || d < 0 || (d == 0 && list.size() > 1))
        return " is out of range; expected " + expected;
    return std::nullopt;
  };
}
template <typename E, const auto& Names>
struct EnumCodec {
  static ConfigValue encode(E v) { return std::string(name_of(v, Names)); }
  static E decode(const ConfigValue& v) { return *value_of(std::get<std::string>(v), Names); }
};
// data.augment_from: "auto" is 0 (callbacks::DelayedAugmentationOptions::start_epoch).
struct AugmentFromCodec {
  static ConfigValue encode(int64_t v) { return v == 0 ? std::string("auto") : std::to_string(v); }
  static int64_t decode(const ConfigValue& v) {
    const auto& s = std::get<std::string>(v);
    return s == "auto" ? 0 : std::stoll(s);
  }
};
struct DeviceCodec {
  static ConfigValue encode(const DeviceChoice& v) { return v.str(); }
  static DeviceChoice decode(const ConfigValue& v) {
    return *DeviceChoice::parse(std::get<std::string>(v));
  }
};
struct BadImageCodec {
  static ConfigValue encode(data::BadImagePolicy v) {
    return std::string(v == data::BadImagePolicy::kSkip ? "skip" : "fail");
  }
  static data::BadImagePolicy decode(const ConfigValue& v) {
    return std::get<std::string>(v) == "skip" ? data::BadImagePolicy::kSkip
                                              : data::BadImagePolicy::kFail;
  }
};
struct OnErrorCodec {
  static ConfigValue encode(callbacks::OnSaveError v) {
    return std::string(v == callbacks::OnSaveError::kContinue ? "continue" : "stop");
  }
  static callbacks::OnSaveError decode(const ConfigValue& v) {
    return std::get<std::string>(v) == "continue" ? callbacks::OnSaveError::kContinue
                                                  : callbacks::OnSaveError::kStop;
  }
};

// ---- bindings ----

struct Entry {
  std::string key;
  ConfigValue default_value;
  std::string reason;
  std::string help;
  Check check = nullptr;
};

// `field(options)` is the one field the setting sets; read() goes through the same accessor on a
// copy, so a setting cannot be written to one field and read from another.
template <typename C = void, typename F>
SettingBinding bind(Entry e, F field) {
  using T = std::remove_cvref_t<std::invoke_result_t<F, SessionOptions&>>;
  using Code = std::conditional_t<std::is_void_v<C>, Codec<T>, C>;
  SettingBinding b;
  b.spec = {std::move(e.key), std::move(e.default_value), std::move(e.reason), std::move(e.help),
            std::move(e.check)};
  b.write = [field](SessionOptions& o, const ConfigValue& v) { field(o) = Code::decode(v); };
  b.read = [field](const SessionOptions& o) {
    SessionOptions copy = o;
    return Code::encode(field(copy));
  };
  return b;
}

template <typename E, const auto& Names, typename F>
SettingBinding bind_enum(Entry e, F field) {
  if (!e.check) e.check = one_of(names_of(Names));
  return bind<EnumCodec<E, Names>>(std::move(e), field);
}

std::optional<std::string> check_dataset(const ConfigValue& v) {
  const auto& ds = std::get<std::string>(v);
  if (ds == "fashion-mnist" || ds.rfind("idx:", 0) == 0 || ds.rfind("folder:", 0) == 0 ||
      ds.rfind("csv:", 0) == 0)
    return std::nullopt;
  return std::string(
      " is not known; expected fashion-mnist, idx:DIR, folder:DIR or csv:FILE,target=COLUMN");
}

// "auto" or a positive integer (train.batch_size, data.augment_from); `expected` completes
// "expected auto or ...".
Check auto_or_positive(std::string expected) {
  return [expected](const ConfigValue& v) -> Problem {
    const auto& s = std::get<std::string>(v);
    if (s == "auto") return std::nullopt;
    try {
      size_t used = 0;
      if (std::stoll(s, &used) >= 1 && used == s.size()) return std::nullopt;
    } catch (const std::logic_error&) {
    }
    return " is out of range; expected auto or " + expected;
  };
}

std::optional<std::string> check_head_lr(const ConfigValue& v) {
  const auto& b = std::get<std::string>(v);
  if (b == "auto") return std::nullopt;
  try {
    size_t used = 0;
    const double lr = std::stod(b, &used);
    if (used == b.size() && std::isfinite(lr) && lr > 0) return std::nullopt;
  } catch (const std::logic_error&) {
  }
  return std::string(" is out of range; expected auto or a positive lr such as 0.01");
}

std::optional<std::string> check_class_weights(const ConfigValue& v) {
  const auto& text = std::get<std::string>(v);
  if (text.empty() || text == "balanced" || parse_class_weights(text)) return std::nullopt;
  return std::string(
      " is out of range; expected balanced, or weights >= 0 separated by commas such as "
      "\"1,2,0.5\"");
}

std::optional<std::string> check_monitor(const ConfigValue& v) {
  const auto& m = std::get<std::string>(v);
  if ((m.rfind("val_", 0) == 0 && m.size() > 4) || (m.rfind("train_", 0) == 0 && m.size() > 6))
    return std::nullopt;
  return std::string(
      " is out of range; expected <split>_<metric> such as val_loss, val_accuracy or train_loss");
}

std::optional<std::string> check_sizes(const ConfigValue& v, bool may_be_empty) {
  const auto& sizes = std::get<Ints>(v);
  if (sizes.empty() && !may_be_empty)
    return std::string(" is out of range; expected a non-empty list");
  for (int64_t n : sizes)
    if (n < 1) return std::string(" is out of range; expected positive sizes such as [32, 64]");
  return std::nullopt;
}

const double kNan = std::nan("");

std::vector<SettingBinding> make_table() {
  using O = SessionOptions;
  std::vector<SettingBinding> t;
  auto add = [&](SettingBinding b) { t.push_back(std::move(b)); };

  add(bind(
      {"run.name", std::string(""), "named <model>-<date>-<time> when empty",
       "run directory name under run.dir",
       [](const ConfigValue& v) -> Problem {
         const auto& name = std::get<std::string>(v);
         if (name.find('/') == std::string::npos && name != "." && name != "..")
           return std::nullopt;
         return std::string(" is out of range; expected a plain directory name without '/'");
       }},
      [](O & o) -> auto& { return o.train.run_name(); }));
  add(bind(
      {"run.dir", std::string("runs"), "runs are kept side by side for comparison",
       "directory that holds run directories"},
      [](O & o) -> auto& { return o.train.runs_dir(); }));
  add(bind(
      {"run.sweep", std::string(""), "a run of its own, not a trial of a sweep",
       "the sweep this run is a trial of (set by trainscope sweep; the runs table groups "
       "by it)"},
      [](O & o) -> auto& { return o.sweep; }));
  add(bind(
      {"run.sweep_trial", std::string(""), "a run of its own, not a trial of a sweep",
       "what this trial of run.sweep sets, as key=value pairs (set by trainscope sweep)"},
      [](O & o) -> auto& { return o.sweep_trial; }));
  add(bind(
      {"sweep.prune", std::string("none"), "every trial of a sweep runs its whole budget",
       "early termination of a sweep's poor trials: none, or halving (successive halving as "
       "ASHA: at epochs prune_min_epochs * prune_factor^k only the best 1/prune_factor of the "
       "trials so far go on); trials of run.sweep only",
       one_of({"none", "halving"})},
      [](O & o) -> auto& { return o.prune.method; }));
  add(bind(
      {"sweep.prune_min_epochs", int64_t{1}, "the first rung after one epoch",
       "successive halving: the first rung (epochs)", at_least(1, "a positive integer")},
      [](O & o) -> auto& { return o.prune.min_epochs; }));
  add(bind(
      {"sweep.prune_factor", int64_t{3}, "ASHA's usual reduction factor",
       "successive halving: keep the best 1/factor at each rung; rungs grow by it",
       at_least(2, "an integer >= 2")},
      [](O & o) -> auto& { return o.prune.factor; }));

  add(bind(
      {"data.dataset", std::string("fashion-mnist"),
       "the built-in default task (Debian package dataset-fashion-mnist)",
       "data set: fashion-mnist, idx:DIR (IDX files), folder:DIR (one sub-folder of JPEG/PNG "
       "images per class), csv:FILE,target=COLUMN[,target=COLUMN2][,test=FILE]",
       check_dataset},
      [](O & o) -> auto& { return o.data.spec; }));
  add(bind(
      {"data.augment", Strings{"hflip", "crop(pad=2)"},
       "flips and 2-pixel shifts help Fashion-MNIST and keep 10-epoch accuracy "
       "(bench/README.md)",
       "training-batch augmentation on the device, in order: hflip, vflip, rotate(deg), "
       "crop([size,] pad=N), translate(frac), scale(lo, hi), resized_crop(size), "
       "brightness(b), contrast(c), erase, mixup(a), cutmix(a); [] for none; image data only"},
      [](O & o) -> auto& { return o.augment; }));
  add(bind<AugmentFromCodec>(
      {"data.augment_from", std::string("auto"),
       "overfit first, then regularize: the first epochs learn faster without augmentation "
       "(91% test accuracy at epoch 3 instead of 10, bench/README.md)",
       "the first epoch whose training batches are augmented: auto (the epoch after the first "
       "whose validation loss is over 10% above its training loss, or whose monitored metric "
       "does not improve) or a positive epoch (1: from the start)",
       auto_or_positive("a positive epoch such as 1 (from the start)")},
      [](O & o) -> auto& { return o.augment_from; }));
  add(bind(
      {"data.workers", int64_t{0},
       "in-memory data gathers a batch in microseconds; loader threads would only take cores "
       "from the step (bench/README.md)",
       "loader worker threads (0: load batches in the step loop)",
       int_is([](int64_t v) { return v >= 0 && v <= 64; }, "0 to 64 threads")},
      [](O & o) -> auto& { return o.train.loader_workers(); }));
  add(bind<BadImageCodec>(
      {"data.on_bad_image", std::string("fail"), "a corrupt image usually means a broken data set",
       "fail or skip (count reported) for images that cannot be decoded", one_of({"fail", "skip"})},
      [](O & o) -> auto& { return o.data.on_bad_image; }));
  add(bind<EmptyWhenZero>(
      {"data.mean", std::vector<double>{},
       "used only with data.std; otherwise computed from the training split",
       "pixel mean of raw [0, 1] images for normalization (images only): one value, or one per "
       "channel such as [0.485, 0.456, 0.406]"},
      [](O & o) -> auto& { return o.data.mean; }));
  add(bind<EmptyWhenZero>(
      {"data.std", std::vector<double>{},
       "[]: mean and std are computed per channel from the training split, never from val or test",
       "pixel standard deviation for normalization, one value or one per channel; when set, "
       "data.mean and data.std are used as given",
       positive_numbers("positive numbers, one or one per channel ([]: computed from the "
                        "training split)")},
      [](O & o) -> auto& { return o.data.std; }));
  add(bind(
      {"data.dir", std::string("/usr/share/datasets/fashion-mnist"),
       "where dataset-fashion-mnist installs its files", "directory of the IDX files"},
      [](O & o) -> auto& { return o.data.fashion_mnist_dir; }));
  add(bind(
      {"data.val_fraction", 0.1, "10% held out of the training set for validation",
       "fraction of the training set held out for validation, in [0, 1)",
       fraction_in(0, false, 1, true, "a fraction in [0, 1) such as 0.1")},
      [](O & o) -> auto& { return o.data.val_fraction; }));
  add(bind(
      {"data.split_seed", int64_t{0}, "a fixed split keeps runs comparable",
       "seed of the train/validation split"},
      [](O & o) -> auto& { return o.data.split_seed; }));
  add(bind(
      {"data.limit", int64_t{0}, "all training samples",
       "use only the first N training samples (0: all)", at_least(0, ">= 0 (0: all)")},
      [](O & o) -> auto& { return o.data.limit; }));
  add(bind(
      {"data.test_limit", int64_t{0}, "all test samples",
       "use only the first N test samples (0: all)", at_least(0, ">= 0 (0: all)")},
      [](O & o) -> auto& { return o.data.test_limit; }));
  add(bind(
      {"data.classes", Ints{}, "every class of the data set",
       "keep only these class labels (IDX data), relabeled 0, 1, ... in this order",
       [](const ConfigValue& v) -> Problem {
         for (int64_t c : std::get<Ints>(v))
           if (c < 0)
             return std::string(
                 " is out of range; expected class labels >= 0 such as [5, 6, 7, 8, 9]");
         return std::nullopt;
       }},
      [](O & o) -> auto& { return o.data.classes; }));

  add(bind(
      {"model.name", std::string("cnn"), "the reference CNN for image classification",
       "model from the zoo: cnn, mlp or resnet (a small residual network for 28x28 and 32x32 "
       "images); or torchscript:PATH, a module saved from Python with "
       "torch.jit.script(model).save(PATH), trained from the weights in the file",
       [](const ConfigValue& v) -> Problem {
         const auto& name = std::get<std::string>(v);
         if (name == "cnn" || name == "mlp" || name == "resnet") return std::nullopt;
         if (name.rfind("torchscript:", 0) == 0 && name.size() > 12) return std::nullopt;
         return std::string(" is not known; expected cnn, mlp, resnet or torchscript:PATH");
       }},
      [](O & o) -> auto& { return o.model.name; }));
  add(bind(
      {"model.channels", Ints{32, 64}, "the reference CNN: conv 32, conv 64",
       "cnn: output channels of each conv-batchnorm-relu-maxpool block",
       [](const ConfigValue& v) { return check_sizes(v, false); }},
      [](O & o) -> auto& { return o.model.channels; }));
  add(bind(
      {"model.hidden", Ints{128}, "the reference CNN: one hidden layer of 128",
       "hidden layer sizes of the classifier (cnn) or of the network (mlp)",
       [](const ConfigValue& v) { return check_sizes(v, true); }},
      [](O & o) -> auto& { return o.model.hidden; }));
  add(bind(
      {"model.dropout", 0.0, "early stopping guards against overfitting first",
       "dropout before each hidden linear layer",
       fraction_in(0, false, 1, true, "a probability in [0, 1)")},
      [](O & o) -> auto& { return o.model.dropout; }));
  add(bind_enum<models::Activation, models::kActivationNames>(
      {"model.activation", std::string("relu"), "ReLU trains deep nets without saturating",
       "nonlinearity after each hidden layer: relu, leaky_relu, gelu, tanh or sigmoid"},
      [](O & o) -> auto& { return o.model.activation; }));
  add(bind_enum<models::Norm, models::kNormNames>(
      {"model.norm", std::string("auto"),
       "batch norm after each conv of the cnn and the resnet, none in the mlp",
       "normalization after each hidden layer: auto, none, batch or layer"},
      [](O & o) -> auto& { return o.model.norm; }));
  add(bind_enum<models::Init, models::kInitNames>(
      {"model.init", std::string("default"),
       "LibTorch's default initialization, as PyTorch's (the resnet's convs: kaiming, as "
       "torchvision)",
       "weight initialization of linear and conv layers: default, kaiming or xavier"},
      [](O & o) -> auto& { return o.model.init; }));
  add(bind(
      {"model.depth", int64_t{0}, "0: the sizes come from model.channels and model.hidden",
       "hidden layers (mlp), conv blocks (cnn) or blocks per stage (resnet); with model.width",
       at_least(0, ">= 0 (0: use the size lists)")},
      [](O & o) -> auto& { return o.model.depth; }));
  add(bind(
      {"model.width", int64_t{0}, "0: the sizes come from model.channels and model.hidden",
       "units per hidden layer (mlp), channels of the first block (cnn, doubling per block) or "
       "of the first stage (resnet); with model.depth",
       at_least(0, ">= 0 (0: use the size lists)")},
      [](O & o) -> auto& { return o.model.width; }));

  add(bind_enum<Task, kTaskNames>(
      {"train.task", std::string("classification"), "Fashion-MNIST has 10 classes",
       "classification, regression, multilabel (several 0/1 CSV targets), segmentation or "
       "sequence (data brought in code)"},
      [](O & o) -> auto& { return o.train.task(); }));
  add(bind(
      {"train.regime", std::string("scratch"), "a new model is trained from scratch",
       "scratch or finetune; sets the epoch budget", one_of({"scratch", "finetune"})},
      [](O & o) -> auto& { return o.regime; }));
  add(bind(
      {"train.max_epochs", int64_t{50},
       "training from scratch (30-100); early stopping ends sooner", "upper bound on epochs",
       at_least(1, "a positive integer")},
      [](O & o) -> auto& { return o.train.max_epochs(); }));
  add(bind_enum<Optimizer, kOptimizerNames>(
      {"train.optimizer", std::string("adam"), "Adam converges well without tuning",
       "adam, adamw or sgd (momentum 0.9)"},
      [](O & o) -> auto& { return o.train.optimizer(); }));
  add(bind(
      {"train.lr", 0.001, "the Adam rule of thumb", "learning rate",
       positive_number("a positive number such as 0.001")},
      [](O & o) -> auto& { return o.train.lr(); }));
  add(bind(
      {"train.weight_decay", 0.0, "no regularisation until a run shows it is needed",
       "L2 weight decay (decoupled for adamw)", non_negative_number()},
      [](O & o) -> auto& { return o.train.weight_decay(); }));
  add(bind(
      {"train.grad_clip", 0.0,
       "no clipping until a run shows it is needed (as in Keras and Lightning)",
       "clip the global L2 norm of the gradients to this before each step (0: off)",
       non_negative_number(">= 0 (0 turns clipping off)")},
      [](O & o) -> auto& { return o.train.grad_clip(); }));
  add(bind_enum<Loss, kLossNames>(
      {"train.loss", std::string("auto"), "chosen from the task",
       "auto, cross_entropy (classification, segmentation, sequence), bce (multilabel), mse, l1 "
       "or huber (regression)"},
      [](O & o) -> auto& { return o.train.loss(); }));
  add(bind(
      {"train.metrics", Strings{},
       "the loss and the task's own (accuracy; MAE and RMSE; exact_match; miou) are always on",
       "more metrics for every split: top{K}_accuracy, precision_macro, recall_macro, f1_macro, "
       "f1_micro, auroc, miou (classification); precision/recall/f1 _macro and _micro, auroc "
       "(multilabel); miou and the others over pixels or steps (segmentation, sequence); r2 "
       "(regression)"},
      [](O & o) -> auto& { return o.metrics; }));
  add(bind(
      {"train.label_smoothing", 0.0, "the plain cross-entropy of the labels as given",
       "cross-entropy: the share of each target spread over all classes (0.1 is common)",
       fraction_in(0, false, 1, true, "a fraction in [0, 1) such as 0.1")},
      [](O & o) -> auto& { return o.train.label_smoothing(); }));
  add(bind(
      {"train.class_weights", std::string(""), "every class counts the same",
       "cross-entropy: balanced (inverse class frequency in the training split) or one weight "
       "per class, comma-separated",
       check_class_weights},
      [](O & o) -> auto& { return o.class_weights; }));
  add(bind(
      {"train.huber_delta", 1.0, "torch's default",
       "huber: where the loss turns from squared to linear",
       positive_number("a positive number such as 1.0")},
      [](O & o) -> auto& { return o.train.huber_delta(); }));
  add(bind(
      {"train.batch_size", std::string("auto"),
       "the largest batch that fits in memory on an accelerator; on CPU a rule "
       "(tune.cpu_batch, tune.min_steps), so that one command gives one run",
       "training batch size, or auto: chosen before training (tune.*)",
       auto_or_positive("a positive integer such as 128")},
      [](O & o) -> auto& { return o.batch_size; }));
  add(bind(
      {"train.lr_scaling", std::string("keep"),
       "Adam's step size barely depends on the batch size, so lr stays at 1e-3",
       "how lr follows a batch size other than 128: keep, linear or sqrt",
       one_of({"keep", "linear", "sqrt"})},
      [](O & o) -> auto& { return o.lr_scaling; }));
  add(bind(
      {"train.eval_batch_size", int64_t{1000},
       "evaluation needs no gradients, so larger batches are cheap",
       "validation and test batch size", at_least(1, "a positive integer")},
      [](O & o) -> auto& { return o.train.eval_batch_size(); }));
  add(bind(
      {"train.seed", int64_t{0}, "runs are reproducible by default",
       "seed of weights and shuffling"},
      [](O & o) -> auto& { return o.train.seed(); }));
  add(bind(
      {"train.log_every", int64_t{50}, "per-step metrics without a sync every step",
       "store training loss every N steps", at_least(1, ">= 1")},
      [](O & o) -> auto& { return o.train.log_every(); }));
  add(bind(
      {"train.early_stopping", true, "stop when validation loss stops improving",
       "early stopping on val_loss"},
      [](O & o) -> auto& { return o.early_stopping; }));
  add(bind(
      {"train.patience", int64_t{5}, "5 epochs without improvement", "early stopping patience",
       at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.stopping.patience; }));
  add(bind(
      {"train.ema", 0.0, "the weights the optimizer reaches",
       "validate, keep and export an exponential moving average of the weights with this decay "
       "per step (0: off; 0.99 averages over about 100 steps)",
       fraction_in(0.0, false, 1.0, true, "a decay in [0, 1) such as 0.99 (0: off)")},
      [](O & o) -> auto& { return o.ema; }));
  add(bind(
      {"train.min_delta", 0.0, "any improvement counts", "smallest val_loss decrease that counts",
       non_negative_number()},
      [](O & o) -> auto& { return o.stopping.min_delta; }));
  add(bind(
      {"train.restore_best", true, "keep the weights of the best validation epoch",
       "restore the best weights at the end"},
      [](O & o) -> auto& { return o.stopping.restore_best; }));
  add(bind(
      {"train.checkpoints", true, "never lose progress",
       "resumable checkpoints: last.ckpt every epoch, best.ckpt, the top-k epochs"},
      [](O & o) -> auto& { return o.checkpoints; }));
  add(bind_enum<Precision, kPrecisionNames>(
      {"train.precision", std::string("auto"),
       "bf16 where the CPU computes it natively and the model trains from scratch, else fp32",
       "auto, fp32, bf16 (autocast to bfloat16, CPU or CUDA) or fp16 (autocast with a loss "
       "scaler, CUDA)"},
      [](O & o) -> auto& { return o.train.precision(); }));
  // The monitor and its mode are shared by early stopping, the best checkpoints and the plateau
  // schedule: one setting, written to each of them.
  {
    SettingBinding monitor;
    monitor.spec = {"train.monitor", std::string("val_loss"),
                    "validation loss is the most direct measure of generalization",
                    "metric the fit ranks its epochs by (the best epoch that early stopping "
                    "restores and best.ckpt holds) and the plateau schedule watches: "
                    "<train|val>_<metric>",
                    check_monitor};
    monitor.write = [](O& o, const ConfigValue& v) {
      o.train.monitor(std::get<std::string>(v));
      o.schedule.monitor = std::get<std::string>(v);
    };
    monitor.read = [](const O& o) -> ConfigValue { return o.train.monitor(); };
    add(std::move(monitor));
    SettingBinding mode;
    mode.spec = {"train.monitor_mode", std::string("auto"),
                 "max for accuracy-like metrics, min otherwise", "min, max or auto",
                 one_of({"auto", "min", "max"})};
    mode.write = [](O& o, const ConfigValue& v) {
      o.train.monitor_mode(std::get<std::string>(v));
      o.schedule.mode = std::get<std::string>(v);
    };
    mode.read = [](const O& o) -> ConfigValue { return o.train.monitor_mode(); };
    add(std::move(mode));
  }
  add(bind_enum<callbacks::ScheduleKind, callbacks::kScheduleNames>(
      {"train.lr_schedule", std::string("none"),
       "Adam at 1e-3 converges without a schedule; early stopping ends the plateau",
       "none, step, cosine (with warm-up), onecycle or plateau (schedule.* sets them)"},
      [](O & o) -> auto& { return o.schedule.kind; }));

  add(bind(
      {"stopping.baseline", kNan, "no baseline: any first value is the best so far",
       "early stopping: the monitored value must beat this within patience epochs (nan: "
       "off)"},
      [](O & o) -> auto& { return o.stopping.baseline; }));
  add(bind(
      {"stopping.start_from_epoch", int64_t{0}, "monitoring starts with the first epoch",
       "early stopping: epochs of warm-up before monitoring starts", at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.stopping.start_from_epoch; }));
  add(bind(
      {"stopping.check_finite", true, "a NaN or Inf loss never recovers",
       "early stopping: stop at once when the monitored value is NaN or Inf"},
      [](O & o) -> auto& { return o.stopping.check_finite; }));
  add(bind(
      {"stopping.threshold", kNan, "train until patience runs out",
       "early stopping: stop at once when the monitored value is at least this good (nan: "
       "off)"},
      [](O & o) -> auto& { return o.stopping.stopping_threshold; }));
  add(bind(
      {"stopping.divergence", kNan, "patience catches divergence too, later",
       "early stopping: stop at once when the monitored value is worse than this (nan: off)"},
      [](O & o) -> auto& { return o.stopping.divergence_threshold; }));

  add(bind(
      {"checkpoint.keep_top_k", int64_t{1}, "the best epoch beside last.ckpt is what a run needs",
       "keep epoch-NNNN-<monitor>-<value>.ckpt of the k best epochs (0: none)",
       at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.checkpoint.keep_top_k; }));
  add(bind(
      {"checkpoint.every_steps", int64_t{0}, "an epoch of Fashion-MNIST takes seconds to redo",
       "also save last.ckpt every N optimizer steps, mid-epoch (0: off)",
       at_least(0, ">= 0 (0: off)")},
      [](O & o) -> auto& { return o.checkpoint.every_steps; }));
  add(bind(
      {"checkpoint.every_minutes", 0.0, "epoch ends are frequent enough here",
       "also save last.ckpt when this many minutes passed since the last save (0: off)",
       non_negative_number(">= 0 (0: off)")},
      [](O & o) -> auto& { return o.checkpoint.every_minutes; }));
  add(bind(
      {"checkpoint.background", true,
       "the training thread only serializes; a second thread writes and fsyncs "
       "(bench/README.md)",
       "write checkpoint files on a background thread, one save in flight"},
      [](O & o) -> auto& { return o.checkpoint.background; }));
  add(bind<OnErrorCodec>(
      {"checkpoint.on_error", std::string("stop"),
       "a run that cannot checkpoint can lose its progress; stopping keeps what is saved",
       "when a save fails (full disk, read-only directory): stop or continue (without saving)",
       one_of({"stop", "continue"})},
      [](O & o) -> auto& { return o.checkpoint.on_error; }));

  add(bind(
      {"schedule.step_size", int64_t{10}, "torch's StepLR habit", "step: epochs between decays",
       at_least(1, "a positive number of epochs")},
      [](O & o) -> auto& { return o.schedule.step_size; }));
  add(bind(
      {"schedule.gamma", 0.1, "a tenfold decay", "step: factor per decay",
       positive_number("a positive factor such as 0.1")},
      [](O & o) -> auto& { return o.schedule.gamma; }));
  add(bind(
      {"schedule.warmup_epochs", int64_t{0}, "Adam needs no warm-up on small models",
       "cosine: epochs of linear warm-up", at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.schedule.warmup_epochs; }));
  add(bind(
      {"schedule.warmup_start", 0.01, "warm-up starts at 1% of the lr",
       "cosine: warm-up's first lr as a fraction of the lr",
       fraction_in(0, true, 1, false, "a fraction in (0, 1]")},
      [](O & o) -> auto& { return o.schedule.warmup_start; }));
  add(bind(
      {"schedule.min_lr", 0.0, "cosine anneals to zero", "cosine and plateau: the lowest lr",
       non_negative_number()},
      [](O & o) -> auto& { return o.schedule.min_lr; }));
  add(bind(
      {"schedule.max_lr", 0.0, "0: ten times train.lr", "onecycle: the peak lr",
       non_negative_number(">= 0 (0: ten times train.lr)")},
      [](O & o) -> auto& { return o.schedule.max_lr; }));
  add(bind(
      {"schedule.pct_start", 0.3, "torch's OneCycleLR default",
       "onecycle: share of the steps spent rising",
       fraction_in(0, true, 1, true, "a fraction in (0, 1)")},
      [](O & o) -> auto& { return o.schedule.pct_start; }));
  add(bind(
      {"schedule.factor", 0.1, "torch's ReduceLROnPlateau default", "plateau: lr factor",
       fraction_in(0, true, 1, true, "a fraction in (0, 1) such as 0.1")},
      [](O & o) -> auto& { return o.schedule.factor; }));
  add(bind(
      {"schedule.patience", int64_t{2},
       "lowers the lr at the third flat epoch, before early stopping's patience of 5",
       "plateau: epochs without improvement tolerated", at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.schedule.patience; }));
  add(bind(
      {"schedule.threshold", 1e-4, "torch's ReduceLROnPlateau default",
       "plateau: relative improvement that counts", non_negative_number()},
      [](O & o) -> auto& { return o.schedule.threshold; }));
  add(bind(
      {"schedule.cooldown", int64_t{0}, "torch's default", "plateau: epochs to wait after a decay",
       at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.schedule.cooldown; }));

  add(bind(
      {"finetune.from", std::string(""), "a new model is trained from scratch",
       "fine-tune from a run directory (its best.ckpt), a .ckpt checkpoint or a TorchScript "
       "file: its last layer is replaced by a new head and the rest frozen"},
      [](O & o) -> auto& { return o.finetune_from; }));
  add(bind(
      {"finetune.head", std::string(""), "the model's last layer, when it is a Linear",
       "name of the layer replaced by the new head (the error lists the candidates)"},
      [](O & o) -> auto& { return o.finetune_head; }));
  add(bind_enum<models::HeadInit, models::kHeadInitNames>(
      {"finetune.head_init", std::string("zero"),
       "a zero head starts at loss log(classes) whatever the features' scale; a random one "
       "over large frozen features starts far off",
       "the new head's weights: zero, or torch (Linear's uniform initialization)"},
      [](O & o) -> auto& { return o.head_init; }));
  add(bind(
      {"finetune.cache_features", true,
       "a frozen backbone gives the same features every epoch: computing them once makes head "
       "epochs nearly free (bench/README.md)",
       "while the head trains alone, train it on the backbone's features computed once (inputs "
       "are not augmented in that phase)"},
      [](O & o) -> auto& { return o.train.cache_features(); }));
  add(bind(
      {"finetune.head_lr", std::string("auto"),
       "a range test on the cached features finds the head's lr in a second (unless train.lr "
       "is set)",
       "the head phase's lr: auto, or a positive number", check_head_lr},
      [](O & o) -> auto& { return o.head_lr; }));
  add(bind(
      {"finetune.head_only", false,
       "the head phase, then the whole model at a lower lr; validation decides which is kept",
       "train the new head alone: the backbone never unfreezes"},
      [](O & o) -> auto& { return o.fine_tuning.head_only; }));
  add(bind(
      {"finetune.unfreeze_at_epoch", int64_t{0},
       "the backbone unfreezes once the head has converged (finetune.head_patience, "
       "finetune.head_epochs)",
       "epoch from which the backbone trains too (0: when the head has converged)",
       at_least(0, ">= 0 (0: when the head has converged)")},
      [](O & o) -> auto& { return o.fine_tuning.unfreeze_at_epoch; }));
  add(bind(
      {"finetune.head_patience", int64_t{2},
       "two epochs without a better validation score: the head has converged",
       "head epochs without improvement before the backbone unfreezes",
       at_least(1, "a positive number of epochs")},
      [](O & o) -> auto& { return o.fine_tuning.head_patience; }));
  add(bind(
      {"finetune.head_epochs", int64_t{20}, "epochs on cached features are cheap",
       "most epochs of the head phase before the backbone unfreezes",
       at_least(1, "a positive number of epochs")},
      [](O & o) -> auto& { return o.fine_tuning.head_epochs; }));
  add(bind(
      {"finetune.backbone_lr_ratio", 0.3,
       "discriminative rates: pretrained layers move 3x slower than the head (0.3 beat 0.1 "
       "and 1 on bench/run_finetune_bench.sh)",
       "an unfrozen backbone group's lr as a fraction of the head's (train.lr once the "
       "backbone trains)",
       positive_number("a positive factor such as 0.1")},
      [](O & o) -> auto& { return o.fine_tuning.backbone_lr_ratio; }));
  add(bind(
      {"finetune.anneal", false,
       "with early stopping, annealing did worse on the fine-tuning bench (94.22% against "
       "94.63%, bench/README.md)",
       "fastai-style: once the backbone trains, every lr follows a cosine down to 0 at the end "
       "of train.max_epochs (ignored under train.lr_schedule, which then sets the lrs)"},
      [](O & o) -> auto& { return o.fine_tuning.anneal; }));
  add(bind(
      {"finetune.warmup_steps", int64_t{0},
       "0: one epoch of steps, so that the pretrained layers start moving gently",
       "steps over which an unfrozen backbone's lr rises linearly to its value",
       at_least(0, ">= 0 (0: one epoch)")},
      [](O & o) -> auto& { return o.fine_tuning.warmup_steps; }));
  add(bind(
      {"finetune.groups", Strings{}, "the whole backbone unfreezes at once",
       "layer-name prefixes unfrozen one at a time, head side first (gradual unfreezing)"},
      [](O & o) -> auto& { return o.fine_tuning.groups; }));
  add(bind(
      {"finetune.unfreeze_every", int64_t{1}, "one more group each epoch",
       "epochs between unfreezing one group and the next",
       at_least(1, "a positive number of epochs")},
      [](O & o) -> auto& { return o.fine_tuning.unfreeze_every; }));
  add(bind(
      {"finetune.train_bn", false,
       "a pretrained backbone's BatchNorm statistics stay as they were learned on more data",
       "let the backbone's BatchNorm layers update their running statistics"},
      [](O & o) -> auto& { return o.fine_tuning.train_bn; }));

  add(bind(
      {"tune.memory_share", 0.5,
       "half the available memory leaves room for the rest of the machine",
       "batch size auto: share of available memory (CPU) a batch may use",
       fraction_in(0, true, 1, false, "a fraction in (0, 1]")},
      [](O & o) -> auto& { return o.tune.memory_share; }));
  add(bind(
      {"tune.headroom", 0.1, "10% below the measured peak absorbs allocator noise",
       "batch size auto: headroom under the memory budget",
       fraction_in(0, false, 1, true, "a fraction in [0, 1)")},
      [](O & o) -> auto& { return o.tune.headroom; }));
  add(bind(
      {"tune.min_gain", 0.05,
       "past +5% samples/s per doubling, larger batches only cost generalization",
       "batch-size search (CUDA): keep doubling while throughput improves by this share",
       non_negative_number()},
      [](O & o) -> auto& { return o.tune.min_gain; }));
  add(bind(
      {"tune.time_budget", 15.0, "the search must not delay the run noticeably",
       "batch-size search (CUDA): seconds at most",
       positive_number("a positive number of seconds")},
      [](O & o) -> auto& { return o.tune.time_budget_s; }));
  add(bind(
      {"tune.cpu_batch", int64_t{128},
       "CPU throughput levels off by 64-128 on a few cores, and a measured knee follows load "
       "noise: a rule gives the same batch, so the same run, every time",
       "batch size auto on CPU: at most this (a power of two), memory permitting",
       at_least(1, "a positive batch size such as 128")},
      [](O & o) -> auto& { return o.tune.cpu_batch; }));
  add(bind(
      {"tune.min_steps", int64_t{32},
       "a small data set gets smaller batches rather than a handful of steps per epoch",
       "batch size auto on CPU: at least this many optimizer steps per epoch",
       at_least(1, "a positive number of steps")},
      [](O & o) -> auto& { return o.tune.min_steps; }));

  add(bind(
      {"diagnose.enabled", true, "watching the run for known problems is what trainscope is for",
       "gather signals and run the problem detectors"},
      [](O & o) -> auto& { return o.diagnostics; }));
  add(bind(
      {"diagnose.every", int64_t{0}, "0: the logging interval (train.log_every)",
       "gather step signals every N steps", at_least(0, ">= 0 (0: train.log_every)")},
      [](O & o) -> auto& { return o.diagnose_every; }));
  add(bind(
      {"diagnose.activations", true,
       "dead ReLUs and saturated units are cheap to spot on one batch",
       "per-layer activation statistics for zoo models"},
      [](O & o) -> auto& { return o.diagnose.activations; }));
  add(bind(
      {"diagnose.sharpness_examples", int64_t{16},
       "three forwards of 16 examples per logging step cost about 0.5% of the training",
       "examples of the batch the sharpness along each logged step is measured on (0: off)",
       at_least(0, ">= 0 (0: off)")},
      [](O & o) -> auto& { return o.diagnose.sharpness_examples; }));
  add(bind(
      {"diagnose.preflight", true, "seconds to catch a broken setup before spending the epochs",
       "run the pre-flight checks before training"},
      [](O & o) -> auto& { return o.preflight; }));
  // trainscope check's data checks (diagnose::DataCheckOptions).
  add(bind(
      {"check.near_correlation", 0.995,
       "Fashion-MNIST's own near copies score 0.995-1; different images of one class stay "
       "below 0.99 (bench/README.md)",
       "data checks: two images are near copies at this Pearson correlation of their "
       "overlapping pixels, or more",
       fraction_in(0, true, 1, false, "a correlation in (0, 1] such as 0.995")},
      [](O & o) -> auto& { return o.data_check.near_correlation; }));
  add(bind(
      {"check.max_shift", int64_t{3}, "objects moved by up to 3 pixels still match",
       "data checks: the largest shift (working pixels) tried between two images",
       at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.data_check.max_shift; }));
  add(bind(
      {"check.candidates", int64_t{16}, "the nearest 16 by a coarse embedding hold the copies",
       "data checks: neighbours verified per image for near copies", at_least(1, ">= 1")},
      [](O & o) -> auto& { return o.data_check.candidates; }));
  add(bind(
      {"check.label_noise", true, "label suspects are cheap next to training",
       "data checks: look for mislabelled examples (out-of-fold predictions of a small MLP)"},
      [](O & o) -> auto& { return o.data_check.label_noise; }));
  add(bind(
      {"check.folds", int64_t{4}, "each example predicted by a model that did not see it",
       "data checks: folds of the out-of-fold predictions", at_least(2, ">= 2")},
      [](O & o) -> auto& { return o.data_check.folds; }));
  add(bind(
      {"check.max_suspects", int64_t{100}, "the most suspect 100 per split to look at",
       "data checks: label suspects listed per split at most", at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.data_check.max_suspects; }));
  add(bind(
      {"check.max_imbalance", 10.0, "as the pre-flight check",
       "data checks: largest / smallest training class above this is a finding",
       num_is([](double v) { return v >= 1; }, ">= 1")},
      [](O & o) -> auto& { return o.data_check.max_imbalance; }));
  add(bind(
      {"diagnose.auto_remedy", false, "remedies change the run, so the user opts in",
       "clip gradients, lower the lr or stop when a detector fires"},
      [](O & o) -> auto& { return o.diagnose.auto_remedy; }));

  add(bind(
      {"runtime.threads", int64_t{0}, "one intra-op thread per core (LibTorch's default uses half)",
       "intra-op threads (0: one per core)", at_least(0, ">= 0 (0: one per core)")},
      [](O & o) -> auto& { return o.runtime.intra_op_threads; }));
  add(bind(
      {"runtime.openblas_threads", int64_t{1},
       "OpenBLAS threads inside OpenMP's workers would fight over the cores",
       "OpenBLAS threads (0: leave OpenBLAS alone)", at_least(0, ">= 0")},
      [](O & o) -> auto& { return o.runtime.openblas_threads; }));
  add(bind(
      {"runtime.malloc_tuning", true,
       "keep freed activations instead of returning them to the kernel (~9,000 page faults "
       "a batch)",
       "raise glibc malloc's mmap and trim thresholds"},
      [](O & o) -> auto& { return o.runtime.malloc_tuning; }));
  add(bind<DeviceCodec>(
      {"runtime.device", std::string("auto"), "CUDA when there is one, else the CPU",
       "device to train on: auto, cpu, cuda or cuda:N",
       [](const ConfigValue& v) -> Problem {
         if (DeviceChoice::parse(std::get<std::string>(v))) return std::nullopt;
         return std::string(" is out of range; expected auto, cpu, cuda or cuda:N");
       }},
      [](O & o) -> auto& { return o.train.device(); }));
  add(bind(
      {"runtime.channels_last", std::string("auto"),
       "NHWC convolutions are faster on CUDA and through oneDNN on the CPU (1.3x the reference "
       "CNN's samples/s on an AMD EPYC, bench/README.md)",
       "4-D weights and inputs in channels-last layout: auto (on with CUDA, and on the CPU "
       "where LibTorch has oneDNN), on or off",
       one_of({"auto", "on", "off"})},
      [](O & o) -> auto& { return o.channels_last; }));

  add(bind(
      {"dist.backend", std::string("auto"), "Gloo on CPU, NCCL on CUDA",
       "data-parallel backend: auto, gloo or nccl", one_of({"auto", "gloo", "nccl"})},
      [](O & o) -> auto& { return o.dist_backend; }));
  add(bind(
      {"dist.timeout", 60.0,
       "a rank that died is noticed within a minute; slow steps rarely take that long",
       "seconds a collective may take before the job stops (a rank died or hangs)",
       positive_number("a positive number of seconds")},
      [](O & o) -> auto& { return o.dist_timeout; }));
  add(bind(
      {"dist.bucket_mb", 25.0, "DistributedDataParallel's bucket size",
       "gradients are all-reduced in buckets of about this many megabytes, during backward",
       positive_number("a positive size in megabytes")},
      [](O & o) -> auto& { return o.dist_bucket_mb; }));

  add(bind(
      {"ui.progress", std::string("auto"), "a live bar on a terminal, plain lines otherwise",
       "auto, bar, plain or off", one_of({"auto", "bar", "plain", "off"})},
      [](O & o) -> auto& { return o.progress; }));
  add(bind(
      {"ui.dashboard", true,
       "watching the curves and findings live is the point; it serves loopback only, "
       "read-only, and costs training under 5% even under load (bench/README.md)",
       "serve the dashboard beside the run while training (--no-dashboard turns it off)"},
      [](O & o) -> auto& { return o.dashboard; }));
  add(bind(
      {"ui.port", int64_t{6150},
       "a fixed port keeps the URL stable; the next free one is used when it is taken",
       "dashboard port on 127.0.0.1 (0: any free port)",
       int_is([](int64_t v) { return v >= 0 && v <= 65535; },
              "a port from 0 to 65535 (0: any free port)")},
      [](O & o) -> auto& { return o.port; }));
  add(bind(
      {"ui.linger", 60.0,
       "an open tab sees the final results; only on a terminal, so that scripts and CI never wait",
       "after training, on a terminal, the dashboard keeps serving this many seconds (Ctrl-C "
       "ends it at once; 0: exit when training ends)",
       non_negative_number(">= 0 seconds")},
      [](O & o) -> auto& { return o.linger; }));
  return t;
}

// train.precision = auto: Trainer's rule (auto_precision), resolved here so that the settings
// table says what it chose and why.
void resolve_precision(Config& c) {
  const auto device = DeviceChoice::parse(c.get_string("runtime.device"));
  if (!device) return;  // the device's own check names the problem
  torch::Device resolved = torch::kCPU;
  try {
    resolved = device->resolve();
  } catch (const ConfigError&) {
    return;  // CUDA named where there is none: the Session says so
  }
  const PrecisionChoice choice =
      auto_precision(resolved, c.get_string("train.regime") == "finetune");
  c.resolve_value("train.precision", std::string(name_of(choice.precision, kPrecisionNames)),
                  choice.reason);
}

// Defaults that depend on other settings. Each keeps source "default" and says what it was
// derived from; values that stand for another ("auto", 0 threads) become what they mean.
void derive(Config& c) {
  if (!c.get_string("finetune.from").empty())
    c.derive_default("train.regime", std::string("finetune"),
                     "fine-tuning from " + c.get_string("finetune.from"));
  if (c.get_string("train.regime") == "finetune")
    c.derive_default("train.max_epochs", int64_t{30},
                     "fine-tuning: the head phase on cached features (cheap epochs), then the "
                     "whole model until early stopping");
  if (c.get_string("train.regime") == "finetune")
    c.derive_default("train.patience", int64_t{8},
                     "fine-tuning: the whole model moves slowly at its lower lr and a small "
                     "validation set's loss is noisy; 8 epochs (5 stopped 1 of 10 seeds of "
                     "bench/run_finetune_bench.sh too early)");
  if (c.get_string("train.regime") == "finetune")
    c.derive_default("train.ema", 0.99,
                     "fine-tuning: a small data set's steps and validation loss are noisy; the "
                     "weight average raised bench/run_finetune_bench.sh from 94.94% to 95.44% "
                     "(decays 0.98-0.995 within 0.06 points)");
  if (c.get_string("train.regime") == "finetune")
    c.derive_default("data.augment_from", std::string("1"),
                     "fine-tuning: a pretrained model overfits a small data set from its first "
                     "epochs (bench/run_finetune_bench.sh augments from the start)");
  if (c.get_string("train.precision") == "auto") resolve_precision(c);
  if (c.get_string("data.dataset").rfind("folder:", 0) == 0)
    c.derive_default("data.workers", int64_t{2},
                     "image folders decode JPEG/PNG: two threads decode ahead of the step loop");
  if (c.get_string("train.task") != "classification")
    c.derive_default("data.augment", Strings{},
                     "the transforms move and mix the inputs alone, which fits one class per "
                     "example: train.task is " +
                         c.get_string("train.task"));
  if (c.get_string("train.loss") == "auto") {
    const std::string task = c.get_string("train.task");
    if (task == "regression")
      c.resolve_value("train.loss", std::string("mse"), "mean squared error for regression");
    else if (task == "multilabel")
      c.resolve_value("train.loss", std::string("bce"),
                      "binary cross-entropy on each label's logit for multilabel");
    else
      c.resolve_value(
          "train.loss", std::string("cross_entropy"),
          "cross-entropy for " + task + (task == "classification" ? "" : ", per position"));
  }
  if (c.get_string("model.name") == "mlp")
    c.derive_default("model.hidden", Ints{256, 128}, "mlp: two hidden layers, 256 and 128");
  if (c.get_int("runtime.threads") == 0)
    c.resolve_value("runtime.threads", int64_t{available_cores()},
                    "one intra-op thread per core (LibTorch's default uses half)");
}

}  // namespace

const std::vector<SettingBinding>& setting_bindings() {
  static const std::vector<SettingBinding> table = make_table();
  return table;
}

std::shared_ptr<const Schema> settings_schema() {
  static const std::shared_ptr<const Schema> schema = [] {
    auto s = std::make_shared<Schema>();
    for (const auto& b : setting_bindings()) s->settings.push_back(b.spec);
    s->derive = derive;
    return s;
  }();
  return schema;
}

Config default_config() { return Config(settings_schema()); }

std::optional<std::vector<double>> parse_class_weights(const std::string& text) {
  std::vector<double> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    try {
      size_t used = 0;
      const double w = std::stod(item, &used);
      if (item.find_first_not_of(" ", used) != std::string::npos || !std::isfinite(w) || w < 0)
        return std::nullopt;
      out.push_back(w);
    } catch (const std::logic_error&) {
      return std::nullopt;
    }
    at = comma + 1;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

SessionOptions session_options(const Config& config) {
  SessionOptions o;
  for (const auto& b : setting_bindings()) b.write(o, config.setting(b.spec.key).value);
  // Not settings of their own: what the task and the device imply.
  o.data.classification = o.train.task() == Task::kClassification;
  o.data.multilabel = o.train.task() == Task::kMultilabel;
  if (o.data.std.empty()) o.data.mean.clear();  // a mean is used only with its std
  o.train.config(config);
  return o;
}

Config config_of(const SessionOptions& options, const std::string& source) {
  Config c = default_config();
  for (const auto& b : setting_bindings()) {
    ConfigValue v = b.read(options);
    if (to_toml_literal(v) != to_toml_literal(c.setting(b.spec.key).value))
      c.set(b.spec.key, std::move(v), source);
  }
  c.resolve();
  return c;
}

}  // namespace trainscope
