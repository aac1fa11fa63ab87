// The trainscope command line: parses, builds a Config, calls the library. User mistakes end
// with one line on stderr and exit status 2.

#include <trainscope/trainscope.h>

#include "dashboard_commands.h"
#include "fit_command.h"
#include "sweep_command.h"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <iostream>

namespace ts = trainscope;
namespace fs = std::filesystem;

namespace {

// What a fit command ended with, on stdout (errors on stderr), as its exit status.
int report(const ts::SessionResult& r) {
  if (!r.leader) return r.exit_code();
  if (!r.message.empty())
    std::fprintf(r.message.rfind("trainscope: ", 0) == 0 ? stderr : stdout, "%s\n",
                 r.message.c_str());
  return r.exit_code();
}

ts::Session make_session(ts::Config config) {
  ts::Session session(std::move(config));
  session.name_settings(ts::cli::flag_name);
  return session;
}

int run_train(const ts::cli::FitArgs& args) {
  ts::Session session = make_session(ts::cli::build_config(args));
  session.join();
  // The dashboard reads the run store from its own threads; it stops when training ends.
  auto dashboard = session.leader() ? ts::cli::start_train_dashboard(session.config()) : nullptr;
  const int code = report(session.train(!args.no_test));
  ts::cli::linger(dashboard.get(), session.config());
  return code;
}

struct ResumeArgs {
  std::string run;
  std::string runs_dir = "runs";
  std::vector<std::string> sets;
  std::string epochs;
  std::string progress;
  bool no_test = false;
  bool no_dashboard = false;
};

int run_resume(const ResumeArgs& args) {
  std::vector<std::string> sets = args.sets;
  if (!args.epochs.empty()) sets.push_back("train.max_epochs=" + args.epochs);
  if (!args.progress.empty()) sets.push_back("ui.progress=" + args.progress);
  if (args.no_dashboard) sets.push_back("ui.dashboard=false");
  ts::Session session = ts::Session::of_run(ts::session::find_run(args.run, args.runs_dir), sets);
  session.name_settings(ts::cli::flag_name);
  session.join();
  auto dashboard = session.leader() ? ts::cli::start_train_dashboard(session.config()) : nullptr;
  const int code = report(session.resume(!args.no_test));
  ts::cli::linger(dashboard.get(), session.config());
  return code;
}

struct RunArgs {
  std::string run;
  std::string runs_dir = "runs";
  std::string weights = "best";
  std::string out;
  std::string format = "state_dict";
};

int run_test(const RunArgs& args) {
  const fs::path dir = ts::session::find_run(args.run, args.runs_dir);
  ts::Session session = ts::Session::of_run(dir, {"ui.progress=plain"});
  std::printf("testing %s weights of %s\n", args.weights.c_str(), dir.c_str());
  ts::EvalResult test = session.test(args.weights);
  if (auto acc = test.metrics.find("accuracy"); acc != test.metrics.end())
    std::printf("test accuracy: %.2f%%\n", 100.0 * acc->second);
  return 0;
}

int run_export(const RunArgs& args) {
  ts::Session session = ts::Session::of_run(ts::session::find_run(args.run, args.runs_dir));
  const auto format = *ts::value_of(args.format, ts::kExportFormatNames);
  const ts::ExportResult r = session.export_weights(args.weights, args.out, format);
  std::printf("exported %lld tensors of %s (%lld parameters) from %s to %s\n",
              static_cast<long long>(r.tensors), r.model_name.c_str(),
              static_cast<long long>(r.parameters), r.from.c_str(), r.file.c_str());
  if (format == ts::ExportFormat::kTorchScript)
    std::printf("in Python: model = torch.jit.load(\"%s\"); in C++: torch::jit::load(\"%s\")\n",
                r.file.c_str(), r.file.c_str());
  else
    std::printf("in Python: model.load_state_dict(torch.load(\"%s\"))\n", r.file.c_str());
  return 0;
}

struct CheckArgs {
  std::string only;  // "", "preflight" or "data"
  std::string out;   // the data checks' JSON report
};

int run_check(const ts::cli::FitArgs& args, const CheckArgs& check) {
  ts::Session session = make_session(ts::cli::build_config(args));
  bool errors = false;
  if (check.only != "data")
    for (const auto& f : session.check(true))
      errors |= f.severity == ts::diagnose::Severity::kError;
  if (check.only != "preflight") {
    auto r = session.check_data(check.out);
    std::printf("%s\n", r.summary.c_str());
    for (const auto& f : r.report.findings) errors |= f.severity == ts::diagnose::Severity::kError;
  }
  return errors ? 1 : 0;
}

struct PreviewArgs {
  std::string out = "augment-preview.png";
  int64_t count = 8, rows = 3, scale = 3;
};

}  // namespace

int main(int argc, char** argv) {
  // GNU OpenMP reads OMP_WAIT_POLICY when it loads: a command that trains restarts itself with
  // PASSIVE unless the environment chose a policy (bench/README.md measures both).
  if (argc > 1 && std::getenv("OMP_WAIT_POLICY") == nullptr) {
    const std::string command = argv[1];
    if (command == "train" || command == "finetune" || command == "resume") {
      setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
      setenv("TRAINSCOPE_OMP_RESTARTED", "1", 1);
      execv("/proc/self/exe", argv);
      unsetenv("TRAINSCOPE_OMP_RESTARTED");  // exec failed: go on as we are
      unsetenv("OMP_WAIT_POLICY");
    }
  }
  // --nproc N: this command as N data-parallel ranks, unless this process already is one.
  {
    std::vector<std::string> args(argv, argv + argc);
    int nproc = 0;
    try {
      nproc = ts::dist::take_nproc(args);
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
        return ts::dist::launch_local(nproc, args);
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

  ts::cli::FitArgs train_args;
  auto* train =
      app.add_subcommand("train", "train a model (default: the reference CNN on Fashion-MNIST)");
  ts::cli::FitCommand train_command{train, train_args};
  train_command.add_fit_options(ts::cli::kTrainShortcuts);

  ts::cli::FitArgs finetune_args;
  auto* finetune = app.add_subcommand(
      "finetune",
      "fine-tune a trained model on new data: its last layer is replaced by a new head (zero "
      "weights) for the new classes and trains alone on the frozen backbone's cached features, "
      "at an lr from a range test; once its validation loss stops improving the backbone "
      "unfreezes at train.lr x 0.3 (warmed up over an epoch), and the best epoch by validation "
      "decides which phase's weights are kept. --head-only trains the head alone");
  ts::cli::FitCommand finetune_command{finetune, finetune_args};
  finetune_command.add_fit_options(ts::cli::kTrainShortcuts);
  finetune_command.add_fit_options(ts::cli::kFinetuneShortcuts);
  finetune->get_option("--from")->required()->description(
      "what to fine-tune: a run directory (or a run name under --runs-dir; its best.ckpt), a "
      ".ckpt checkpoint, or a TorchScript file saved from Python");
  finetune->get_option("--epochs")
      ->description("same as --set train.max_epochs=VALUE (default 30 when fine-tuning)");
  finetune->add_flag("--train-bn", finetune_args.train_bn,
                     "let the backbone's BatchNorm layers update their statistics (same as --set "
                     "finetune.train_bn=true)");
  finetune->add_flag("--head-only", finetune_args.head_only,
                     "train the new head alone: the backbone never unfreezes (same as --set "
                     "finetune.head_only=true)");

  CheckArgs check_args;
  auto* check = app.add_subcommand(
      "check",
      "check the setup and the data before training, and exit (takes train's options): the "
      "pre-flight checks (initial loss, one-batch overfit, gradients, input scale, labels), then "
      "the data checks (copies across train, val and test, label suspects from a cheap model's "
      "out-of-fold predictions, class balance, broken inputs), stored in a run for the "
      "dashboard; exit 1 when a check finds an error");
  ts::cli::FitCommand check_command{check, train_args};
  check_command.add_settings_options();
  check_command.add_shortcut_options(ts::cli::kTrainShortcuts);
  check->add_option("--only", check_args.only, "run only the preflight or the data checks")
      ->check(CLI::IsMember({"preflight", "data"}));
  check->add_option("--out", check_args.out,
                    "JSON file for the data checks' report (default: data_check.json in the "
                    "check's run directory)");

  std::string diagnose_run, diagnose_runs_dir = "runs";
  auto* diagnose =
      app.add_subcommand("diagnose", "print the diagnostics report of a run, finished or not");
  diagnose->add_option("RUN", diagnose_run, "run directory, or a run name under --runs-dir")
      ->required();
  diagnose->add_option("--runs-dir", diagnose_runs_dir, "directory of runs (default \"runs\")");
  bool verify = false;
  ts::VerifyOptions verify_options;
  diagnose->add_flag("--verify", verify,
                     "replay the run with and without each remedy that proposes settings (a short "
                     "budget forked from the checkpoint before the finding, or from the start "
                     "where a checkpoint cannot take the remedy; paired seeds) and report the "
                     "measured effect on validation loss and accuracy; the replays are runs of "
                     "their own");
  diagnose
      ->add_option("--seeds", verify_options.seeds,
                   "--verify: paired seeds, the run's own and the next ones (default 3)")
      ->check(CLI::Range(1, 20));
  diagnose
      ->add_option("--epochs", verify_options.epochs,
                   "--verify: epochs each replay trains after where it starts (default: up to "
                   "its finding's epoch + 2, at least 2)")
      ->check(CLI::Range(1, 100000));
  diagnose->add_option("--only", verify_options.kinds,
                       "--verify: the finding to verify (repeatable; default every one with "
                       "settings to change)");

  std::string lr_plot;
  auto* tune = app.add_subcommand("tune", "search hyperparameters");
  tune->require_subcommand(1);
  auto* tune_lr =
      tune->add_subcommand("lr",
                           "learning-rate range test (1e-7 to 10): suggests an lr, stores the "
                           "curve in a run and plots it to a PNG");
  ts::cli::FitCommand tune_command{tune_lr, train_args};
  tune_command.add_settings_options();
  tune_lr->add_option("--out", lr_plot,
                      "PNG file for the curve (default: lr_find.png in the run directory)");

  PreviewArgs preview_args;
  auto* data_cmd = app.add_subcommand("data", "inspect the data pipeline");
  data_cmd->require_subcommand(1);
  auto* preview = data_cmd->add_subcommand(
      "preview",
      "write a PNG grid of training images (top row) and their augmentations (rows below)");
  ts::cli::FitCommand preview_command{preview, train_args};
  preview_command.add_settings_options();
  preview->add_option("--out", preview_args.out, "PNG file to write (default augment-preview.png)");
  preview->add_option("--count", preview_args.count, "images per row (default 8)")
      ->check(CLI::Range(1, 64));
  preview->add_option("--rows", preview_args.rows, "augmented rows (default 3)")
      ->check(CLI::Range(0, 16));
  preview->add_option("--scale", preview_args.scale, "pixel scale (default 3)")
      ->check(CLI::Range(1, 16));

  ts::cli::SweepArgs sweep_args;
  auto* sweep = ts::cli::add_sweep_command(app, sweep_args);

  ts::cli::DashboardCommands dashboard_commands;
  ts::cli::add_dashboard_commands(app, dashboard_commands);

  RunArgs test_args;
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

  RunArgs export_args;
  auto* export_cmd = app.add_subcommand("export",
                                        "write a run's weights as a state dict that Python's "
                                        "torch.load reads, or as a TorchScript module");
  export_cmd->add_option("RUN", export_args.run, "run directory, or a run name under --runs-dir")
      ->required();
  export_cmd->add_option("--runs-dir", export_args.runs_dir,
                         "directory of runs (default \"runs\")");
  export_cmd->add_option("--weights", export_args.weights, "best or last (default \"best\")")
      ->check(CLI::IsMember({"best", "last"}));
  export_cmd->add_option("--out", export_args.out,
                         "file to write (default: <run>/<weights>.pt, or "
                         "<run>/<weights>.torchscript.pt)");
  export_cmd
      ->add_option("--format", export_args.format,
                   "state_dict (default; torch.load + load_state_dict) or torchscript (a "
                   "deployable module with the trained weights, for models trained from "
                   "torchscript:PATH)")
      ->check(CLI::IsMember({"state_dict", "torchscript"}));

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
      train_command.collect();
      return run_train(train_args);
    }
    if (finetune->parsed()) {
      finetune_command.collect();
      return run_train(finetune_args);
    }
    if (sweep->parsed()) return ts::cli::run_sweep(sweep_args);
    if (int code = 0; ts::cli::run_dashboard_commands(dashboard_commands, code)) return code;
    if (check->parsed()) {
      check_command.collect();
      return run_check(train_args, check_args);
    }
    if (tune_lr->parsed()) {
      ts::Session session = make_session(ts::cli::build_config(train_args));
      std::printf("%s\n", session.find_lr(lr_plot).summary.c_str());
      return 0;
    }
    if (preview->parsed()) {
      ts::Session session = make_session(ts::cli::build_config(train_args));
      std::printf("%s\n", session
                              .preview(preview_args.out, preview_args.count, preview_args.rows,
                                       preview_args.scale)
                              .c_str());
      return 0;
    }
    if (resume->parsed()) return run_resume(resume_args);
    if (export_cmd->parsed()) return run_export(export_args);
    if (diagnose->parsed()) {
      const auto run = ts::session::find_run(diagnose_run, diagnose_runs_dir);
      if (!verify &&
          (diagnose->count("--seeds") || diagnose->count("--epochs") || diagnose->count("--only")))
        throw ts::ConfigError("--seeds, --epochs and --only go with --verify");
      std::printf("%s", ts::diagnose::diagnose_report(run.string(), ts::cli::flag_name).c_str());
      if (!verify) return 0;
      std::printf("\n");
      std::fflush(stdout);
      const auto r = ts::verify_remedies(run, verify_options);
      std::printf("%s", r.summary.substr(r.summary.find('\n') + 1).c_str());
      return r.interrupted ? 130 : 0;
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
