// The trainscope command line: parses, builds a Config, calls the library. User mistakes end
// with one line on stderr and exit status 2.

#include <trainscope/trainscope.h>

#include "dashboard_commands.h"
#include "finetune.h"
#include "launch.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <deque>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace ts = trainscope;
namespace fs = std::filesystem;

namespace {

struct TrainArgs {
  std::string config_file;
  std::vector<std::string> sets;
  // Shortcuts for the most used settings; each is the same as --set KEY=VALUE.
  struct Shortcut {
    std::string key, value, flag;
  };
  std::vector<Shortcut> shortcuts;
  bool no_test = false;
  bool no_dashboard = false;
  bool auto_remedy = false;
};

struct TestArgs {
  std::string run;
  std::string runs_dir = "runs";
  std::string weights = "best";
};

ts::Config build_config(const TrainArgs& args) {
  ts::Config config = ts::Config::defaults();
  if (!args.config_file.empty()) config.merge_file(args.config_file);
  for (const auto& s : args.shortcuts) config.set_from_string(s.key + "=" + s.value, s.flag);
  for (const auto& s : args.sets) config.set_from_string(s, "--set");
  config.resolve();
  return config;
}

void configure_runtime(const ts::Config& config, bool print) {
  ts::RuntimeOptions runtime;
  runtime.intra_op_threads = static_cast<int>(config.get_int("runtime.threads"));
  runtime.openblas_threads = static_cast<int>(config.get_int("runtime.openblas_threads"));
  runtime.malloc_tuning = config.get_bool("runtime.malloc_tuning");
  auto report = ts::configure_process(runtime);
  if (!print) return;
  std::printf("process:\n");
  for (const auto& line : report.lines) std::printf("  %s\n", line.c_str());
}

ts::data::DataSplits load_data(const ts::Config& config) {
  ts::data::DataOptions o;
  o.spec = config.get_string("data.dataset");
  o.fashion_mnist_dir = config.get_string("data.dir");
  o.classification = config.get_string("train.task") == "classification";
  o.val_fraction = config.get_double("data.val_fraction");
  o.split_seed = static_cast<uint64_t>(config.get_int("data.split_seed"));
  o.limit = config.get_int("data.limit");
  o.test_limit = config.get_int("data.test_limit");
  o.classes = config.get_ints("data.classes");
  o.on_bad_image = config.get_string("data.on_bad_image") == "skip"
                       ? ts::data::BadImagePolicy::kSkip
                       : ts::data::BadImagePolicy::kFail;
  if (config.get_double("data.std") > 0) {
    o.mean = config.get_double("data.mean");
    o.std = config.get_double("data.std");
  }
  auto data = ts::data::load_data(o);
  if (data.skipped > 0)
    std::fprintf(stderr, "data: skipped %lld unreadable images (data.on_bad_image = \"skip\")\n",
                 static_cast<long long>(data.skipped));
  return data;
}

// The training-batch augmentation of data.augment. The default list applies to image data only;
// a list the user set on tabular data is an error (raised by the transforms on the first batch).
std::shared_ptr<ts::data::Transform> make_augment(const ts::Config& config,
                                                  const ts::data::DataSplits& data) {
  const auto& setting = config.setting("data.augment");
  if (data.input_shape.size() != 3 && setting.source == "default") return nullptr;
  ts::data::AugmentContext context;
  context.stats = {data.mean, data.std};
  context.classes = data.num_classes;
  return ts::data::parse_augmentation(config.get_strings("data.augment"), context);
}

struct PreviewArgs {
  std::string out = "augment-preview.png";
  int64_t count = 8, rows = 3, scale = 3;
};

int run_data_preview(const TrainArgs& args, const PreviewArgs& preview) {
  ts::Config config = build_config(args);
  configure_runtime(config, false);
  auto data = load_data(config);
  auto augment = make_augment(config, data);
  auto grid = ts::data::augmentation_grid(
      *data.train, augment.get(), {data.mean, data.std}, preview.count, preview.rows,
      static_cast<uint64_t>(config.get_int("train.seed")), preview.scale);
  ts::data::write_png(preview.out, grid);
  std::printf("wrote %s: top row %lld training images, then %lld augmented rows of %s\n",
              preview.out.c_str(),
              static_cast<long long>(std::min<int64_t>(preview.count, data.train->size())),
              static_cast<long long>(augment ? preview.rows : 0),
              augment ? augment->describe().c_str() : "[]");
  return 0;
}

int64_t model_outputs(const ts::data::DataSplits& data) {
  return data.num_classes > 0 ? data.num_classes : static_cast<int64_t>(1);
}

// Records how the data were prepared, so a run says what its model saw.
void record_data(ts::track::RunStore& store, const ts::data::DataSplits& data,
                 const std::shared_ptr<ts::data::Transform>& augment) {
  store.set_meta("data.source", data.source);
  store.set_meta("data.mean", std::to_string(data.mean));
  store.set_meta("data.std", std::to_string(data.std));
  store.set_meta("data.augment", augment ? augment->describe() : "[]");
  // What `trainscope export` needs to rebuild the model without loading the data.
  std::string shape = "[";
  for (size_t i = 0; i < data.input_shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(data.input_shape[i]);
  store.set_meta("model.input_shape", shape + "]");
  store.set_meta("model.outputs", std::to_string(model_outputs(data)));
  if (data.skipped > 0) store.set_meta("data.skipped_images", std::to_string(data.skipped));
  if (!data.feature_mean.empty()) {
    std::string mean = "[", std = "[";
    for (size_t i = 0; i < data.feature_mean.size(); ++i) {
      mean += (i ? ", " : "") + std::to_string(data.feature_mean[i]);
      std += (i ? ", " : "") + std::to_string(data.feature_std[i]);
    }
    store.set_meta("data.feature_mean", mean + "]");
    store.set_meta("data.feature_std", std + "]");
  }
}

ts::Model build_model(const ts::Config& config, const std::vector<int64_t>& input_shape,
                      int64_t outputs) {
  return ts::cli::zoo_model(config, input_shape, outputs);
}

ts::Model build_model(const ts::Config& config, const ts::data::DataSplits& data) {
  return build_model(config, data.input_shape, model_outputs(data));
}

std::string percent(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
  return buf;
}

// The device runtime.device names ("auto": CUDA when present), checked before any data loads.
torch::Device training_device(const ts::Config& config) {
  const std::string& d = config.get_string("runtime.device");
  if (d == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::kCPU;
  torch::Device device(d);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw ts::ConfigError(config.setting("runtime.device").source + ": runtime.device = \"" + d +
                          "\": this machine has no CUDA device (or this LibTorch has no CUDA); "
                          "use cpu or auto");
  return device;
}

std::vector<ts::diagnose::Finding> run_preflight(const ts::Config& config, ts::Model& model,
                                                 const ts::data::DataSplits& data, bool print) {
  ts::diagnose::PreflightOptions o;
  o.task = config.get_string("train.task") == "regression" ? ts::Task::kRegression
                                                           : ts::Task::kClassification;
  o.num_classes = data.num_classes;
  o.lr = config.get_double("train.lr");
  o.device = training_device(config);
  const auto start = std::chrono::steady_clock::now();
  auto findings = ts::diagnose::preflight(model, *data.train, o);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (print) {
    std::printf("pre-flight checks (%.1f s): %s\n", seconds,
                findings.empty()
                    ? "initial loss, one-batch overfit, gradients, input scale, labels: all pass"
                    : (std::to_string(findings.size()) + " failed").c_str());
    for (const auto& f : findings) std::printf("%s\n", f.to_text().c_str());
  }
  return findings;
}

int run_check(const TrainArgs& args) {
  ts::Config config = build_config(args);
  configure_runtime(config, false);
  auto data = load_data(config);
  ts::Model model = build_model(config, data);
  auto findings = run_preflight(config, model, data, true);
  bool errors = false;
  for (const auto& f : findings) errors |= f.severity == ts::diagnose::Severity::kError;
  return errors ? 1 : 0;
}

// Resolves train.batch_size = "auto" with real training steps, and the lr with it; both land in
// the config (and so in config.toml) with the reason.
std::optional<ts::tune::BatchSizeResult> choose_batch_size(ts::Config& config, ts::Model& model,
                                                           const ts::data::DataSplits& data,
                                                           bool print) {
  if (config.get_string("train.batch_size") != "auto") return std::nullopt;
  ts::tune::BatchSizeOptions o;
  o.memory_share = config.get_double("tune.memory_share");
  o.headroom = config.get_double("tune.headroom");
  o.min_gain = config.get_double("tune.min_gain");
  o.time_budget_s = config.get_double("tune.time_budget");
  const torch::Device device = training_device(config);
  // On CUDA a trial that does not fit raises out-of-memory, caught by the probe: no budget.
  const double budget = device.is_cuda() ? 0.0 : ts::tune::cpu_memory_budget(o.memory_share);
  const auto task = config.get_string("train.task") == "regression" ? ts::Task::kRegression
                                                                    : ts::Task::kClassification;
  ts::tune::TrainingProbe probe(model, *data.train, task, device, o.steps, budget);
  auto r = ts::tune::find_batch_size(probe, o, budget, data.train->size());
  config.set("train.batch_size", std::to_string(r.batch_size), "batch-size search", r.reason);
  const double lr = config.get_double("train.lr");
  const std::string rule = config.get_string("train.lr_scaling");
  const double scaled = ts::tune::scale_lr(lr, 128, r.batch_size, rule);
  if (scaled != lr) {
    char reason[128];
    std::snprintf(reason, sizeof reason, "%g scaled by the %s rule from batch 128 to %lld", lr,
                  rule.c_str(), static_cast<long long>(r.batch_size));
    config.set("train.lr", scaled, "lr scaling", reason);
  }
  if (print) {
    std::printf("batch size %lld: %s (search %.1f s:", static_cast<long long>(r.batch_size),
                r.reason.c_str(), r.seconds);
    for (const auto& t : r.trials)
      std::printf(" %lld%s %.0f/s %.0f MiB;", static_cast<long long>(t.batch),
                  t.fits ? "" : " (no fit)", t.samples_per_s, t.peak_bytes / 1048576.0);
    std::printf(")\n");
    if (scaled == lr && r.batch_size != 128)
      std::printf("lr %g kept for batch %lld (train.lr_scaling = \"%s\")\n", lr,
                  static_cast<long long>(r.batch_size), rule.c_str());
  }
  return r;
}

std::string batch_search_json(const ts::tune::BatchSizeResult& r) {
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
void store_mistake_images(ts::track::RunStore& store, const ts::data::DataSplits& data,
                          const ts::EvalResult& test) {
  if (test.mistakes.empty() || data.input_shape.size() != 3 || data.input_shape[0] > 3) return;
  std::vector<int64_t> indices;
  for (const auto& m : test.mistakes) indices.push_back(m.index);
  auto x = data.test->get_batch(torch::tensor(indices)).x.to(torch::kCPU);
  // Undo the normalization to show the pixels the way they were read.
  auto pixels = (x * data.std + data.mean).clamp(0, 1).mul(255).round().to(torch::kUInt8);
  nlohmann::json out = nlohmann::json::array();
  auto stored =
      nlohmann::json::parse(store.result("test", "mistakes").value_or("[]"), nullptr, false);
  for (size_t i = 0; i < test.mistakes.size(); ++i) {
    nlohmann::json item =
        stored.is_array() && i < stored.size() ? stored[i] : nlohmann::json::object();
    item["png"] = base64(ts::data::encode_png(pixels[int64_t(i)].contiguous()));
    out.push_back(item);
  }
  store.put_result("test", "mistakes", out.dump());
}

int run_tune_lr(const TrainArgs& args, const std::string& out) {
  ts::Config config = build_config(args);
  configure_runtime(config, false);
  auto data = load_data(config);
  ts::Model model = build_model(config, data);
  ts::tune::LrFinderOptions o;
  const std::string& batch = config.get_string("train.batch_size");
  o.batch_size = batch == "auto" ? 128 : std::stoll(batch);
  o.task = config.get_string("train.task") == "regression" ? ts::Task::kRegression
                                                           : ts::Task::kClassification;
  o.fallback_lr = 1e-3;
  const auto start = std::chrono::steady_clock::now();
  auto curve = ts::tune::lr_range_test(model, *data.train, o);
  auto suggestion = ts::tune::suggest_lr(curve, o.fallback_lr);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::string name = config.get_string("run.name").empty()
                               ? ts::track::timestamped_name("lr-find")
                               : config.get_string("run.name");
  auto run = ts::track::Run::create(config.get_string("run.dir"), name);
  auto& store = run->store();
  store.set_meta("name", run->name());
  store.set_meta("kind", "lr_find");
  store.set_meta("status", "finished");
  const double now = ts::track::wall_time_now();
  for (size_t i = 0; i < curve.lrs.size(); ++i) {
    store.add_metric({int64_t(i), 0, "tune", "lr_find/lr", curve.lrs[i], now});
    store.add_metric({int64_t(i), 0, "tune", "lr_find/loss", curve.losses[i], now});
    store.add_metric({int64_t(i), 0, "tune", "lr_find/smoothed_loss", curve.smoothed[i], now});
  }
  nlohmann::json result = {
      {"lr", suggestion.lr}, {"confident", suggestion.confident}, {"reason", suggestion.reason}};
  store.put_result("tune", "lr_suggestion", result.dump());
  store.flush();
  const fs::path png = out.empty() ? run->dir() / "lr_find.png" : fs::path(out);
  ts::tune::plot_lr_curve(curve, suggestion, png);
  std::printf("lr range test: %zu steps from %g to %g in %.1f s\n", curve.lrs.size(), o.start_lr,
              curve.lrs.empty() ? 0.0 : curve.lrs.back(), seconds);
  std::printf("suggested lr: %.2g (%s; %s)\n", suggestion.lr,
              suggestion.confident ? "confident" : "not confident", suggestion.reason.c_str());
  std::printf("curve: %s (and %s); train with --lr %.2g\n", png.c_str(),
              (run->dir() / "run.sqlite").c_str(), suggestion.lr);
  return 0;
}

// What a fit's commands share once the config is resolved.
struct Prepared {
  ts::data::DataSplits data;
  ts::Model model;
  std::shared_ptr<ts::data::Transform> augment;
  std::optional<ts::cli::FinetuneSource> source;  // fine-tuning
};

// Data, model and augmentation of a fit. Fine-tuning (finetune.from) takes the source's
// normalization into `config` first, then builds the source's backbone under a new head. A
// resumed fine-tuned run (`run_dir`) may rebuild it from what the run kept of its source.
Prepared prepare(ts::Config& config, const fs::path& run_dir = {}) {
  Prepared p;
  const bool print = config.get_string("ui.progress") != "off";
  if (config.get_string("finetune.from").empty()) {
    p.data = load_data(config);
    p.model = build_model(config, p.data);
  } else {
    p.source =
        run_dir.empty() ? ts::cli::resolve_source(config) : ts::cli::run_source(config, run_dir);
    const std::string normalization = ts::cli::adopt_normalization(config, *p.source);
    p.data = load_data(config);
    auto [model, summary] =
        ts::cli::finetune_model(config, *p.source, p.data.input_shape, model_outputs(p.data));
    p.model = model;
    if (print) std::printf("%s\n%s\n", summary.c_str(), normalization.c_str());
  }
  p.augment = make_augment(config, p.data);
  return p;
}

// Copies what rebuilds a fine-tuned model into its run once the run exists, so that resuming,
// testing and exporting it do not need the source. A model rebuilt from the kept architecture
// has no pretrained backbone: only a checkpoint can give it back.
class KeepSource : public ts::Callback {
 public:
  explicit KeepSource(ts::cli::FinetuneSource source) : source_(std::move(source)) {}
  std::string name() const override { return "keep_source"; }
  void on_fit_start(ts::TrainState& state) override {
    if (source_.weights.empty() && state.resumed && state.resumed->file.empty())
      throw ts::Error(
          "the fine-tuned run has no usable checkpoint, so its pretrained backbone "
          "is lost (the run keeps the source's architecture, not its weights); "
          "fine-tune again from " +
          source_.path.string());
    if (state.run) ts::cli::keep_source(source_, state.run->dir());
  }

 private:
  ts::cli::FinetuneSource source_;
};

ts::TrainerOptions trainer_options(const ts::Config& config, const Prepared& p) {
  ts::TrainerOptions options = ts::TrainerOptions::from(config);
  options.class_names(p.data.class_names);
  options.augment(p.augment);
  return options;
}

// This process's part in a data-parallel job (WORLD_SIZE > 1 in the environment), if any.
struct Job {
  ts::dist::JobEnv env;
  std::shared_ptr<ts::dist::DataParallel> dp;
  bool leader() const { return env.rank == 0; }
};

// Joins the job the environment describes. Only rank 0 reports, serves the dashboard and writes
// the run; the others train in step with it.
Job join_job(ts::Config& config) {
  Job job;
  job.env = ts::dist::JobEnv::from_environment();
  if (!job.env.distributed()) return job;
  if (config.get_bool("diagnose.auto_remedy"))
    throw ts::ConfigError(
        "--auto-remedy is not available in data-parallel runs: each rank would "
        "apply its remedies on its own");
  // One GPU per rank of this machine: LOCAL_RANK picks it.
  torch::Device device = training_device(config);
  if (device.is_cuda() && !device.has_index()) {
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(job.env.local_rank));
    config.set("runtime.device", device.str(), "data parallel", "the GPU of LOCAL_RANK");
  }
  ts::dist::ProcessGroupOptions o;
  o.backend = config.get_string("dist.backend");
  o.device = device;
  o.timeout =
      std::chrono::milliseconds(static_cast<int64_t>(1000 * config.get_double("dist.timeout")));
  auto group = std::make_shared<ts::dist::ProcessGroup>(job.env, o);
  ts::dist::DataParallelOptions d;
  d.bucket_bytes = static_cast<int64_t>(config.get_double("dist.bucket_mb") * (1 << 20));
  job.dp = std::make_shared<ts::dist::DataParallel>(group, d);
  // The ranks on this machine share its cores (torchrun sets OMP_NUM_THREADS=1 for the same
  // reason): more threads than cores in all would make them wait on each other.
  if (config.setting("runtime.threads").source == "default") {
    const char* local = std::getenv("LOCAL_WORLD_SIZE");
    const int64_t here = local ? std::max(1, std::atoi(local)) : job.env.world_size;
    config.set("runtime.threads", std::max<int64_t>(1, ts::available_cores() / here),
               "data parallel",
               "the cores shared among the " + std::to_string(here) + " ranks on this machine");
  }
  if (!job.leader()) {
    config.set("ui.progress", std::string("off"), "data parallel", "rank 0 reports");
    config.set("ui.dashboard", false, "data parallel", "rank 0 serves it");
  }
  return job;
}

// The Trainer of a fit: the fine-tuning callback when it is one, the data-parallel sync in a job
// (train.batch_size is the job's global batch, shared out among the ranks).
std::unique_ptr<ts::Trainer> make_trainer(const ts::Config& config, const Prepared& p,
                                          const Job& job) {
  ts::TrainerOptions options = trainer_options(config, p);
  if (job.dp) {
    const int64_t global = options.batch_size(), ranks = job.env.world_size;
    if (global % ranks != 0)
      throw ts::ConfigError("train.batch_size = " + std::to_string(global) +
                            " does not divide among " + std::to_string(ranks) +
                            " ranks; use a multiple of " + std::to_string(ranks));
    options.batch_size(global / ranks).gradient_sync(job.dp).rank(job.env.rank).world_size(ranks);
    if (!job.leader()) options.runs_dir("").progress("off");
    if (job.leader() && config.get_string("ui.progress") != "off")
      std::printf("data parallel: %lld ranks over %s, global batch %lld = %lld x %lld\n",
                  static_cast<long long>(ranks), job.dp->group().backend().c_str(),
                  static_cast<long long>(global), static_cast<long long>(ranks),
                  static_cast<long long>(global / ranks));
  }
  auto trainer = std::make_unique<ts::Trainer>(options);
  if (job.dp) trainer->add_callback(job.dp);
  if (!config.get_string("finetune.from").empty())
    trainer->add_callback(
        std::make_shared<ts::callbacks::FineTuning>(ts::cli::fine_tuning_options(config)));
  if (p.source) trainer->add_callback(std::make_shared<KeepSource>(*p.source));
  return trainer;
}

// After a fit (new or resumed): records the data, reports why it ended, tests.
int finish(ts::Trainer& trainer, const ts::FitResult& fit, Prepared& p,
           const std::optional<ts::tune::BatchSizeResult>& batch_search, bool no_test,
           const Job& job) {
  if (!job.leader()) return fit.interrupted ? 130 : 0;
  if (auto run = trainer.run()) {
    record_data(run->store(), p.data, p.augment);
    if (batch_search)
      run->store().put_result("tune", "batch_size", batch_search_json(*batch_search));
  }
  // What to type to continue: a data-parallel job resumes at its world size (under another
  // launcher, with as many ranks as now).
  std::string name = fit.run_dir.filename().string();
  if (const char* nproc = std::getenv("TRAINSCOPE_NPROC"); job.dp && nproc)
    name += std::string(" --nproc ") + nproc;
  else if (job.dp)
    name += " (with " + std::to_string(job.env.world_size) + " ranks)";
  std::shared_ptr<ts::callbacks::ModelCheckpoint> checkpoint;
  for (const auto& cb : trainer.callbacks())
    if (auto c = std::dynamic_pointer_cast<ts::callbacks::ModelCheckpoint>(cb)) checkpoint = c;
  const bool saving = checkpoint && trainer.run() && checkpoint->error().empty();
  if (fit.interrupted) {
    if (saving)
      std::printf("interrupted; the state after the last batch is saved: trainscope resume %s\n",
                  name.c_str());
    else
      std::printf("interrupted; no checkpoint was saved (checkpoints are off or failing)\n");
    return 130;
  }
  if (fit.stop_reason == ts::StopReason::kCheckpointFailed) {
    std::fprintf(stderr,
                 "trainscope: the fit stopped because a checkpoint could not be saved; "
                 "once that is fixed: trainscope resume %s\n",
                 name.c_str());
    return 1;
  }
  // A save that failed at the very end (the fit had nothing left to stop) still means the run's
  // newest state is not on disk.
  if (checkpoint && !checkpoint->error().empty() &&
      trainer.options().checkpoint().on_error == ts::callbacks::OnSaveError::kStop) {
    std::fprintf(stderr,
                 "trainscope: the fit ended but its last checkpoint could not be "
                 "saved; the newest saved state is older (trainscope resume %s "
                 "continues from it)\n",
                 name.c_str());
    return 1;
  }
  if (!no_test) {
    ts::EvalResult test = trainer.test(p.model, *p.data.test);
    if (auto run = trainer.run()) store_mistake_images(run->store(), p.data, test);
    auto acc = test.metrics.find("accuracy");
    std::printf("test %s: %s (best epoch %lld of %lld)\n",
                acc != test.metrics.end() ? "accuracy" : "loss",
                acc != test.metrics.end() ? percent(acc->second).c_str()
                                          : std::to_string(test.metrics["loss"]).c_str(),
                static_cast<long long>(fit.best_epoch), static_cast<long long>(fit.epochs));
  }
  if (!fit.run_dir.empty()) std::printf("run written to %s\n", fit.run_dir.c_str());
  return 0;
}

int run_train(const TrainArgs& args) {
  ts::Config config = build_config(args);
  training_device(config);  // a missing GPU is named before anything loads
  Job job = join_job(config);
  configure_runtime(config, config.get_string("ui.progress") != "off");
  // The dashboard reads the run store from its own threads; it stops when training ends.
  auto dashboard = ts::cli::start_train_dashboard(config, args.no_dashboard);
  Prepared p = prepare(config);
  std::optional<ts::tune::BatchSizeResult> batch_search;
  if (!job.dp) {
    batch_search =
        choose_batch_size(config, p.model, p.data, config.get_string("ui.progress") != "off");
  } else if (config.get_string("train.batch_size") == "auto") {
    // Rank 0 searches a rank's batch; every rank takes its answer.
    if (job.leader())
      batch_search =
          choose_batch_size(config, p.model, p.data, config.get_string("ui.progress") != "off");
    const int64_t mine = job.leader() ? std::stoll(config.get_string("train.batch_size")) : 0;
    std::vector<torch::Tensor> chosen = {torch::full({1}, mine, torch::kInt64)};
    job.dp->group().broadcast(chosen, 0);
    config.set("train.batch_size", std::to_string(chosen[0].item<int64_t>() * job.env.world_size),
               "batch-size search",
               "rank 0's search, times the " + std::to_string(job.env.world_size) + " ranks");
  }

  auto trainer_ptr = make_trainer(config, p, job);
  ts::Trainer& trainer = *trainer_ptr;
  if (job.leader() && config.get_bool("diagnose.enabled") &&
      config.get_bool("diagnose.preflight")) {
    auto findings =
        run_preflight(config, p.model, p.data, config.get_string("ui.progress") != "off");
    for (const auto& cb : trainer.callbacks())
      if (auto diagnostics = std::dynamic_pointer_cast<ts::diagnose::Diagnostics>(cb))
        diagnostics->add_preflight(findings);
  }
  ts::FitResult fit = trainer.fit(p.model, p.data.train, p.data.val);
  return finish(trainer, fit, p, batch_search, args.no_test, job);
}

fs::path find_run(const TestArgs& args) {
  fs::path direct(args.run);
  if (fs::exists(direct / "run.sqlite")) return direct;
  fs::path under = fs::path(args.runs_dir) / args.run;
  if (fs::exists(under / "run.sqlite")) return under;
  throw ts::Error("no run named '" + args.run + "': neither " + direct.string() + " nor " +
                  under.string() + " holds a run.sqlite; `ls " + args.runs_dir +
                  "` lists the runs");
}

// The model of a finished run, with its architecture: a zoo model, or a fine-tuned one rebuilt
// from its source or the run's copy of it (the run's checkpoint then sets every weight).
ts::Model run_model(const ts::Config& config, const fs::path& dir,
                    const std::vector<int64_t>& input_shape, int64_t outputs) {
  if (config.get_string("finetune.from").empty()) return build_model(config, input_shape, outputs);
  const auto source = ts::cli::run_source(config, dir);
  return ts::cli::finetune_model(config, source, input_shape, outputs).first;
}

int run_test(const TestArgs& args) {
  const fs::path dir = find_run(args);
  ts::Config config = ts::Config::defaults();
  config.merge_file(dir / "config.toml");
  config.set("ui.progress", std::string("plain"), "trainscope test");
  config.resolve();
  configure_runtime(config, false);
  auto data = load_data(config);
  ts::Model model = run_model(config, dir, data.input_shape, model_outputs(data));
  fs::path weights = dir / "checkpoints" / (args.weights + ".ckpt");
  ts::callbacks::load_weights(model.module(), weights);

  ts::TrainerOptions options = ts::TrainerOptions::from(config);
  options.class_names(data.class_names).runs_dir("").checkpoints(false).early_stopping(false);
  ts::Trainer trainer(options);
  trainer.attach_run(ts::track::Run::open(dir));
  std::printf("testing %s weights of %s\n", args.weights.c_str(), dir.c_str());
  ts::EvalResult test = trainer.test(model, *data.test);
  store_mistake_images(trainer.run()->store(), data, test);
  auto acc = test.metrics.find("accuracy");
  if (acc != test.metrics.end()) std::printf("test accuracy: %s\n", percent(acc->second).c_str());
  return 0;
}

// Writes a run's new settings at the first epoch it starts (the checkpoint restored by then).
class WriteConfig : public ts::Callback {
 public:
  WriteConfig(fs::path file, std::string text) : file_(std::move(file)), text_(std::move(text)) {}
  std::string name() const override { return "write_config"; }
  void on_epoch_start(ts::TrainState&) override {
    if (text_.empty()) return;
    ts::track::write_text_atomically(file_, text_);
    text_.clear();
    std::printf(
        "settings changed for the rest of the run (config.toml updated); the result is "
        "no longer that of the original settings\n");
  }

 private:
  fs::path file_;
  std::string text_;
};

struct ResumeArgs {
  std::string run;
  std::string runs_dir = "runs";
  std::vector<std::string> sets;
  std::string epochs;
  std::string progress;
  bool no_test = false;
  bool no_dashboard = false;
};

// The run's own settings (config.toml), and what the user changes on top of them.
ts::Config run_config(const fs::path& dir, const std::vector<std::string>& sets = {}) {
  if (!fs::exists(dir / "config.toml"))
    throw ts::Error("run " + dir.string() +
                    " has no config.toml: it stopped before training "
                    "began; start it again with trainscope train");
  ts::Config config = ts::Config::defaults();
  config.merge_file(dir / "config.toml");
  for (const auto& s : sets) config.set_from_string(s, "--set");
  return config;
}

int run_resume(const ResumeArgs& args) {
  const fs::path dir = find_run({args.run, args.runs_dir, "best"});
  std::vector<std::string> sets = args.sets;
  if (!args.epochs.empty()) sets.push_back("train.max_epochs=" + args.epochs);
  if (!args.progress.empty()) sets.push_back("ui.progress=" + args.progress);
  ts::Config config = run_config(dir, sets);
  // The dashboard serves the directory that holds this run.
  config.set("run.dir", dir.parent_path().empty() ? std::string(".") : dir.parent_path().string(),
             "trainscope resume");
  config.resolve();
  Job job = join_job(config);
  configure_runtime(config, config.get_string("ui.progress") != "off");
  auto dashboard = ts::cli::start_train_dashboard(config, args.no_dashboard);
  Prepared p = prepare(config, dir);
  auto trainer_ptr = make_trainer(config, p, job);
  ts::Trainer& trainer = *trainer_ptr;
  bool changed_training = false;
  for (const auto& s : args.sets)
    changed_training |= s.rfind("ui.", 0) != 0 && s.rfind("runtime.", 0) != 0;
  if (job.leader() && (!args.epochs.empty() || changed_training)) {
    ts::Config saved = config;
    saved.set("run.dir", run_config(dir).get_string("run.dir"), "trainscope resume");
    // Written once the checkpoint is restored: a resume that fails leaves the run's settings.
    trainer.add_callback(std::make_shared<WriteConfig>(dir / "config.toml", saved.to_toml()));
  }
  // The other ranks of a job restore from the same checkpoint; rank 0 alone writes the run.
  ts::FitResult fit = trainer.resume(
      p.model, p.data.train, p.data.val, dir,
      job.leader() ? ts::Trainer::ResumeMode::kWrite : ts::Trainer::ResumeMode::kReadOnly);
  return finish(trainer, fit, p, std::nullopt, args.no_test, job);
}

struct ExportArgs {
  std::string run;
  std::string runs_dir = "runs";
  std::string weights = "best";
  std::string out;
};

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

int run_export(const ExportArgs& args) {
  const fs::path dir = find_run({args.run, args.runs_dir, args.weights});
  ts::Config config = run_config(dir);
  config.resolve();
  configure_runtime(config, false);
  // The model's shape is in the run store; runs without it are rebuilt from their data.
  auto run = ts::track::Run::open(dir);
  ts::Model model;
  auto shape = run->store().meta("model.input_shape");
  auto outputs = run->store().meta("model.outputs");
  if (shape && outputs) {
    model = run_model(config, dir, parse_ints(*shape), std::stoll(*outputs));
  } else {
    const auto data = load_data(config);
    model = run_model(config, dir, data.input_shape, model_outputs(data));
  }
  const fs::path checkpoint = dir / "checkpoints" / (args.weights + ".ckpt");
  if (!fs::exists(checkpoint))
    throw ts::CheckpointError("run " + dir.string() + " has no " + checkpoint.filename().string() +
                              " (" + (dir / "checkpoints").string() +
                              " holds the run's checkpoints; --weights takes best or last)");
  ts::callbacks::load_weights(model.module(), checkpoint);
  const ts::track::CheckpointInfo info = ts::track::read_checkpoint_info(checkpoint);
  const fs::path out = args.out.empty() ? dir / (args.weights + ".pt") : fs::path(args.out);
  const int64_t tensors = ts::models::export_state_dict(model, out);
  std::string from = checkpoint.filename().string() + " (epoch " + std::to_string(info.epoch);
  if (!info.monitor.empty() && std::isfinite(info.value))
    from += ", " + info.monitor + " " + std::to_string(info.value);
  std::printf(
      "exported %lld tensors of %s (%lld parameters) from %s) to %s\n"
      "in Python: model.load_state_dict(torch.load(\"%s\"))\n",
      static_cast<long long>(tensors), model.name().c_str(),
      static_cast<long long>(model.num_parameters()), from.c_str(), out.c_str(), out.c_str());
  return 0;
}

std::string settings_help() {
  std::ostringstream o;
  o << "\nSettings (--set KEY=VALUE, or [section] key = value in a --config TOML file):\n";
  for (const auto& s : ts::Config::schema())
    o << "  " << s.key << " = " << ts::to_toml_literal(s.default_value) << "\n      " << s.help
      << "; default because " << s.reason << "\n";
  return o.str();
}

// A command that runs a fit (train, finetune): its options and the shortcuts given.
struct Shortcut {
  const char* flag;
  const char* key;
};
const std::vector<Shortcut> kTrainShortcuts = {
    {"--epochs", "train.max_epochs"},
    {"--lr", "train.lr"},
    {"--batch-size", "train.batch_size"},
    {"--model", "model.name"},
    {"--data", "data.dataset"},
    {"--name", "run.name"},
    {"--runs-dir", "run.dir"},
    {"--seed", "train.seed"},
    {"--threads", "runtime.threads"},
    {"--progress", "ui.progress"},
    {"--device", "runtime.device"},
};
const std::vector<Shortcut> kFinetuneShortcuts = {
    {"--from", "finetune.from"},
    {"--head", "finetune.head"},
    {"--unfreeze-at", "finetune.unfreeze_at_epoch"},
    {"--backbone-lr-ratio", "finetune.backbone_lr_ratio"},
};

struct FitCommand {
  CLI::App* app;
  TrainArgs& args;
  std::vector<Shortcut> shortcuts = {};
  std::deque<std::string> values = {};  // CLI11 keeps references: they must not move
};

// The first call adds --config, --set and the flags; each call adds its shortcuts.
void add_fit_options(FitCommand& c, const std::vector<Shortcut>& shortcuts) {
  const size_t first = c.shortcuts.size();
  if (first == 0) {
    c.app
        ->add_option("--config", c.args.config_file,
                     "TOML file of settings (a run's config.toml works)")
        ->check(CLI::ExistingFile);
    c.app->add_option("--set", c.args.sets,
                      "override a setting: --set train.lr=0.0003 (repeatable)");
  }
  c.shortcuts.insert(c.shortcuts.end(), shortcuts.begin(), shortcuts.end());
  c.values.resize(c.shortcuts.size());
  for (size_t i = first; i < c.shortcuts.size(); ++i) {
    const auto& spec = ts::Config::defaults().setting(c.shortcuts[i].key);
    std::string help = "same as --set " + std::string(c.shortcuts[i].key) + "=VALUE (default " +
                       ts::to_toml_literal(spec.value) + ")";
    c.app->add_option(c.shortcuts[i].flag, c.values[i], help);
  }
  if (first > 0) return;
  static int nproc_help = 0;  // taken out of the command line before parsing (launch.h)
  c.app->add_option("--nproc", nproc_help,
                    "train with N data-parallel processes on this machine (Gloo); under "
                    "torchrun-style launchers the RANK/WORLD_SIZE/MASTER_* variables are used");
  c.app->add_flag("--no-test", c.args.no_test,
                  "skip evaluating the test split after training (default: test)");
  c.app->add_flag("--no-dashboard", c.args.no_dashboard,
                  "do not serve the dashboard while training (same as --set ui.dashboard=false)");
  c.app->add_flag("--auto-remedy", c.args.auto_remedy,
                  "let diagnostics clip gradients, lower the lr or stop (default: off; same as "
                  "--set diagnose.auto_remedy=true)");
}

// After parsing: the shortcuts given, in order, and the flags as settings.
void collect(FitCommand& c) {
  for (size_t i = 0; i < c.shortcuts.size(); ++i)
    if (c.app->count(c.shortcuts[i].flag) > 0)
      c.args.shortcuts.push_back({c.shortcuts[i].key, c.values[i], c.shortcuts[i].flag});
  if (c.args.auto_remedy) c.args.sets.push_back("diagnose.auto_remedy=true");
}

}  // namespace

int main(int argc, char** argv) {
  // --nproc N: this command as N data-parallel ranks, unless this process already is one.
  {
    std::vector<std::string> args(argv, argv + argc);
    int nproc = 0;
    try {
      nproc = ts::cli::take_nproc(args);
    } catch (const ts::Error& e) {
      std::cerr << "trainscope: error: " << e.what() << "\n";
      return 2;
    }
    if (nproc > 1 && std::getenv("WORLD_SIZE") == nullptr) {
      const bool fits =
          args.size() > 1 && (args[1] == "train" || args[1] == "finetune" || args[1] == "resume");
      if (!fits) {
        std::cerr << "trainscope: error: --nproc applies to train, finetune and resume\n";
        return 2;
      }
      try {
        return ts::cli::launch(nproc, args);
      } catch (const ts::Error& e) {
        std::cerr << "trainscope: error: " << e.what() << "\n";
        return 2;
      }
    }
    if (nproc > 0) {
      // Parse the rest without --nproc.
      static std::vector<std::string> kept;
      static std::vector<char*> kept_argv;
      kept = args;
      for (auto& a : kept) kept_argv.push_back(a.data());
      argc = static_cast<int>(kept_argv.size());
      argv = kept_argv.data();
    }
  }
  CLI::App app{
      "trainscope: train and test deep models on LibTorch, with a practitioner's defaults"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  TrainArgs train_args;
  auto* train =
      app.add_subcommand("train", "train a model (default: the reference CNN on Fashion-MNIST)");
  FitCommand train_command{train, train_args};
  add_fit_options(train_command, kTrainShortcuts);
  train->footer(settings_help());

  TrainArgs finetune_args;
  bool train_bn = false;
  auto* finetune = app.add_subcommand(
      "finetune",
      "fine-tune a trained model on new data: its last layer is replaced by a new head for the "
      "new classes, the rest is frozen and only the head trains (6 epochs, Adam, lr 1e-3); "
      "--unfreeze-at N trains the backbone too from epoch N at lr x 0.1");
  FitCommand finetune_command{finetune, finetune_args};
  add_fit_options(finetune_command, kTrainShortcuts);
  add_fit_options(finetune_command, kFinetuneShortcuts);
  finetune->get_option("--from")->required()->description(
      "what to fine-tune: a run directory (or a run name under --runs-dir; its best.ckpt), a "
      ".ckpt checkpoint, or a TorchScript file saved from Python");
  finetune->get_option("--epochs")
      ->description("same as --set train.max_epochs=VALUE (default 6 when fine-tuning)");
  finetune->add_flag("--train-bn", train_bn,
                     "let the backbone's BatchNorm layers update their statistics (same as --set "
                     "finetune.train_bn=true)");
  finetune->footer(settings_help());

  auto* check =
      app.add_subcommand("check",
                         "run the pre-flight checks on the training setup and exit (takes "
                         "train's options); exit 1 when a check finds an error");
  check->add_option("--config", train_args.config_file, "TOML file of settings")
      ->check(CLI::ExistingFile);
  check->add_option("--set", train_args.sets, "override a setting (repeatable)");

  std::string diagnose_run, diagnose_runs_dir = "runs";
  auto* diagnose =
      app.add_subcommand("diagnose", "print the diagnostics report of a run, finished or not");
  diagnose->add_option("RUN", diagnose_run, "run directory, or a run name under --runs-dir")
      ->required();
  diagnose->add_option("--runs-dir", diagnose_runs_dir, "directory of runs (default \"runs\")");

  std::string lr_plot;
  auto* tune = app.add_subcommand("tune", "search hyperparameters");
  tune->require_subcommand(1);
  auto* tune_lr =
      tune->add_subcommand("lr",
                           "learning-rate range test (1e-7 to 10): suggests an lr, stores the "
                           "curve in a run and plots it to a PNG");
  tune_lr->add_option("--config", train_args.config_file, "TOML file of settings")
      ->check(CLI::ExistingFile);
  tune_lr->add_option("--set", train_args.sets, "override a setting (repeatable)");
  tune_lr->add_option("--out", lr_plot,
                      "PNG file for the curve (default: lr_find.png in the run directory)");

  PreviewArgs preview_args;
  auto* data_cmd = app.add_subcommand("data", "inspect the data pipeline");
  data_cmd->require_subcommand(1);
  auto* preview = data_cmd->add_subcommand(
      "preview",
      "write a PNG grid of training images (top row) and their augmentations (rows below)");
  preview->add_option("--config", train_args.config_file, "TOML file of settings")
      ->check(CLI::ExistingFile);
  preview->add_option("--set", train_args.sets,
                      "override a setting, e.g. --set 'data.augment=[\"rotate(10)\"]'");
  preview->add_option("--out", preview_args.out, "PNG file to write (default augment-preview.png)");
  preview->add_option("--count", preview_args.count, "images per row (default 8)")
      ->check(CLI::Range(1, 64));
  preview->add_option("--rows", preview_args.rows, "augmented rows (default 3)")
      ->check(CLI::Range(0, 16));
  preview->add_option("--scale", preview_args.scale, "pixel scale (default 3)")
      ->check(CLI::Range(1, 16));

  ts::cli::DashboardCommands dashboard_commands;
  ts::cli::add_dashboard_commands(app, dashboard_commands);

  TestArgs test_args;
  auto* test =
      app.add_subcommand("test", "evaluate a run's weights on the test split and store the result");
  test->add_option("RUN", test_args.run, "run directory, or a run name under --runs-dir")
      ->required();
  test->add_option("--runs-dir", test_args.runs_dir, "directory of runs (default \"runs\")");
  test->add_option("--weights", test_args.weights, "best or last (default \"best\")")
      ->check(CLI::IsMember({"best", "last"}));

  ResumeArgs resume_args;
  auto* resume = app.add_subcommand(
      "resume",
      "continue a run from its newest good checkpoint, exactly where it stopped (a crash, "
      "SIGKILL, Ctrl-C), then test it");
  resume->add_option("RUN", resume_args.run, "run directory, or a run name under --runs-dir")
      ->required();
  resume->add_option("--runs-dir", resume_args.runs_dir, "directory of runs (default \"runs\")");
  resume->add_option("--epochs", resume_args.epochs,
                     "raise the epoch budget (train.max_epochs) to go on past the original end");
  resume->add_option("--set", resume_args.sets,
                     "change a setting for the rest of the run (config.toml is updated)");
  resume->add_option("--progress", resume_args.progress, "auto, bar, plain or off");
  resume->add_flag("--no-test", resume_args.no_test, "skip the test pass after the fit");
  resume->add_flag("--no-dashboard", resume_args.no_dashboard, "do not serve the dashboard");

  ExportArgs export_args;
  auto* export_cmd = app.add_subcommand(
      "export", "write a run's weights as a state dict that Python's torch.load reads");
  export_cmd->add_option("RUN", export_args.run, "run directory, or a run name under --runs-dir")
      ->required();
  export_cmd->add_option("--runs-dir", export_args.runs_dir,
                         "directory of runs (default \"runs\")");
  export_cmd->add_option("--weights", export_args.weights, "best or last (default \"best\")")
      ->check(CLI::IsMember({"best", "last"}));
  export_cmd->add_option("--out", export_args.out, "file to write (default: <run>/<weights>.pt)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "trainscope: error: " << e.what() << " (see trainscope --help)\n";
    return 2;
  }

  try {
    if (train->parsed()) {
      collect(train_command);
      return run_train(train_args);
    }
    if (finetune->parsed()) {
      collect(finetune_command);
      if (train_bn) finetune_args.sets.push_back("finetune.train_bn=true");
      return run_train(finetune_args);
    }
    if (int code = 0; ts::cli::run_dashboard_commands(dashboard_commands, code)) return code;
    if (check->parsed()) return run_check(train_args);
    if (tune_lr->parsed()) return run_tune_lr(train_args, lr_plot);
    if (preview->parsed()) return run_data_preview(train_args, preview_args);
    if (resume->parsed()) return run_resume(resume_args);
    if (export_cmd->parsed()) return run_export(export_args);
    if (diagnose->parsed()) {
      std::printf("%s", ts::diagnose::diagnose_report(
                            find_run({diagnose_run, diagnose_runs_dir, "best"}).string())
                            .c_str());
      return 0;
    }
    return run_test(test_args);
  } catch (const ts::JobError& e) {
    std::cerr << "trainscope: error: " << e.what() << "\n";
    return 1;
  } catch (const ts::Error& e) {
    std::cerr << "trainscope: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    std::cerr << "trainscope: internal error in LibTorch: " << what.substr(0, what.find('\n'))
              << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "trainscope: internal error: " << e.what() << "\n";
    return 1;
  }
}
