#pragma once
// What the examples share: each builds its own data and model and trains them through a Session
// with every default on (printed settings, pre-flight checks, diagnostics, early stopping,
// checkpoints, the run store the dashboard and `trainscope report` read, the test pass). These
// flags let the test suite run them small, interrupt them and resume them:
//   --runs DIR           where the run goes (default runs)
//   --name NAME          the run's name (default: the example's name and the time)
//   --epochs N           train.max_epochs (default: the defaults policy's)
//   --interrupt-after K  stop with SIGINT after K optimizer steps, as Ctrl-C would (exit 130)
//   --resume             continue the run --runs/--name from its newest checkpoint
// and print, last, a hash of the trained weights: a resumed run prints the uninterrupted one's.
#include <trainscope/trainscope.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>

namespace example {

namespace ts = trainscope;

struct Args {
  std::string runs = "runs";
  std::string name;
  int64_t epochs = 0;
  int64_t interrupt_after = 0;
  bool resume = false;
  std::string corpus;       // text_classifier: the corpus file to read
  std::string make_corpus;  // text_classifier: write a corpus there and stop
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw ts::ConfigError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--runs")
      a.runs = value();
    else if (flag == "--name")
      a.name = value();
    else if (flag == "--epochs")
      a.epochs = std::stoll(value());
    else if (flag == "--interrupt-after")
      a.interrupt_after = std::stoll(value());
    else if (flag == "--resume")
      a.resume = true;
    else if (flag == "--corpus")
      a.corpus = value();
    else if (flag == "--make-corpus")
      a.make_corpus = value();
    else
      throw ts::ConfigError("unknown flag " + flag);
  }
  return a;
}

// Ctrl-C after a number of steps: the fit stops after that batch and saves it.
class InterruptAfter : public ts::Callback {
 public:
  explicit InterruptAfter(int64_t steps) : steps_(steps) {}
  std::string name() const override { return "interrupt_after"; }
  void on_train_batch_end(ts::TrainState& state) override {
    if (state.global_step == steps_) std::raise(SIGINT);
  }

 private:
  int64_t steps_;
};

// FNV-1a over every parameter's and buffer's bytes: equal hashes, equal weights bit for bit.
inline uint64_t weights_hash(const ts::Model& model) {
  uint64_t h = 1469598103934665603ULL;
  auto add = [&](const torch::Tensor& t) {
    const auto c = t.detach().to(torch::kCPU).contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  for (const auto& p : model.module().parameters()) add(p);
  for (const auto& b : model.module().buffers()) add(b);
  return h;
}

// Every default, with the flags and the example's own settings on top.
inline ts::Config config(const Args& a, const std::string& model_name) {
  ts::Config c = ts::default_config();
  c.set("run.dir", a.runs);
  c.set("run.name", a.name.empty() ? model_name + "-example" : a.name);
  if (a.epochs > 0) c.set("train.max_epochs", a.epochs);
  return c;
}

// Trains (or resumes) the session `setup` gives its data, model and code; prints the result and
// the weights' hash. Returns the exit status: 0 done, 130 interrupted, 2 a mistake.
inline int run(const Args& a, ts::Config config, const std::function<void(ts::Session&)>& setup) {
  try {
    ts::Session session = a.resume ? ts::Session::of_run(std::filesystem::path(a.runs) / a.name)
                                   : ts::Session(config);
    setup(session);
    if (a.interrupt_after > 0)
      session.add_callback(std::make_shared<InterruptAfter>(a.interrupt_after));
    const ts::SessionResult r = a.resume ? session.resume() : session.train();
    std::cout << r.message << "\n";
    if (r.test)
      for (const auto& [name, value] : r.test->metrics)
        std::printf("test %s %.4f\n", name.c_str(), value);
    std::printf("weights fnv1a %016llx\n",
                static_cast<unsigned long long>(weights_hash(session.current_model())));
    return r.exit_code();
  } catch (const ts::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace example
