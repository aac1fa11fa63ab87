// The trainscope command line: parses, builds a Config, calls the library. User mistakes end
// with one line on stderr and exit status 2.

#include <trainscope/trainscope.h>

#include <CLI/CLI.hpp>

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
  ts::data::IdxOptions o;
  const std::string& spec = config.get_string("data.dataset");
  o.dir = spec.rfind("idx:", 0) == 0 ? fs::path(spec.substr(4)) : fs::path(config.get_string("data.dir"));
  o.val_fraction = config.get_double("data.val_fraction");
  o.split_seed = static_cast<uint64_t>(config.get_int("data.split_seed"));
  o.limit = config.get_int("data.limit");
  o.test_limit = config.get_int("data.test_limit");
  return spec == "fashion-mnist" ? ts::data::fashion_mnist(o) : ts::data::load_idx_dir(o);
}

ts::Model build_model(const ts::Config& config, const ts::data::DataSplits& data) {
  ts::models::ModelSpec spec;
  spec.name = config.get_string("model.name");
  spec.input_shape = data.input_shape;
  spec.outputs = data.num_classes > 0 ? data.num_classes : 1;
  spec.channels = config.get_ints("model.channels");
  spec.hidden = config.get_ints("model.hidden");
  spec.dropout = config.get_double("model.dropout");
  // Weights are drawn from torch's global generator: seed it so that a run is reproducible.
  torch::manual_seed(static_cast<uint64_t>(config.get_int("train.seed")));
  return ts::models::make_model(spec);
}

std::string percent(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
  return buf;
}

int run_train(const TrainArgs& args) {
  ts::Config config = build_config(args);
  configure_runtime(config, config.get_string("ui.progress") != "off");
  auto data = load_data(config);
  ts::Model model = build_model(config, data);

  ts::TrainerOptions options = ts::TrainerOptions::from(config);
  options.class_names(data.class_names);
  ts::Trainer trainer(options);
  ts::FitResult fit = trainer.fit(model, data.train, data.val);
  if (auto run = trainer.run()) {
    run->store().set_meta("data.mean", std::to_string(data.mean));
    run->store().set_meta("data.std", std::to_string(data.std));
  }
  if (fit.stop_reason == ts::StopReason::kInterrupted) {
    std::printf("interrupted; the best weights so far are in %s\n", (fit.run_dir / "checkpoints").c_str());
    return 130;
  }
  if (!args.no_test) {
    ts::EvalResult test = trainer.test(model, *data.test);
    auto acc = test.metrics.find("accuracy");
    std::printf("test %s: %s (best epoch %lld of %lld)\n", acc != test.metrics.end() ? "accuracy" : "loss",
                acc != test.metrics.end() ? percent(acc->second).c_str() : std::to_string(test.metrics["loss"]).c_str(),
                static_cast<long long>(fit.best_epoch), static_cast<long long>(fit.epochs));
  }
  if (!fit.run_dir.empty()) std::printf("run written to %s\n", fit.run_dir.c_str());
  return 0;
}

fs::path find_run(const TestArgs& args) {
  fs::path direct(args.run);
  if (fs::exists(direct / "run.sqlite")) return direct;
  fs::path under = fs::path(args.runs_dir) / args.run;
  if (fs::exists(under / "run.sqlite")) return under;
  throw ts::Error("no run named '" + args.run + "': neither " + direct.string() + " nor " + under.string() +
                  " holds a run.sqlite; `ls " + args.runs_dir + "` lists the runs");
}

int run_test(const TestArgs& args) {
  const fs::path dir = find_run(args);
  ts::Config config = ts::Config::defaults();
  config.merge_file(dir / "config.toml");
  config.set("ui.progress", std::string("plain"), "trainscope test");
  config.resolve();
  configure_runtime(config, false);
  auto data = load_data(config);
  ts::Model model = build_model(config, data);
  fs::path weights = dir / "checkpoints" / (args.weights + ".pt");
  ts::callbacks::load_weights(model.module(), weights);

  ts::TrainerOptions options = ts::TrainerOptions::from(config);
  options.class_names(data.class_names).runs_dir("").checkpoints(false).early_stopping(false);
  ts::Trainer trainer(options);
  trainer.attach_run(ts::track::Run::open(dir));
  std::printf("testing %s weights of %s\n", args.weights.c_str(), dir.c_str());
  ts::EvalResult test = trainer.test(model, *data.test);
  auto acc = test.metrics.find("accuracy");
  if (acc != test.metrics.end()) std::printf("test accuracy: %s\n", percent(acc->second).c_str());
  return 0;
}

std::string settings_help() {
  std::ostringstream o;
  o << "\nSettings (--set KEY=VALUE, or [section] key = value in a --config TOML file):\n";
  for (const auto& s : ts::Config::schema())
    o << "  " << s.key << " = " << ts::to_toml_literal(s.default_value) << "\n      " << s.help << "; default because "
      << s.reason << "\n";
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trainscope: train and test deep models on LibTorch, with a practitioner's defaults"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  TrainArgs train_args;
  auto* train = app.add_subcommand("train", "train a model (default: the reference CNN on Fashion-MNIST)");
  train->add_option("--config", train_args.config_file, "TOML file of settings (a run's config.toml works)")
      ->check(CLI::ExistingFile);
  train->add_option("--set", train_args.sets, "override a setting: --set train.lr=0.0003 (repeatable)");
  struct Shortcut {
    const char* flag;
    const char* key;
  };
  static const Shortcut shortcuts[] = {
      {"--epochs", "train.max_epochs"}, {"--lr", "train.lr"},       {"--batch-size", "train.batch_size"},
      {"--model", "model.name"},        {"--data", "data.dataset"}, {"--name", "run.name"},
      {"--runs-dir", "run.dir"},        {"--seed", "train.seed"},   {"--threads", "runtime.threads"},
      {"--progress", "ui.progress"},
  };
  static std::vector<std::string> shortcut_values(std::size(shortcuts));
  for (size_t i = 0; i < std::size(shortcuts); ++i) {
    const auto& spec = ts::Config::defaults().setting(shortcuts[i].key);
    std::string help = "same as --set " + std::string(shortcuts[i].key) + "=VALUE (default " +
                       ts::to_toml_literal(spec.value) + ")";
    train->add_option(shortcuts[i].flag, shortcut_values[i], help);
  }
  train->add_flag("--no-test", train_args.no_test, "skip evaluating the test split after training (default: test)");
  train->footer(settings_help());

  TestArgs test_args;
  auto* test = app.add_subcommand("test", "evaluate a run's weights on the test split and store the result");
  test->add_option("RUN", test_args.run, "run directory, or a run name under --runs-dir")->required();
  test->add_option("--runs-dir", test_args.runs_dir, "directory of runs (default \"runs\")");
  test->add_option("--weights", test_args.weights, "best or last (default \"best\")")
      ->check(CLI::IsMember({"best", "last"}));

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
      for (size_t i = 0; i < std::size(shortcuts); ++i)
        if (train->count(shortcuts[i].flag) > 0)
          train_args.shortcuts.push_back({shortcuts[i].key, shortcut_values[i], shortcuts[i].flag});
      return run_train(train_args);
    }
    return run_test(test_args);
  } catch (const ts::Error& e) {
    std::cerr << "trainscope: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    std::cerr << "trainscope: internal error in LibTorch: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "trainscope: internal error: " << e.what() << "\n";
    return 1;
  }
}
