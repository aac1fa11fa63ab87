#pragma once
// The settings of trainscope: every key that a config file, --set or the library takes, each
// declared once (key, type, default, reason, help, check) in src/session/settings.cpp and bound
// there to the one options field it sets. Config -> SessionOptions and SessionOptions -> Config
// are generated from that binding, so the two cannot disagree; a test holds every field's
// default here to its setting's default.
//
//   ts::Config config = ts::default_config();        // every default, each with its reason
//   config.set_from_string("train.lr=3e-4");
//   config.resolve();
//   ts::SessionOptions options = ts::session_options(config);
//   options.train.lr();                               // 0.0003

#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/callbacks/early_stopping.h>
#include <trainscope/callbacks/fine_tuning.h>
#include <trainscope/callbacks/lr_schedule.h>
#include <trainscope/config.h>
#include <trainscope/data/spec.h>
#include <trainscope/diagnose/data_checks.h>
#include <trainscope/diagnose/diagnostics.h>
#include <trainscope/models/transfer.h>
#include <trainscope/models/zoo.h>
#include <trainscope/runtime.h>
#include <trainscope/train/trainer.h>
#include <trainscope/tune/batch_size.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trainscope {

// Everything a Session runs with, in the options structs of the layers that use them. Plain
// value type. Each field's default is its setting's (a test holds them equal); defaults that
// depend on other settings (train.max_epochs when fine-tuning, model.hidden for the mlp, ...)
// are filled by Config::resolve.
struct SessionOptions {
  // data.* except augment and workers; `classification` follows train.task.
  data::DataOptions data;
  std::vector<std::string> augment = {"hflip", "crop(pad=2)"};  // data.augment
  // data.augment_from: the first augmented epoch (0: auto, when overfitting begins),
  // DelayedAugmentation.
  int64_t augment_from = 0;
  models::ModelSpec model;  // model.* (sizes from the data)
  // train.*, run.dir, run.name, runtime.device, data.workers. Its batch_size is `batch_size` once
  // chosen.
  TrainerOptions train = TrainerOptions().precision(Precision::kAuto);
  std::optional<int64_t> batch_size;  // train.batch_size; nullopt: "auto" (chosen by the Session)
  std::string regime = "scratch";     // train.regime: scratch | finetune
  std::string sweep;                  // run.sweep: the sweep this run is a trial of ("": none)
  std::string sweep_trial;            // run.sweep_trial: what the trial sets, "key=value ..."
  diagnose::DataCheckOptions data_check;  // check.*: trainscope check's data checks
  struct Pruning {
    std::string method = "none";  // sweep.prune: none | halving (SuccessiveHalving)
    int64_t min_epochs = 1;       // sweep.prune_min_epochs
    int64_t factor = 3;           // sweep.prune_factor
  } prune;
  std::string lr_scaling = "keep";           // train.lr_scaling: keep | linear | sqrt
  bool early_stopping = true;                // train.early_stopping
  callbacks::EarlyStoppingOptions stopping;  // train.patience, min_delta, restore_best; stopping.*
  bool checkpoints = true;                   // train.checkpoints
  callbacks::CheckpointOptions checkpoint;   // checkpoint.*
  callbacks::LrScheduleOptions schedule;     // train.lr_schedule, schedule.*
  double ema = 0.0;                          // train.ema: decay (0: off), WeightAveraging
  std::string finetune_from;                 // finetune.from ("": train from scratch)
  std::string finetune_head;                 // finetune.head ("": the last Linear)
  callbacks::FineTuningOptions fine_tuning;  // finetune.*
  models::HeadInit head_init = models::HeadInit::kZero;  // finetune.head_init
  std::string head_lr = "auto";                          // finetune.head_lr: auto | lr
  std::vector<std::string> metrics;                      // train.metrics (make_metric names)
  std::string class_weights;              // train.class_weights: "" | balanced | w1,w2,...
  tune::BatchSizeOptions tune;            // tune.*
  bool diagnostics = true;                // diagnose.enabled
  int64_t diagnose_every = 0;             // diagnose.every (0: train.log_every)
  bool preflight = true;                  // diagnose.preflight
  diagnose::DiagnosticsOptions diagnose;  // diagnose.activations, diagnose.auto_remedy
  RuntimeOptions runtime;                 // runtime.threads, openblas_threads, malloc_tuning
  std::string channels_last = "auto";     // runtime.channels_last: auto | on | off
  std::string dist_backend = "auto";      // dist.backend: auto | gloo | nccl
  double dist_timeout = 60.0;             // dist.timeout (seconds)
  double dist_bucket_mb = 25.0;           // dist.bucket_mb
  std::string progress = "auto";          // ui.progress: auto | bar | plain | off
  bool dashboard = true;                  // ui.dashboard
  int64_t port = 6150;                    // ui.port
  double linger = 60.0;                   // ui.linger (seconds; the CLI, on a terminal)
};

// One setting: its schema entry and the field it is bound to.
struct SettingBinding {
  SettingSpec spec;
  std::function<void(SessionOptions&, const ConfigValue&)> write;
  std::function<ConfigValue(const SessionOptions&)> read;
};

// train.class_weights = "w1,w2,...": the weights, or nullopt when the text is not such a list.
std::optional<std::vector<double>> parse_class_weights(const std::string& text);

// The table, in the order settings are printed and written to config.toml.
const std::vector<SettingBinding>& setting_bindings();
// The schema the table gives (shared by every Config made from it).
std::shared_ptr<const Schema> settings_schema();
// Every setting at its default, each with the reason for it (not yet resolved).
Config default_config();

// The options a resolved config describes.
SessionOptions session_options(const Config& config);
// The config that gives `options`: every field that differs from its setting's default is set
// with `source` ("library"). The result is resolved.
Config config_of(const SessionOptions& options, const std::string& source = "library");

}  // namespace trainscope
