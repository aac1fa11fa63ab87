// What checkpoints cost an epoch: Trainer::fit of a ~50 MB model (an MLP 784-4096-2304-10,
// 12.7 M parameters) with checkpoints off, written inline, and written in the background, in
// one process, modes interleaved over the reps so that machine noise hits them alike.
//
//   bench_checkpoint [--reps 3] [--epochs 3] [--examples 4096] [--dir /tmp/ts-bench-ckpt]
//
// Each fit saves last.ckpt (and its links) at every epoch end; an epoch's wall time runs from one
// epoch end to the next, checkpoint included, and the first epoch (which also carries the
// fit-start save) is left out. Prints a table and one RESULT {json} line per fit on stderr.
#include <trainscope/trainscope.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

namespace ts = trainscope;
using Clock = std::chrono::steady_clock;

namespace {

// Runs after every other callback, the checkpoint's save included.
class EpochClock : public ts::Callback {
 public:
  std::string name() const override { return "epoch_clock"; }
  ts::CallbackOrder order() const override { return static_cast<ts::CallbackOrder>(1000); }
  void on_fit_start(ts::TrainState&) override { marks.assign(1, Clock::now()); }
  void on_epoch_end(ts::TrainState&) override { marks.push_back(Clock::now()); }
  std::vector<Clock::time_point> marks;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3, epochs = 3;
  int64_t examples = 4096;
  std::string dir = "/tmp/ts-bench-ckpt";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--reps") reps = std::atoi(argv[i + 1]);
    if (flag == "--epochs") epochs = std::atoi(argv[i + 1]);
    if (flag == "--examples") examples = std::atoll(argv[i + 1]);
    if (flag == "--dir") dir = argv[i + 1];
  }
  ts::configure_process();
  ts::data::IdxOptions data_options;
  data_options.limit = examples + examples / 9;  // 10% of it is held out for validation
  data_options.test_limit = 100;
  auto data = ts::data::fashion_mnist(data_options);

  const std::vector<std::string> modes = {"none", "inline", "background"};
  std::map<std::string, std::vector<double>> epoch_s, capture_s, write_s;
  double checkpoint_mb = 0;
  for (int rep = 0; rep < reps; ++rep) {
    for (const auto& mode : modes) {
      torch::manual_seed(0);
      ts::models::MlpOptions m;
      m.hidden = {4096, 2304};
      auto model = ts::models::mlp(m);
      ts::SessionOptions o;
      o.train.runs_dir(dir).run_name(mode + "-" + std::to_string(rep));
      o.train.max_epochs(epochs).batch_size(128);
      o.progress = "off";
      o.early_stopping = o.diagnostics = false;
      o.checkpoints = mode != "none";
      o.checkpoint.background = mode == "background";
      auto trainer_ptr = ts::session::make_trainer(o);
      ts::Trainer& trainer = *trainer_ptr;
      auto clock = std::make_shared<EpochClock>();
      trainer.add_callback(clock);
      auto fit = trainer.fit(model, data.train, data.val);
      for (size_t e = 2; e < clock->marks.size(); ++e)
        epoch_s[mode].push_back(
            std::chrono::duration<double>(clock->marks[e] - clock->marks[e - 1]).count());
      for (const auto& cb : trainer.callbacks())
        if (auto c = std::dynamic_pointer_cast<ts::callbacks::ModelCheckpoint>(cb)) {
          // Per save: fit start plus one per epoch.
          capture_s[mode].push_back(c->capture_seconds() / (epochs + 1));
          write_s[mode].push_back(c->write_seconds() / (epochs + 1));
        }
      if (mode == "background")
        checkpoint_mb = std::filesystem::file_size(fit.run_dir / "checkpoints" / "last.ckpt") / 1e6;
      std::fprintf(
          stderr, "RESULT {\"mode\": \"%s\", \"rep\": %d, \"params\": %lld, \"epoch_s\": %.3f}\n",
          mode.c_str(), rep, static_cast<long long>(model.num_parameters()), median(epoch_s[mode]));
      std::filesystem::remove_all(fit.run_dir);
    }
  }
  const double base = median(epoch_s["none"]);
  std::printf("model: MLP 784-4096-2304-10, %.1f MB of float32 weights; checkpoint file %.0f MB\n",
              12.68e6 * 4 / 1e6, checkpoint_mb);
  std::printf("%d reps x %d timed epochs of %lld examples (batch 128)\n\n", reps, epochs - 1,
              static_cast<long long>(examples));
  std::printf(
      "| checkpoints | epoch s (median) | cost per epoch | share of epoch | training thread per "
      "save | writing per save |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const auto& mode : modes) {
    const double e = median(epoch_s[mode]);
    if (mode == "none") {
      std::printf("| off | %.2f | - | - | - | - |\n", e);
      continue;
    }
    const double capture = median(capture_s[mode]), write = median(write_s[mode]);
    // Inline, the training thread also does the writing.
    const double blocking = mode == "inline" ? capture + write : capture;
    std::printf("| %s | %.2f | %+.2f s | %+.1f%% | %.2f s | %.2f s |\n", mode.c_str(), e, e - base,
                100.0 * (e - base) / base, blocking, write);
  }
  return 0;
}
