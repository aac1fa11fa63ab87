#include <trainscope/session/session.h>

#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/callbacks/delayed_augmentation.h>
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/callbacks/fine_tuning.h>
#include <trainscope/callbacks/lr_schedule.h>
#include <trainscope/callbacks/progress.h>
#include <trainscope/callbacks/run_logger.h>
#include <trainscope/callbacks/successive_halving.h>
#include <trainscope/callbacks/tensorboard.h>
#include <trainscope/callbacks/weight_averaging.h>
#include <trainscope/data/image_folder.h>
#include <trainscope/data/spec.h>
#include <trainscope/data/transforms.h>
#include <trainscope/diagnose/diagnostics.h>
#include <trainscope/diagnose/preflight.h>
#include <trainscope/dist/data_parallel.h>
#include <trainscope/dist/process_group.h>
#include <trainscope/error.h>
#include <trainscope/models/export.h>
#include <trainscope/models/torchscript.h>
#include <trainscope/models/transfer.h>
#include <trainscope/runtime.h>
#include <trainscope/session/source.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/run.h>
#include <trainscope/track/run_store.h>
#include <trainscope/train/head_features.h>
#include <trainscope/tune/head_probe.h>
#include <trainscope/tune/lr_finder.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace trainscope {
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t model_outputs(const data::DataSplits& data) {
  return data.num_classes > 0 ? data.num_classes : static_cast<int64_t>(1);
}

data::DataSplits load_and_report(const data::DataOptions& o) {
  auto data = data::load_data(o);
  if (data.skipped > 0)
    std::fprintf(stderr, "data: skipped %lld unreadable images (data.on_bad_image = \"skip\")\n",
                 static_cast<long long>(data.skipped));
  return data;
}

// The training-batch augmentation of data.augment. The default list applies to image data only;
// a list the user set on tabular data is an error (raised by the transforms on the first batch).
std::shared_ptr<data::Transform> make_augment(const Config& config, const data::DataSplits& data,
                                              Task task) {
  const auto& setting = config.setting("data.augment");
  // Not images: the default list (as a resumed run's config.toml records it, too) means none.
  if (data.input_shape.size() != 3 &&
      (setting.source == "default" ||
       config.get_strings("data.augment") == default_config().get_strings("data.augment")))
    return nullptr;
  // The transforms move and mix pixels but not the targets: they fit one class per example (the
  // defaults policy turns them off for the other tasks).
  if (task != Task::kClassification && !config.get_strings("data.augment").empty())
    throw ConfigError(
        "data.augment (" + setting.source + ") transforms the inputs alone, which " +
        "fits train.task = classification only; with train.task = " + name_of(task, kTaskNames) +
        " set data.augment = [] (segmentation masks would not move with their "
        "images)");
  data::AugmentContext context;
  context.stats = data.pixels;
  context.classes = data.num_classes;
  return data::parse_augmentation(config.get_strings("data.augment"), context);
}

void configure_runtime(const Config& config, bool print) {
  RuntimeOptions runtime;
  runtime.intra_op_threads = static_cast<int>(config.get_int("runtime.threads"));
  runtime.openblas_threads = static_cast<int>(config.get_int("runtime.openblas_threads"));
  runtime.malloc_tuning = config.get_bool("runtime.malloc_tuning");
  auto report = configure_process(runtime);
  if (!print) return;
  std::printf("process:\n");
  for (const auto& line : report.lines) std::printf("  %s\n", line.c_str());
}

std::string join_list(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

// Records how the data were prepared, so a run says what its model saw.
void record_data(track::RunStore& store, const data::DataSplits& data,
                 const std::shared_ptr<data::Transform>& augment) {
  store.set_meta("data.source", data.source);
  // Exact, one value per channel or one for all: a fine-tune from this run adopts them.
  store.set_meta("data.mean", to_toml_literal(data.pixels.mean));
  store.set_meta("data.std", to_toml_literal(data.pixels.std));
  store.set_meta("data.augment", augment ? augment->describe() : "[]");
  // What `trainscope export` needs to rebuild the model without loading the data.
  std::string shape = "[";
  for (size_t i = 0; i < data.input_shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(data.input_shape[i]);
  store.set_meta("model.input_shape", shape + "]");
  store.set_meta("model.outputs", std::to_string(model_outputs(data)));
  if (data.skipped > 0) store.set_meta("data.skipped_images", std::to_string(data.skipped));
  if (!data.feature_mean.empty()) {
    store.set_meta("data.feature_mean", join_list(data.feature_mean));
    store.set_meta("data.feature_std", join_list(data.feature_std));
  }
}

std::string batch_search_json(const tune::BatchSizeResult& r) {
  nlohmann::json j = {{"batch_size", r.batch_size},
                      {"reason", r.reason},
                      {"seconds", r.seconds},
                      {"budget_bytes", r.budget_bytes},
                      {"trials", nlohmann::json::array()}};
  for (const auto& t : r.trials)
    j["trials"].push_back({{"batch", t.batch},
                           {"fits", t.fits},
                           {"samples_per_s", t.samples_per_s},
                           {"peak_bytes", t.peak_bytes},
                           {"note", t.note}});
  return j.dump();
}

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= bytes[i + 2];
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? k[v & 63] : '=';
  }
  return out;
}

// The test's most confidently wrong images, as PNGs in the run store for the dashboard.
void store_mistake_images(track::RunStore& store, const data::DataSplits& data,
                          const EvalResult& test) {
  if (test.mistakes.empty() || data.input_shape.size() != 3 || data.input_shape[0] > 3) return;
  std::vector<int64_t> indices;
  for (const auto& m : test.mistakes) indices.push_back(m.index);
  auto x = data.test->get_batch(torch::tensor(indices)).x.to(torch::kCPU);
  // Undo the normalization to show the pixels the way they were read.
  auto pixels = data.pixels.raw(x).clamp(0, 1).mul(255).round().to(torch::kUInt8);
  nlohmann::json out = nlohmann::json::array();
  auto stored =
      nlohmann::json::parse(store.result("test", "mistakes").value_or("[]"), nullptr, false);
  for (size_t i = 0; i < test.mistakes.size(); ++i) {
    nlohmann::json item =
        stored.is_array() && i < stored.size() ? stored[i] : nlohmann::json::object();
    item["png"] = base64(data::encode_png(pixels[int64_t(i)].contiguous()));
    out.push_back(item);
  }
  store.put_result("test", "mistakes", out.dump());
}

std::string percent(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
  return buf;
}

// Copies what rebuilds a fine-tuned model into its run once the run exists, so that resuming,
// testing and exporting it do not need the source. A model rebuilt from the kept architecture
// has no pretrained backbone: only a checkpoint can give it back.
class KeepSource : public Callback {
 public:
  explicit KeepSource(session::FinetuneSource source) : source_(std::move(source)) {}
  std::string name() const override { return "keep_source"; }
  void on_fit_start(TrainState& state) override {
    if (source_.weights.empty() && state.resumed && state.resumed->file.empty())
      throw Error(
          "the fine-tuned run has no usable checkpoint, so its pretrained backbone "
          "is lost (the run keeps the source's architecture, not its weights); "
          "fine-tune again from " +
          source_.path.string());
    if (state.run) session::keep_source(source_, state.run->dir());
  }

 private:
  session::FinetuneSource source_;
};

// Writes a run's new settings at the first epoch it starts (the checkpoint restored by then).
class WriteConfig : public Callback {
 public:
  WriteConfig(fs::path file, std::string text) : file_(std::move(file)), text_(std::move(text)) {}
  std::string name() const override { return "write_config"; }
  void on_epoch_start(TrainState&) override {
    if (text_.empty()) return;
    track::write_text_atomically(file_, text_);
    text_.clear();
    std::printf(
        "settings changed for the rest of the run (config.toml updated); the result is "
        "no longer that of the original settings\n");
  }

 private:
  fs::path file_;
  std::string text_;
};

// The run's own settings (config.toml), and what the user changes on top of them.
Config run_config(const fs::path& dir, const std::vector<std::string>& sets = {}) {
  if (!fs::exists(dir / "config.toml"))
    throw Error("run " + dir.string() +
                " has no config.toml: it stopped before training began; start it again with "
                "trainscope train");
  Config config = default_config();
  config.merge_file(dir / "config.toml");
  for (const auto& s : sets) config.set_from_string(s, "--set");
  return config;
}

std::vector<int64_t> parse_ints(const std::string& text) {
  std::vector<int64_t> out;
  std::string item;
  for (char c : text) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      item += c;
    } else if (!item.empty()) {
      out.push_back(std::stoll(item));
      item.clear();
    }
  }
  if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

namespace session {

std::vector<std::shared_ptr<Callback>> default_callbacks(const SessionOptions& o) {
  std::vector<std::shared_ptr<Callback>> out;
  const auto& config = o.train.config();
  out.push_back(std::make_shared<callbacks::RunLogger>(o.train.log_every(), config));
  out.push_back(std::make_shared<callbacks::ProgressPrinter>(
      callbacks::progress_style_from(o.progress), config));
  // TensorBoard event files beside run.sqlite, when the Trainer keeps a run directory.
  if (!o.train.runs_dir().empty())
    out.push_back(std::make_shared<callbacks::TensorBoardLogger>(o.train.log_every(), config));
  if (o.diagnostics) {
    diagnose::DiagnosticsOptions d = o.diagnose;
    d.every = o.diagnose_every > 0 ? o.diagnose_every : o.train.log_every();
    d.print = o.progress != "off";
    d.frozen_norms_may_move = o.fine_tuning.train_bn;
    d.restores_best = o.early_stopping && o.stopping.restore_best;
    d.augmentation = o.train.augment() != nullptr;
    d.world_size = o.train.world_size();
    out.push_back(std::make_shared<diagnose::Diagnostics>(d));
  }
  if (auto schedule = callbacks::make_lr_schedule(o.schedule)) out.push_back(std::move(schedule));
  if (o.train.augment() && o.augment_from != 1)
    out.push_back(std::make_shared<callbacks::DelayedAugmentation>(
        callbacks::DelayedAugmentationOptions{.start_epoch = o.augment_from},
        o.progress != "off" ? stdout : nullptr));
  if (o.ema > 0)
    out.push_back(std::make_shared<callbacks::WeightAveraging>(
        callbacks::WeightAveragingOptions{.decay = o.ema}));
  // A sweep's trials share the rungs file beside the sweep's plan; one process per trial.
  if (o.prune.method == "halving" && !o.sweep.empty() && o.train.world_size() <= 1)
    out.push_back(std::make_shared<callbacks::SuccessiveHalving>(
        callbacks::SuccessiveHalvingOptions{
            .rungs_file = track::sweep_dir(o.train.runs_dir(), o.sweep) / "rungs.tsv",
            .trial = o.train.run_name(),
            .min_epochs = o.prune.min_epochs,
            .factor = o.prune.factor},
        o.progress != "off" ? stdout : nullptr));
  if (o.early_stopping) out.push_back(std::make_shared<callbacks::EarlyStopping>(o.stopping));
  if (o.checkpoints) out.push_back(std::make_shared<callbacks::ModelCheckpoint>(o.checkpoint));
  return out;
}

std::unique_ptr<Trainer> make_trainer(const SessionOptions& options) {
  auto trainer = std::make_unique<Trainer>(options.train);
  for (auto& cb : default_callbacks(options)) trainer->add_callback(std::move(cb));
  return trainer;
}

fs::path find_run(const std::string& name, const std::string& runs_dir) {
  fs::path direct(name);
  if (fs::exists(direct / "run.sqlite")) return direct;
  fs::path under = fs::path(runs_dir) / name;
  if (fs::exists(under / "run.sqlite")) return under;
  throw Error("no run named '" + name + "': neither " + direct.string() + " nor " + under.string() +
              " holds a run.sqlite; `ls " + runs_dir + "` lists the runs");
}

torch::Device training_device(const Config& config) {
  const std::string& d = config.get_string("runtime.device");
  if (d == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::kCPU;
  torch::Device device(d);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError(config.setting("runtime.device").source + ": runtime.device = \"" + d +
                      "\": this machine has no CUDA device (or this LibTorch has no CUDA); "
                      "use cpu or auto");
  return device;
}

}  // namespace session

int SessionResult::exit_code() const {
  switch (status) {
    case Status::kFinished:
      return 0;
    case Status::kInterrupted:
      return 130;
    case Status::kCheckpointFailed:
      return 1;
  }
  return 1;
}

// This process's part in a data-parallel job (WORLD_SIZE > 1 in the environment), if any.
struct Session::Job {
  dist::JobEnv env;
  std::shared_ptr<dist::DataParallel> dp;
  bool leader() const { return env.rank == 0; }
};

Session::Session(Config config) : config_(std::move(config)), job_(std::make_unique<Job>()) {
  config_.resolve();
  options_ = session_options(config_);
  session::training_device(config_);  // a missing GPU is named before anything loads
  // A loss and metrics that do not fit the task are named before anything loads, too.
  const TrainerOptions& t = options_.train;
  (void)make_loss(t.task(), {t.loss(), t.class_weights(), t.label_smoothing(), t.huber_delta()});
  for (const auto& name : options_.metrics) (void)make_metric(name, t.task());
}

Session Session::of_run(const fs::path& run_dir, const std::vector<std::string>& sets) {
  Config config = run_config(run_dir, sets);
  // The dashboard serves, and a resumed run stays in, the directory that holds this run.
  config.set("run.dir",
             run_dir.parent_path().empty() ? std::string(".") : run_dir.parent_path().string(),
             "the run's directory");
  Session s(std::move(config));
  s.run_dir_ = run_dir;
  s.sets_ = sets;
  return s;
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

Session& Session::data(data::DataSplits splits) {
  data_ = std::move(splits);
  own_data_ = true;
  return *this;
}

Session& Session::model(Model model) {
  model_ = std::move(model);
  own_model_ = true;
  return *this;
}

Session& Session::loss(LossFunction loss) {
  own_loss_ = std::move(loss);
  return *this;
}

Session& Session::add_metric(std::shared_ptr<const Metric> metric) {
  own_metrics_.push_back(std::move(metric));
  return *this;
}

Session& Session::step(StepFunction step) {
  own_step_ = std::move(step);
  return *this;
}

Session& Session::add_callback(std::shared_ptr<Callback> callback) {
  extra_callbacks_.push_back(std::move(callback));
  return *this;
}

Session& Session::name_settings(diagnose::SettingNamer namer) {
  namer_ = std::move(namer);
  return *this;
}

bool Session::print() const { return options_.progress != "off"; }

void Session::set(const std::string& key, ConfigValue value, const std::string& source,
                  const std::string& reason) {
  config_.set(key, std::move(value), source, reason);
  options_ = session_options(config_);
}

bool Session::leader() const { return !job_->env.distributed() || job_->leader(); }

void Session::join() {
  if (joined_) return;
  joined_ = true;
  Job& job = *job_;
  job.env = dist::JobEnv::from_environment();
  if (job.env.distributed()) {
    if (options_.diagnose.auto_remedy)
      throw ConfigError(diagnose::name_settings(
          diagnose::setting_ref("diagnose.auto_remedy", "true") +
              " is not available in data-parallel runs: each rank would apply its remedies on "
              "its own",
          namer_));
    // One GPU per rank of this machine: LOCAL_RANK picks it.
    torch::Device device = session::training_device(config_);
    if (device.is_cuda() && !device.has_index()) {
      device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(job.env.local_rank));
      set("runtime.device", device.str(), "data parallel", "the GPU of LOCAL_RANK");
    }
    dist::ProcessGroupOptions o;
    o.backend = options_.dist_backend;
    o.device = device;
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(1000 * options_.dist_timeout));
    auto group = std::make_shared<dist::ProcessGroup>(job.env, o);
    dist::DataParallelOptions d;
    d.bucket_bytes = static_cast<int64_t>(options_.dist_bucket_mb * (1 << 20));
    job.dp = std::make_shared<dist::DataParallel>(group, d);
    // The ranks on this machine share its cores (torchrun sets OMP_NUM_THREADS=1 for the same
    // reason): more threads than cores in all would make them wait on each other.
    if (config_.setting("runtime.threads").source == "default") {
      const char* local = std::getenv("LOCAL_WORLD_SIZE");
      const int64_t here = local ? std::max(1, std::atoi(local)) : job.env.world_size;
      set("runtime.threads", std::max<int64_t>(1, available_cores() / here), "data parallel",
          "the cores shared among the " + std::to_string(here) + " ranks on this machine");
    }
    if (!job.leader()) {
      set("ui.progress", std::string("off"), "data parallel", "rank 0 reports");
      set("ui.dashboard", false, "data parallel", "rank 0 serves it");
    }
  }
  configure_runtime(config_, print());
}

TrainerOptions Session::trainer_options() const {
  TrainerOptions t = options_.train;
  t.batch_size(options_.batch_size.value_or(t.batch_size()));
  t.class_names(data_.class_names);
  t.augment(augment_);
  if (auto weights = parse_class_weights(options_.class_weights)) t.class_weights(*weights);
  std::vector<std::shared_ptr<const Metric>> metrics;
  for (const auto& name : options_.metrics) metrics.push_back(make_metric(name, t.task()));
  metrics.insert(metrics.end(), own_metrics_.begin(), own_metrics_.end());
  t.metrics(metrics);
  if (own_loss_) t.loss_function(own_loss_);
  if (own_step_) t.step(own_step_);
  if (!head_.empty()) {
    t.head(head_);
    if (options_.head_lr != "auto") t.lr(std::stod(options_.head_lr));
  }
  const bool cuda = t.device().kind != DeviceChoice::Kind::kCpu && torch::cuda::is_available();
  t.channels_last(options_.channels_last == "on" ||
                  (options_.channels_last == "auto" && (cuda || at::hasMKLDNN())));
  return t;
}

StepFunction Session::own_step() const {
  if (own_step_) return own_step_;
  if (!own_loss_) return nullptr;
  return [loss = own_loss_](const Model& model, const data::Batch& b) {
    auto out = model.forward(b.x, b.inputs);
    return StepResult{loss(out, b.y), out};
  };
}

// Data, model and augmentation. Fine-tuning (finetune.from) takes the source's normalization into
// the config first, then builds the source's backbone under a new head. A resumed, tested or
// exported fine-tuned run rebuilds it from what the run kept of its source.
void Session::load() {
  if (options_.finetune_from.empty()) {
    if (!own_data_) data_ = load_and_report(options_.data);
    if (!own_model_) model_ = build_model(data_.input_shape, model_outputs(data_));
  } else {
    source_ = std::make_unique<session::FinetuneSource>(
        run_dir_.empty() ? session::resolve_source(config_)
                         : session::run_source(config_, run_dir_));
    std::string normalization = session::adopt_normalization(config_, *source_);
    options_ = session_options(config_);
    if (!own_data_) data_ = load_and_report(options_.data);
    if (!own_model_) {
      auto [model, summary] =
          session::finetune_model(config_, *source_, data_.input_shape, model_outputs(data_));
      model_ = model;
      head_ = models::find_head(model_, options_.finetune_head).name;
      if (!own_data_ && !source_->normalization &&
          source_->kind == session::FinetuneSource::Kind::kTorchScript &&
          config_.setting("data.std").source == "default")
        normalization = probe_normalization();
      if (print() && leader()) std::printf("%s\n%s\n", summary.c_str(), normalization.c_str());
    }
  }
  check_task_fits_data();
  augment_ = make_augment(config_, data_, options_.train.task());
  if (augment_ && options_.augment_from == 0 && !(data_.val && data_.val->size() > 0))
    set("data.augment_from", std::string("1"), "no validation split",
        "without validation losses nothing tells when overfitting begins: augmented from the "
        "start");
  if (options_.class_weights == "balanced" && data_.num_classes > 0) balance_classes();
}

// The targets train.task needs, against what the data gives: a clear error before anything
// trains (the loss would otherwise fail on the first batch with torch's shape message).
void Session::check_task_fits_data() const {
  const Task task = options_.train.task();
  const std::string setting = "train.task = " + std::string(name_of(task, kTaskNames)) + " (" +
                              config_.setting("train.task").source + ")";
  if (task == Task::kRegression && data_.num_classes > 0)
    throw ConfigError(setting + " needs numeric targets, but " + data_.source +
                      " gives class labels (" + std::to_string(data_.num_classes) +
                      " classes); use train.task = classification, or a CSV source with a "
                      "numeric target column (csv:FILE,target=COLUMN)");
  if (!data_.train || data_.train->size() == 0 || task == Task::kRegression) return;
  if (own_data_) {
    // Data brought in code: one example's targets tell.
    const auto y = data_.train->get_batch(torch::arange(1)).y;
    const bool fits = task == Task::kMultilabel     ? y.dim() == 2 && y.is_floating_point()
                      : task == Task::kSegmentation ? y.dim() >= 3 && !y.is_floating_point()
                      : task == Task::kSequence     ? y.dim() == 2 && !y.is_floating_point()
                                                    : y.dim() == 1 || y.dim() == 2;
    if (!fits)
      throw ShapeError(setting + " needs targets of shape " +
                       (task == Task::kMultilabel     ? "[N, labels] of 0/1 floats"
                        : task == Task::kSegmentation ? "[N, H, W] of class indices (int64)"
                        : task == Task::kSequence     ? "[N, time] of class indices (int64)"
                                                      : "[N] of class indices (int64)") +
                       ", but the data's training targets have shape " + c10::str(y.sizes()) +
                       " of " + std::string(c10::toString(y.scalar_type())));
    return;
  }
  if (per_position(task))
    throw ConfigError(setting + " needs a class for every " +
                      (task == Task::kSequence ? "step" : "pixel") + ", and " + data_.source +
                      " gives one per example; no data.dataset source reads per-position targets "
                      "yet: bring the data in code (Session::data with targets of shape " +
                      (task == Task::kSequence ? "[N, time]" : "[N, H, W]") +
                      ", examples/segmentation)");
  if (task == Task::kMultilabel && data_.feature_names.empty())
    throw ConfigError(setting + " needs 0/1 targets, one per label, and " + data_.source +
                      " gives one class per example; use a CSV source with one 0/1 column per "
                      "label (csv:FILE,target=A,target=B)");
}

// train.class_weights = "balanced": the weights from the training split's labels, into the config
// (and so config.toml: a resumed run reads them back rather than counting again).
void Session::balance_classes() {
  std::vector<torch::Tensor> labels;
  const int64_t n = data_.train->size();
  for (int64_t at = 0; at < n; at += 4096)
    labels.push_back(data_.train->get_batch(torch::arange(at, std::min(n, at + 4096))).y);
  const auto all = torch::cat(labels);
  std::vector<double> weights;
  std::string how = "n / (classes x count)";
  if (options_.train.task() == Task::kMultilabel) {
    // Each label's positives weighed as its negatives, as torch's pos_weight advice has it.
    const auto positives = all.sum(0).to(torch::kFloat64);
    const auto w = torch::where(positives > 0, (all.size(0) - positives) / positives.clamp_min(1),
                                torch::ones_like(positives));
    weights.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
    how = "negatives / positives of each label";
  } else {
    weights = balanced_class_weights(all, data_.num_classes);
  }
  std::string text;
  for (double w : weights) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6g", text.empty() ? "" : ",", w);
    text += buf;
  }
  set("train.class_weights", text, "class balance",
      "balanced: " + how + " over the " + std::to_string(n) + " training examples");
}

std::string Session::probe_normalization() {
  std::vector<tune::Normalization> candidates = {{"raw [0, 1] inputs", data::PixelStats{}}};
  candidates.push_back({"the new data's statistics (" + data_.pixels.str() + ")", data_.pixels});
  // torchvision's pretrained weights, and most models trained on ImageNet, expect these.
  if (!data_.input_shape.empty() && data_.input_shape[0] == 3)
    candidates.push_back(
        {"the ImageNet statistics (mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225])",
         data::PixelStats{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}}});
  const models::LinearLayer head = models::find_head(model_, head_);
  const torch::Device device = session::training_device(config_);
  model_.to(device);  // the probe runs the model on the training device
  const tune::NormalizationChoice c =
      tune::probe_normalization(model_, head, *data_.train, data_.val.get(), data_.pixels,
                                candidates, options_.train.task(), model_outputs(data_), device);
  const tune::Normalization& chosen = c.candidates[c.chosen];
  const std::string reason = chosen.name + ": " + c.reason;
  set("data.mean", chosen.stats.mean, "normalization probe", reason);
  set("data.std", chosen.stats.std, "normalization probe", reason);
  if (chosen.stats != data_.pixels) data_ = load_and_report(options_.data);
  char buf[64];
  std::snprintf(buf, sizeof buf, " (%.1f s)", c.seconds);
  return "normalization: " + reason + buf +
         "; the source does not say how its inputs were normalized (data.mean and data.std "
         "override)";
}

void Session::choose_head_lr() {
  if (head_.empty() || options_.head_lr != "auto" || !options_.train.cache_features()) return;
  // An lr the user chose is the head's too.
  if (const std::string& from = config_.setting("train.lr").source;
      from != "default" && from != "lr scaling")
    return;
  const TrainerOptions t = trainer_options();
  if (t.precision() != Precision::kFp32) return;
  const models::LinearLayer head = models::find_head(model_, head_);
  const torch::Device device = session::training_device(config_);
  model_.to(device);
  const auto sample =
      data_.train->get_batch(torch::arange(std::min<int64_t>(64, data_.train->size())));
  if (!check_head_outputs(model_, head, sample.x.to(device)).empty())
    return;  // no head phase on cached features: the fit says why
  const auto start = std::chrono::steady_clock::now();
  // The range test's 100 steps see at most 100 batches: the features of those examples serve.
  const int64_t examples = std::min<int64_t>(data_.train->size(), 100 * t.batch_size());
  const data::Subset part(data_.train, torch::arange(examples));
  const HeadFeatures features = head_features(model_, head, part, t.eval_batch_size(), device);
  const tune::LrSuggestion lr =
      tune::head_lr(features, t.task(), model_outputs(data_), t.batch_size(), options_.train.lr());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char value[32];
  std::snprintf(value, sizeof value, "%.3g", lr.lr);
  set("finetune.head_lr", std::string(value), "lr range test",
      "on the cached features of " + std::to_string(examples) + " training examples: " + lr.reason);
  if (print() && leader())
    std::printf("head lr %s: %s (range test on cached features, %.1f s)\n", value,
                lr.reason.c_str(), seconds);
}

// Resolves train.batch_size = "auto" with real training steps, and the lr with it; both land in
// the config (and so in config.toml) with the reason.
std::optional<tune::BatchSizeResult> Session::choose_batch_size() {
  if (options_.batch_size) return std::nullopt;
  const tune::BatchSizeOptions& o = options_.tune;
  const torch::Device device = session::training_device(config_);
  // On CUDA a trial that does not fit raises out-of-memory, caught by the probe: no budget.
  const double budget = device.is_cuda() ? 0.0 : tune::cpu_memory_budget(o.memory_share);
  tune::TrainingProbe probe(model_, *data_.train, options_.train.task(), device, o.steps, budget,
                            own_step());
  // On CPU a rule, so that one command gives one run; on an accelerator, where memory binds, the
  // largest batch that fits.
  auto r = device.is_cpu() ? tune::choose_cpu_batch(probe, o, budget, data_.train->size())
                           : tune::find_batch_size(probe, o, budget, data_.train->size());
  set("train.batch_size", std::to_string(r.batch_size),
      device.is_cpu() ? "CPU batch rule" : "batch-size search", r.reason);
  const double lr = options_.train.lr();
  const std::string rule = options_.lr_scaling;
  const double scaled = tune::scale_lr(lr, 128, r.batch_size, rule);
  if (scaled != lr) {
    char reason[128];
    std::snprintf(reason, sizeof reason, "%g scaled by the %s rule from batch 128 to %lld", lr,
                  rule.c_str(), static_cast<long long>(r.batch_size));
    set("train.lr", scaled, "lr scaling", reason);
  }
  if (print()) {
    std::string trials;
    for (const auto& t : r.trials) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "%s%lld %s (%.0f MiB, %.0f samples/s)",
                    trials.empty() ? "" : ", ", static_cast<long long>(t.batch),
                    t.fits ? "fits" : "does not fit", t.peak_bytes / 1048576.0, t.samples_per_s);
      trials += buf;
    }
    std::printf("batch size %lld: %s\n  %s in %.1f s: %s\n", static_cast<long long>(r.batch_size),
                r.reason.c_str(), device.is_cpu() ? "memory check" : "search", r.seconds,
                trials.c_str());
    if (scaled == lr && r.batch_size != 128)
      std::printf("lr %g kept for batch %lld (train.lr_scaling = \"%s\")\n", lr,
                  static_cast<long long>(r.batch_size), rule.c_str());
  }
  return r;
}

// The Trainer of a fit: the fine-tuning callback when it is one, the data-parallel sync in a job
// (train.batch_size is the job's global batch, shared out among the ranks).
std::unique_ptr<Trainer> Session::make_trainer() {
  TrainerOptions options = trainer_options();
  const Job& job = *job_;
  if (job.dp) {
    const int64_t global = options.batch_size(), ranks = job.env.world_size;
    if (global % ranks != 0)
      throw ConfigError("train.batch_size = " + std::to_string(global) + " does not divide among " +
                        std::to_string(ranks) + " ranks; use a multiple of " +
                        std::to_string(ranks));
    options.batch_size(global / ranks).gradient_sync(job.dp).rank(job.env.rank).world_size(ranks);
    if (!job.leader()) options.runs_dir("");
    if (job.leader() && print())
      std::printf("data parallel: %lld ranks over %s, global batch %lld = %lld x %lld\n",
                  static_cast<long long>(ranks), job.dp->group().backend().c_str(),
                  static_cast<long long>(global), static_cast<long long>(ranks),
                  static_cast<long long>(global / ranks));
  }
  auto trainer = std::make_unique<Trainer>(options);
  SessionOptions callbacks = options_;
  callbacks.train = options;
  callbacks.diagnose.name_setting = namer_;
  for (auto& cb : session::default_callbacks(callbacks)) trainer->add_callback(std::move(cb));
  if (job.dp) trainer->add_callback(job.dp);
  if (!options_.finetune_from.empty()) {
    callbacks::FineTuningOptions ft = options_.fine_tuning;
    // The head phase may run at its own lr; once the backbone trains the head is back at
    // train.lr and the backbone below it.
    if (options.lr() != options_.train.lr()) ft.lr = options_.train.lr();
    // A per-step schedule sets every group's lr itself.
    const bool per_step = options_.schedule.kind == callbacks::ScheduleKind::kCosine ||
                          options_.schedule.kind == callbacks::ScheduleKind::kOneCycle;
    if (ft.warmup_steps == 0 && !per_step) {
      const int64_t examples = data_.train->size() / options.world_size();
      ft.warmup_steps = (examples + options.batch_size() - 1) / options.batch_size();
    }
    if (per_step) ft.warmup_steps = 0;
    if (options_.schedule.kind != callbacks::ScheduleKind::kNone) ft.anneal = false;
    trainer->add_callback(std::make_shared<callbacks::FineTuning>(ft));
  }
  if (source_) trainer->add_callback(std::make_shared<KeepSource>(*source_));
  for (const auto& cb : extra_callbacks_) trainer->add_callback(cb);
  return trainer;
}

SessionResult Session::train(bool run_test) {
  join();
  load();
  const Job& job = *job_;
  std::optional<tune::BatchSizeResult> batch_search;
  if (!job.dp) {
    batch_search = choose_batch_size();
  } else if (!options_.batch_size) {
    // Rank 0 searches a rank's batch; every rank takes its answer.
    if (job.leader()) batch_search = choose_batch_size();
    const int64_t mine = job.leader() ? *options_.batch_size : 0;
    std::vector<torch::Tensor> chosen = {torch::full({1}, mine, torch::kInt64)};
    job.dp->group().broadcast(chosen, 0);
    set("train.batch_size", std::to_string(chosen[0].item<int64_t>() * job.env.world_size),
        session::training_device(config_).is_cpu() ? "CPU batch rule" : "batch-size search",
        "rank 0's search, times the " + std::to_string(job.env.world_size) + " ranks");
  }
  choose_head_lr();
  auto trainer = make_trainer();
  if (job.leader() && options_.diagnostics && options_.preflight) {
    auto findings = check(print());
    for (const auto& cb : trainer->callbacks())
      if (auto diagnostics = std::dynamic_pointer_cast<diagnose::Diagnostics>(cb))
        diagnostics->add_preflight(findings);
  }
  FitResult fit = trainer->fit(model_, data_.train, data_.val);
  return finish(*trainer, fit, batch_search, run_test);
}

SessionResult Session::resume(bool run_test) {
  TORCH_CHECK(!run_dir_.empty(), "Session::resume needs a session made by Session::of_run");
  join();
  load();
  auto trainer = make_trainer();
  bool changed_training = false;
  for (const auto& s : sets_)
    changed_training |= s.rfind("ui.", 0) != 0 && s.rfind("runtime.", 0) != 0;
  if (leader() && changed_training) {
    Config saved = config_;
    saved.set("run.dir", run_config(run_dir_).get_string("run.dir"), "trainscope resume");
    // Written once the checkpoint is restored: a resume that fails leaves the run's settings.
    trainer->add_callback(std::make_shared<WriteConfig>(run_dir_ / "config.toml", saved.to_toml()));
  }
  // The other ranks of a job restore from the same checkpoint; rank 0 alone writes the run.
  FitResult fit =
      trainer->resume(model_, data_.train, data_.val, run_dir_,
                      leader() ? Trainer::ResumeMode::kWrite : Trainer::ResumeMode::kReadOnly);
  return finish(*trainer, fit, std::nullopt, run_test);
}

// After a fit (new or resumed): records the data, says why it ended, tests.
SessionResult Session::finish(Trainer& trainer, const FitResult& fit,
                              const std::optional<tune::BatchSizeResult>& batch_search,
                              bool run_test) {
  SessionResult r;
  r.fit = fit;
  r.leader = leader();
  if (fit.interrupted) r.status = SessionResult::Status::kInterrupted;
  if (!r.leader) return r;
  const Job& job = *job_;
  if (auto run = trainer.run()) {
    record_data(run->store(), data_, augment_);
    if (batch_search)
      run->store().put_result("tune", "batch_size", batch_search_json(*batch_search));
    if (!fit.feature_cache.empty())
      run->store().set_meta("finetune.feature_cache", fit.feature_cache);
  }
  // What to type to continue: a data-parallel job resumes at its world size (under another
  // launcher, with as many ranks as now).
  std::string name = fit.run_dir.filename().string();
  if (const char* nproc = std::getenv("TRAINSCOPE_NPROC"); job.dp && nproc)
    name += std::string(" --nproc ") + nproc;
  else if (job.dp)
    name += " (with " + std::to_string(job.env.world_size) + " ranks)";
  std::shared_ptr<callbacks::ModelCheckpoint> checkpoint;
  for (const auto& cb : trainer.callbacks())
    if (auto c = std::dynamic_pointer_cast<callbacks::ModelCheckpoint>(cb)) checkpoint = c;
  const bool saving = checkpoint && trainer.run() && checkpoint->error().empty();
  if (fit.interrupted) {
    r.message =
        saving ? "interrupted; the state after the last batch is saved: trainscope resume " + name
               : "interrupted; no checkpoint was saved (checkpoints are off or failing)";
    return r;
  }
  if (fit.stop_reason == StopReason::kCheckpointFailed) {
    r.status = SessionResult::Status::kCheckpointFailed;
    r.message =
        "trainscope: the fit stopped because a checkpoint could not be saved; once that is "
        "fixed: trainscope resume " +
        name;
    return r;
  }
  // A save that failed at the very end (the fit had nothing left to stop) still means the run's
  // newest state is not on disk.
  if (checkpoint && !checkpoint->error().empty() &&
      options_.checkpoint.on_error == callbacks::OnSaveError::kStop) {
    r.status = SessionResult::Status::kCheckpointFailed;
    r.message =
        "trainscope: the fit ended but its last checkpoint could not be saved; the newest saved "
        "state is older (trainscope resume " +
        name + " continues from it)";
    return r;
  }
  if (run_test) {
    r.test = trainer.test(model_, *data_.test);
    if (auto run = trainer.run()) store_mistake_images(run->store(), data_, *r.test);
    auto acc = r.test->metrics.find("accuracy");
    r.message = std::string("test ") + (acc != r.test->metrics.end() ? "accuracy" : "loss") + ": " +
                (acc != r.test->metrics.end() ? percent(acc->second)
                                              : std::to_string(r.test->metrics["loss"])) +
                " (best epoch " + std::to_string(fit.best_epoch) + " of " +
                std::to_string(fit.epochs) + ")";
  }
  if (!fit.run_dir.empty())
    r.message +=
        (r.message.empty() ? "" : "\n") + std::string("run written to ") + fit.run_dir.string();
  return r;
}

EvalResult Session::test(const std::string& weights) {
  TORCH_CHECK(!run_dir_.empty(), "Session::test needs a session made by Session::of_run");
  configure_runtime(config_, false);
  joined_ = true;
  load();
  const fs::path file = run_dir_ / "checkpoints" / (weights + ".ckpt");
  callbacks::load_weights(model_.module(), file);
  SessionOptions o = options_;
  o.train = trainer_options();
  o.train.runs_dir("");
  o.checkpoints = o.early_stopping = false;
  o.diagnose.name_setting = namer_;
  Trainer trainer(o.train);
  for (auto& cb : session::default_callbacks(o)) trainer.add_callback(std::move(cb));
  trainer.attach_run(track::Run::open(run_dir_));
  EvalResult test = trainer.test(model_, *data_.test);
  store_mistake_images(trainer.run()->store(), data_, test);
  return test;
}

Model Session::build_model(const std::vector<int64_t>& input_shape, int64_t outputs) {
  const auto file = session::torchscript_model_file(config_, run_dir_);
  if (!file) return session::zoo_model(config_, input_shape, outputs);
  Model model = models::load_torchscript(*file);
  // The run keeps a copy of the file (source/model.pt) to resume, test and export from.
  session::FinetuneSource source;
  source.kind = session::FinetuneSource::Kind::kTorchScript;
  source.path = config_.get_string("model.name").substr(12);
  source.weights = *file;
  source.kept = !run_dir_.empty() && *file == run_dir_ / "source" / "model.pt";
  source_ = std::make_unique<session::FinetuneSource>(source);
  // One forward of two blank examples says whether the module fits the data.
  std::vector<int64_t> shape = {2};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  torch::Tensor out;
  try {
    torch::NoGradGuard no_grad;
    model.eval();
    out = model.forward(torch::zeros(shape));
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw ShapeError("the TorchScript model " + file->string() + " does not take inputs of shape " +
                     c10::str(c10::IntArrayRef(shape)) +
                     " (the data's, batch first): " + what.substr(0, what.find('\n')));
  }
  const bool fits = options_.train.task() == Task::kClassification
                        ? out.dim() == 2 && out.size(1) == outputs
                        : out.numel() == 2 * outputs;
  if (!fits)
    throw ShapeError(
        "the TorchScript model " + file->string() + " returns outputs of shape " +
        c10::str(out.sizes()) + " for 2 examples; the data needs " + std::to_string(outputs) +
        " outputs per example (" +
        (options_.train.task() == Task::kClassification ? "its classes" : "its targets") +
        "): size its last layer to match, or fine-tune it (trainscope finetune --from)");
  if (print() && leader() && run_dir_.empty())
    std::printf("model: TorchScript %s (%lld parameters, all trainable, from the file's weights)\n",
                file->c_str(), static_cast<long long>(model.num_parameters()));
  return model;
}

ExportResult Session::export_weights(const std::string& weights, const fs::path& out,
                                     ExportFormat format) {
  TORCH_CHECK(!run_dir_.empty(), "Session::export_weights needs a session made by Session::of_run");
  configure_runtime(config_, false);
  joined_ = true;
  // The model's shape is in the run store; runs without it are rebuilt from their data.
  auto run = track::Run::open(run_dir_);
  auto shape = run->store().meta("model.input_shape");
  auto outputs = run->store().meta("model.outputs");
  if (!own_model_) {
    if (shape && outputs) {
      const std::vector<int64_t> input_shape = parse_ints(*shape);
      const int64_t n = std::stoll(*outputs);
      if (options_.finetune_from.empty()) {
        model_ = build_model(input_shape, n);
      } else {
        source_ = std::make_unique<session::FinetuneSource>(session::run_source(config_, run_dir_));
        model_ = session::finetune_model(config_, *source_, input_shape, n).first;
      }
    } else {
      load();
    }
  }
  const fs::path checkpoint = run_dir_ / "checkpoints" / (weights + ".ckpt");
  if (!fs::exists(checkpoint))
    throw CheckpointError("run " + run_dir_.string() + " has no " + checkpoint.filename().string() +
                          " (" + (run_dir_ / "checkpoints").string() +
                          " holds the run's checkpoints; --weights takes best or last)");
  callbacks::load_weights(model_.module(), checkpoint);
  const track::CheckpointInfo info = track::read_checkpoint_info(checkpoint);
  ExportResult r;
  if (format == ExportFormat::kTorchScript) {
    r.file = out.empty() ? run_dir_ / (weights + ".torchscript.pt") : out;
    models::save_torchscript(model_, r.file);
    r.tensors = static_cast<int64_t>(model_.module().parameters().size() +
                                     model_.module().buffers().size());
  } else {
    r.file = out.empty() ? run_dir_ / (weights + ".pt") : out;
    r.tensors = models::export_state_dict(model_, r.file);
  }
  r.parameters = model_.num_parameters();
  r.model_name = model_.name();
  r.from = checkpoint.filename().string() + " (epoch " + std::to_string(info.epoch);
  if (!info.monitor.empty() && std::isfinite(info.value))
    r.from += ", " + info.monitor + " " + std::to_string(info.value);
  r.from += ")";
  return r;
}

std::vector<diagnose::Finding> Session::check(bool print_findings) {
  if (!model_.defined()) {
    configure_runtime(config_, false);
    joined_ = true;
    load();
  }
  diagnose::PreflightOptions o;
  o.task = options_.train.task();
  o.num_classes = data_.num_classes;
  o.lr = options_.train.lr();
  o.device = session::training_device(config_);
  o.step = own_step();
  const auto start = std::chrono::steady_clock::now();
  auto findings = diagnose::preflight(model_, *data_.train, o);
  if (print_findings) {
    std::printf("pre-flight checks (%.1f s): %s\n", seconds_since(start),
                findings.empty()
                    ? "initial loss, one-batch overfit, gradients, input scale, labels: all pass"
                    : (std::to_string(findings.size()) + " failed").c_str());
    for (const auto& f : findings) std::printf("%s\n", f.to_text(namer_).c_str());
  }
  return findings;
}

namespace {

// The examples at `indices` of `split` as base64 PNGs, the way they were read.
std::vector<std::string> png_images(const data::DataSplits& data, const std::string& split,
                                    const std::vector<int64_t>& indices) {
  const auto& ds = split == "train" ? data.train : split == "val" ? data.val : data.test;
  if (indices.empty() || !ds || data.input_shape.size() != 3 || data.input_shape[0] > 3) return {};
  auto x = ds->get_batch(torch::tensor(indices)).x.to(torch::kCPU, torch::kFloat32);
  auto pixels =
      data.pixels.raw(x).nan_to_num(0, 1, 0).clamp(0, 1).mul(255).round().to(torch::kUInt8);
  std::vector<std::string> out;
  for (size_t i = 0; i < indices.size(); ++i)
    out.push_back(base64(data::encode_png(pixels[int64_t(i)].contiguous())));
  return out;
}

// What the dashboard shows of a data check: the summary, the findings' counts, the most suspect
// labels and the first copies across splits, each with its images.
nlohmann::json data_check_gallery(const diagnose::DataReport& report,
                                  const data::DataSplits& data) {
  constexpr size_t kSuspects = 48, kPairs = 24;
  auto full = nlohmann::json::parse(diagnose::to_json(report));
  nlohmann::json out = full;
  out.erase("broken");
  auto& suspects = out["label_suspects"];
  // The most suspect of each split first, in the order the report lists them.
  nlohmann::json shown = nlohmann::json::array();
  for (const std::string split : {"train", "val", "test"}) {
    std::vector<int64_t> idx;
    std::vector<size_t> at;
    for (size_t i = 0; i < suspects.size() && idx.size() < kSuspects; ++i)
      if (suspects[i]["split"] == split) {
        idx.push_back(suspects[i]["index"].get<int64_t>());
        at.push_back(i);
      }
    auto images = png_images(data, split, idx);
    for (size_t k = 0; k < at.size(); ++k) {
      auto item = suspects[at[k]];
      if (k < images.size()) item["png"] = images[k];
      shown.push_back(item);
    }
  }
  out["label_suspects"] = shown;
  auto& pairs = out["duplicates"];
  nlohmann::json first = nlohmann::json::array();
  for (size_t i = 0; i < pairs.size() && i < kPairs; ++i) {
    auto item = pairs[i];
    auto a = png_images(data, item["split_a"], {item["a"].get<int64_t>()});
    auto b = png_images(data, item["split_b"], {item["b"].get<int64_t>()});
    if (!a.empty() && !b.empty()) {
      item["png_a"] = a[0];
      item["png_b"] = b[0];
    }
    first.push_back(item);
  }
  out["duplicates"] = first;
  return out;
}

}  // namespace

DataCheckResult Session::check_data(const fs::path& json) {
  return check_data(json, options_.data_check);
}

DataCheckResult Session::check_data(const fs::path& json, diagnose::DataCheckOptions o) {
  configure_runtime(config_, false);
  joined_ = true;
  if (!own_data_) data_ = load_and_report(options_.data);
  o.progress = o.progress || print();
  DataCheckResult r;
  const double started = track::wall_time_now();
  r.report = diagnose::check_data(data_, o);

  const std::string name = options_.train.run_name().empty() ? track::timestamped_name("data-check")
                                                             : options_.train.run_name();
  auto run = track::Run::create(options_.train.runs_dir(), name);
  auto& store = run->store();
  store.set_meta("name", run->name());
  store.set_meta("kind", "data_check");
  store.set_meta("data.source", data_.source);
  store.set_meta("started_at", std::to_string(started));
  store.put_result("data_check", "report", data_check_gallery(r.report, data_).dump());
  const double now = track::wall_time_now();
  for (const auto& f : r.report.findings)
    store.add_finding({f.kind, diagnose::to_string(f.severity), 0, 0, f.message, f.evidence_json(),
                       f.remedy, now});
  r.run_dir = run->dir();
  r.json = json.empty() ? run->dir() / "data_check.json" : json;
  track::write_text_atomically(r.json, diagnose::to_json(r.report));
  store.set_meta("ended_at", std::to_string(track::wall_time_now()));
  store.set_meta("status", "finished");
  store.flush();
  r.summary = diagnose::to_text(r.report, namer_) + "report: " + r.json.string() +
              " (every pair and suspect); the dashboard shows them: trainscope dashboard " +
              options_.train.runs_dir();
  return r;
}

LrFindResult Session::find_lr(const fs::path& png) {
  configure_runtime(config_, false);
  joined_ = true;
  load();
  tune::LrFinderOptions o;
  o.batch_size = options_.batch_size.value_or(128);
  o.task = options_.train.task();
  o.fallback_lr = 1e-3;
  const auto start = std::chrono::steady_clock::now();
  auto curve = tune::lr_range_test(model_, *data_.train, o);
  auto suggestion = tune::suggest_lr(curve, o.fallback_lr);
  const double seconds = seconds_since(start);

  const std::string name = options_.train.run_name().empty() ? track::timestamped_name("lr-find")
                                                             : options_.train.run_name();
  auto run = track::Run::create(options_.train.runs_dir(), name);
  auto& store = run->store();
  store.set_meta("name", run->name());
  store.set_meta("kind", "lr_find");
  store.set_meta("status", "finished");
  const double now = track::wall_time_now();
  for (size_t i = 0; i < curve.lrs.size(); ++i) {
    store.add_metric({int64_t(i), 0, "tune", "lr_find/lr", curve.lrs[i], now});
    store.add_metric({int64_t(i), 0, "tune", "lr_find/loss", curve.losses[i], now});
    store.add_metric({int64_t(i), 0, "tune", "lr_find/smoothed_loss", curve.smoothed[i], now});
  }
  nlohmann::json result = {
      {"lr", suggestion.lr}, {"confident", suggestion.confident}, {"reason", suggestion.reason}};
  store.put_result("tune", "lr_suggestion", result.dump());
  store.flush();
  LrFindResult r;
  r.run_dir = run->dir();
  r.png = png.empty() ? run->dir() / "lr_find.png" : png;
  r.lr = suggestion.lr;
  r.confident = suggestion.confident;
  tune::plot_lr_curve(curve, suggestion, r.png);
  char lr_text[32];
  std::snprintf(lr_text, sizeof lr_text, "%.2g", suggestion.lr);
  char buf[1024];
  std::snprintf(
      buf, sizeof buf,
      "lr range test: %zu steps from %g to %g in %.1f s\n"
      "suggested lr: %.2g (%s; %s)\n"
      "curve: %s (and %s); train with %s",
      curve.lrs.size(), o.start_lr, curve.lrs.empty() ? 0.0 : curve.lrs.back(), seconds,
      suggestion.lr, suggestion.confident ? "confident" : "not confident",
      suggestion.reason.c_str(), r.png.c_str(), (run->dir() / "run.sqlite").c_str(),
      diagnose::name_settings(diagnose::setting_ref("train.lr", lr_text), namer_).c_str());
  r.summary = buf;
  return r;
}

std::string Session::preview(const fs::path& png, int64_t count, int64_t rows, int64_t scale) {
  configure_runtime(config_, false);
  joined_ = true;
  if (!own_data_) data_ = load_and_report(options_.data);
  augment_ = make_augment(config_, data_, options_.train.task());
  auto grid = data::augmentation_grid(*data_.train, augment_.get(), data_.pixels, count, rows,
                                      options_.train.seed(), scale);
  data::write_png(png, grid);
  return "wrote " + png.string() + ": top row " +
         std::to_string(std::min<int64_t>(count, data_.train->size())) + " training images, then " +
         std::to_string(augment_ ? rows : 0) + " augmented rows of " +
         (augment_ ? augment_->describe() : std::string("[]"));
}

}  // namespace trainscope
