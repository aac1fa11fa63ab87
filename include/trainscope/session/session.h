#pragma once
// Session: what trainscope's commands do (train, finetune, resume, test, export, check, tune lr,
// data preview), as one library object built from a Config. The CLI parses its command line
// into a Config, calls a Session and prints; a library user does the same in code and trains
// exactly as `trainscope train` does on the same settings (the test suite checks the weights
// bit for bit).
//
//   ts::Config config = ts::default_config();
//   config.set("train.max_epochs", int64_t{10});
//   ts::Session session(config);
//   ts::SessionResult r = session.train();  // data, augmentation, model, batch choice,
//                                           // pre-flight, default callbacks, test pass
//
// A Session drives one command. Not thread-safe. Throws trainscope::Error (ConfigError,
// DataError, CheckpointError, ShapeError) for anything the user can fix; JobError when a
// data-parallel job fails.

#include <trainscope/config.h>
#include <trainscope/data/dataset.h>
#include <trainscope/diagnose/data_checks.h>
#include <trainscope/diagnose/detectors.h>
#include <trainscope/models/model.h>
#include <trainscope/session/settings.h>
#include <trainscope/train/callback.h>
#include <trainscope/train/trainer.h>
#include <trainscope/tune/batch_size.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trainscope {

namespace dist {
class DataParallel;
}
namespace data {
class Transform;
}
namespace session {
struct FinetuneSource;
}

// How a fit command ended. exit_code() is what the CLI returns for it.
struct SessionResult {
  enum class Status {
    kFinished,          // the fit ended (max_epochs, early stopping, ...) and was tested
    kInterrupted,       // Ctrl-C or SIGTERM; the state after the last batch is saved when it can be
    kCheckpointFailed,  // a save failed (checkpoint.on_error = "stop"): resume once it is fixed
  };
  Status status = Status::kFinished;
  FitResult fit;
  std::optional<EvalResult> test;  // the test pass (unless skipped or a rank other than 0)
  // What happened and what to type next, for the user ("interrupted; the state after the last
  // batch is saved: trainscope resume cnn-20261202-101500"). Errors start with "trainscope: ".
  std::string message;
  bool leader = true;     // rank 0 (or a single process): the one that reports
  int exit_code() const;  // 0 finished, 130 interrupted, 1 checkpoint failure
};

// What `trainscope export` writes: a state dict (Python's torch.load and load_state_dict read it),
// or a TorchScript module with the trained weights (torch.jit.load, torch::jit::load), for models
// trained from model.name = "torchscript:PATH".
enum class ExportFormat { kStateDict, kTorchScript };
inline constexpr EnumName<ExportFormat> kExportFormatNames[] = {
    {ExportFormat::kStateDict, "state_dict"}, {ExportFormat::kTorchScript, "torchscript"}};

// `trainscope export`: the file written and what it holds.
struct ExportResult {
  std::filesystem::path file;
  int64_t tensors = 0;
  int64_t parameters = 0;
  std::string model_name;
  std::string from;  // "best.ckpt (epoch 7, val_loss 0.3121)"
};

// `trainscope tune lr`: the curve's run, its PNG and the suggestion.
struct LrFindResult {
  std::filesystem::path run_dir, png;
  double lr = 0.0;
  bool confident = false;
  std::string summary;  // the lines the CLI prints
};

// `trainscope check` (data checks): the report, the run that stores it, its JSON file and the
// lines the CLI prints.
struct DataCheckResult {
  diagnose::DataReport report;
  std::filesystem::path run_dir, json;
  std::string summary;
};

class Session {
 public:
  // Resolves `config` (dependent defaults, ranges) and checks that its device exists before
  // anything loads. Throws ConfigError naming the setting, where it came from and its value.
  explicit Session(Config config);
  // The run in `run_dir` (its config.toml), with `sets` ("key=value", as --set) on top, for
  // resume(), test() and export_weights(). run.dir becomes the run's parent directory.
  static Session of_run(const std::filesystem::path& run_dir,
                        const std::vector<std::string>& sets = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Config& config() const { return config_; }
  // What the config says, as options (session/settings.h).
  const SessionOptions& options() const { return options_; }

  // Bring your own: these replace what data.* and model.* describe. The model must fit the data
  // (outputs for its classes or targets); the data's input_shape and normalization are recorded.
  Session& data(data::DataSplits splits);
  Session& model(Model model);
  // A loss of your own instead of train.loss (TrainerOptions::loss_function), a metric of your
  // own beside train.metrics (reported as <split>_<name>, rankable by train.monitor), and a step
  // of your own instead of forward and loss (TrainerOptions::step). Code, not settings: a resume
  // or test of the run passes them again.
  Session& loss(LossFunction loss);
  Session& add_metric(std::shared_ptr<const Metric> metric);
  Session& step(StepFunction step);
  // Runs beside the default callbacks (progress, run logging, TensorBoard, diagnostics, lr
  // schedule, early stopping, checkpoints), in CallbackOrder.
  Session& add_callback(std::shared_ptr<Callback> callback);
  // How printed findings and messages name the settings they propose. Null (the default): as
  // config keys ("train.lr = 0.0001"), the way a library user sets them; the CLI names them as
  // its flags ("--lr 0.0001").
  Session& name_settings(diagnose::SettingNamer namer);

  // Joins the data-parallel job the environment describes (RANK, WORLD_SIZE, MASTER_ADDR,
  // MASTER_PORT; nothing without them) and configures the process for training (threads,
  // OpenBLAS, malloc; printed unless ui.progress = "off"). Done once; train() and resume() call
  // it when the caller has not (the CLI calls it first to start the dashboard on rank 0 only).
  void join();
  // Whether this process reports (rank 0, or not data parallel).
  bool leader() const;

  // trainscope train / finetune (finetune.from set): loads the data and builds the model,
  // chooses the batch size (train.batch_size = "auto"), runs the pre-flight checks, fits with
  // the default callbacks, records the data and the search in the run, and tests the best
  // weights unless `run_test` is false.
  SessionResult train(bool run_test = true);
  // trainscope resume (of_run sessions): continues the fit from the run's newest good
  // checkpoint, exactly, then tests. Settings changed through `sets` are written to the run's
  // config.toml once the checkpoint is restored.
  SessionResult resume(bool run_test = true);
  // trainscope test (of_run sessions): evaluates the run's `weights` ("best" or "last")
  // checkpoint on the test split and stores the result, with the most confident mistakes as
  // images, in the run.
  EvalResult test(const std::string& weights = "best");
  // trainscope export (of_run sessions): the run's `weights` in `format`; `out` empty:
  // <run>/<weights>.pt (state dict) or <run>/<weights>.torchscript.pt. Throws ConfigError for
  // TorchScript export of a zoo model.
  ExportResult export_weights(const std::string& weights = "best",
                              const std::filesystem::path& out = {},
                              ExportFormat format = ExportFormat::kStateDict);
  // trainscope check: the pre-flight checks alone, printed when `print`.
  std::vector<diagnose::Finding> check(bool print = true);
  // trainscope check (data checks): the data.* splits, without augmentation, checked for
  // copies across splits, label suspects, class imbalance and broken inputs
  // (diagnose/data_checks.h). Stored in a run of its own (the dashboard shows the suspects and
  // the copies as images) and written as JSON to `json` (empty: data_check.json in that run).
  // The options are the config's check.* settings, or `options` when given.
  DataCheckResult check_data(const std::filesystem::path& json = {});
  DataCheckResult check_data(const std::filesystem::path& json, diagnose::DataCheckOptions options);
  // trainscope tune lr: the range test, stored in a run of its own and plotted to `png`
  // (empty: lr_find.png in that run).
  LrFindResult find_lr(const std::filesystem::path& png = {});
  // trainscope data preview: a PNG grid of training images (top row) and `rows` augmented
  // rows. Returns the line the CLI prints.
  std::string preview(const std::filesystem::path& png, int64_t count, int64_t rows, int64_t scale);

  // The data and model of the last command (empty before).
  const data::DataSplits& splits() const { return data_; }
  Model& current_model() { return model_; }

 private:
  void load();  // data, model, augmentation, fine-tuning source
  // The zoo model model.* describes, or the TorchScript module of model.name = "torchscript:PATH"
  // (checked to give `outputs` outputs), for inputs of `input_shape`.
  Model build_model(const std::vector<int64_t>& input_shape, int64_t outputs);
  std::optional<tune::BatchSizeResult> choose_batch_size();
  std::unique_ptr<Trainer> make_trainer();
  // Fine-tuning a TorchScript source that does not say how its inputs were normalized: the
  // normalization probe's choice into data.mean and data.std (unless set), and the data
  // reloaded with it. Returns the line to print.
  std::string probe_normalization();
  void check_task_fits_data() const;  // throws ConfigError or ShapeError naming both
  void balance_classes();  // train.class_weights = "balanced" resolved from the training labels
  // Fine-tuning: finetune.head_lr = auto resolved by a range test on the cached features.
  void choose_head_lr();
  SessionResult finish(Trainer& trainer, const FitResult& fit,
                       const std::optional<tune::BatchSizeResult>& batch_search, bool run_test);
  bool print() const;
  // A choice the session made (batch size, lr, a source's normalization, a rank's threads):
  // into the config, with its source and reason, and the options follow.
  void set(const std::string& key, ConfigValue value, const std::string& source,
           const std::string& reason = "");
  TrainerOptions trainer_options() const;
  // The step of your own, or one around the loss of your own, for the pre-flight checks and the
  // batch probe; null when the fit uses the built-in loss.
  StepFunction own_step() const;

  Config config_;
  SessionOptions options_;
  std::filesystem::path run_dir_;  // of_run sessions
  std::vector<std::string> sets_;  // of_run sessions: what the user changed
  bool joined_ = false;
  data::DataSplits data_;
  bool own_data_ = false;
  Model model_;
  bool own_model_ = false;
  LossFunction own_loss_;
  std::vector<std::shared_ptr<const Metric>> own_metrics_;
  StepFunction own_step_;
  std::shared_ptr<data::Transform> augment_;
  std::unique_ptr<session::FinetuneSource> source_;
  std::string head_;  // fine-tuning: the new head's layer name
  std::vector<std::shared_ptr<Callback>> extra_callbacks_;
  diagnose::SettingNamer namer_;
  struct Job;
  std::unique_ptr<Job> job_;
};

namespace session {

// The callbacks a Session's fits run with, as `options` ask, in callback order: RunLogger,
// ProgressPrinter, TensorBoardLogger (kLogging; TensorBoard only with a run directory),
// Diagnostics, the lr schedule (none by default), EarlyStopping, ModelCheckpoint.
std::vector<std::shared_ptr<Callback>> default_callbacks(const SessionOptions& options);
// A Trainer over options.train with those callbacks: the Session's fit without its data, model,
// batch choice and pre-flight, for a library user who brings all of them.
std::unique_ptr<Trainer> make_trainer(const SessionOptions& options);

// The run `name` names: a run directory, or a run name under `runs_dir`. Throws Error naming
// both places looked at.
std::filesystem::path find_run(const std::string& name, const std::string& runs_dir);

// The device runtime.device names ("auto": CUDA when present). Throws ConfigError when it names
// a CUDA device this machine does not have.
torch::Device training_device(const Config& config);

}  // namespace session
}  // namespace trainscope
