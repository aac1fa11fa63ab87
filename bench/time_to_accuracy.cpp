// Time to a test accuracy with trainscope's defaults (issue 19): the Session of `trainscope train`
// with every default, plus one callback that evaluates the test split after each epoch, as the
// Python baseline (bench/python/fmnist_baseline.py --target) does, and stops at the first epoch
// that reaches the target. The test passes are timed apart and left out of the time to target,
// in both. Prints one line per epoch and a last RESULT line:
//   RESULT epochs=E seconds=S accuracy=A  (seconds from the start of main to the end of epoch E)
// Usage: bench_time_to_accuracy [TARGET=0.91] [RUNS_DIR=/tmp] [KEY=VALUE...]
//   (each KEY=VALUE as `trainscope train --set KEY=VALUE`, for the rows that are not the defaults)
// Run with OMP_WAIT_POLICY=PASSIVE, as the CLI restarts itself with it (bench/run_epoch_bench.sh).
#include <trainscope/trainscope.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace ts = trainscope;
using Clock = std::chrono::steady_clock;

namespace {

class TestEachEpoch : public ts::Callback {
 public:
  // The session's test split, loaded by the time the first epoch ends.
  TestEachEpoch(const ts::Session& session, double target, Clock::time_point start)
      : session_(session), target_(target), start_(start) {}
  std::string name() const override { return "test_each_epoch"; }
  // After early stopping and checkpoints have had the epoch: the weights the fit has now.
  ts::CallbackOrder order() const override { return ts::CallbackOrder::kCheckpoint; }
  void on_epoch_end(ts::TrainState& state) override {
    const auto t0 = Clock::now();
    const double until_now = seconds(start_, t0) - testing_;
    ts::Trainer evaluator(ts::TrainerOptions().runs_dir("").batch_size(1000));
    const double accuracy =
        evaluator.test(*state.model, *session_.splits().test).metrics.at("accuracy");
    testing_ += seconds(t0, Clock::now());
    std::printf("epoch %lld: %.1f s, test accuracy %.4f\n", static_cast<long long>(state.epoch),
                until_now, accuracy);
    std::fflush(stdout);
    if (accuracy >= target_ && epochs_ == 0) {
      epochs_ = state.epoch, seconds_ = until_now, accuracy_ = accuracy;
      state.request_stop(ts::StopReason::kThreshold, "test accuracy reached the target");
    }
  }
  int64_t epochs_ = 0;
  double seconds_ = 0.0, accuracy_ = 0.0;

 private:
  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  const ts::Session& session_;
  double target_;
  Clock::time_point start_;
  double testing_ = 0.0;
};

}  // namespace

int main(int argc, char** argv) {
  const auto start = Clock::now();
  const double target = argc > 1 ? std::stod(argv[1]) : 0.91;
  const std::string runs = argc > 2 ? argv[2] : "/tmp";
  ts::configure_process();
  ts::Config config = ts::default_config();
  config.set("run.dir", runs);
  config.set("run.name", std::string("time-to-accuracy"));
  for (int i = 3; i < argc; ++i) config.set_from_string(argv[i]);
  ts::Session session(config);
  auto probe = std::make_shared<TestEachEpoch>(session, target, start);
  session.add_callback(probe);
  session.train(/*run_test=*/false);
  if (probe->epochs_ == 0) {
    std::printf("RESULT epochs=0 seconds=nan accuracy=nan (the target was not reached)\n");
    return 1;
  }
  std::printf("RESULT epochs=%lld seconds=%.1f accuracy=%.4f\n",
              static_cast<long long>(probe->epochs_), probe->seconds_, probe->accuracy_);
  return 0;
}
