// Fixture runs for the dashboard's browser tests, written with the real RunStore (and the real
// TensorBoard EventWriter for histograms).
//   make_runs DIR                 big (1,000,000 points in train/step_loss), cmp-a, cmp-b, two
//                                 trials of a sweep (sw-001, sw-002), a data check (dc), the test
//                                 results of a segmentation (seg) and a multilabel (tags) run, and
//                                 a
//   run
//                                 whose directory and name are hostile HTML
//                                 six runs of two lrs x three seeds (grp-lr0.001-s0, ...), and
//                                 cmp-a with histograms, system metrics and test series, cmp-b
//                                 with tags and a note
//   make_runs --add-finding RUN   appends a finding to a run (live or not)
//   make_runs --many N --points P DIR
//                                 N runs (many-000, ...) of P train/step_loss points each, with
//                                 per-epoch curves and varied settings: the render bench
#include <trainscope/track/annotations.h>
#include <trainscope/track/run_store.h>
#include <trainscope/track/tensorboard.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using trainscope::track::RunStore;
namespace track = trainscope::track;

namespace {

void finished_meta(RunStore& store, const std::string& name, int epochs) {
  store.set_meta("name", name);
  store.set_meta("status", "finished");
  store.set_meta("stop_reason", "max_epochs");
  store.set_meta("stop_message", "max_epochs=" + std::to_string(epochs) + " reached");
  store.set_meta("model", "mlp");
  store.set_meta("started_at", "1790000000");
  store.set_meta("ended_at", "1790000600");
  store.set_meta("epochs", std::to_string(epochs));
  store.set_meta("max_epochs", std::to_string(epochs));
}

void small_run(const fs::path& dir, const std::string& name, double lr, uint64_t seed) {
  fs::create_directories(dir);
  RunStore store(dir / "run.sqlite");
  finished_meta(store, name, 10);
  store.put_settings(
      {{"train.lr", std::to_string(lr), "--set", "set by the user"},
       {"train.batch_size", "128", "default", "a batch that keeps 2 CPU cores busy"}});
  const int64_t steps_per_epoch = 100;
  double noise = static_cast<double>(seed);
  for (int64_t step = 1; step <= 10 * steps_per_epoch; ++step) {
    noise = std::fmod(noise * 1103515245.0 + 12345.0, 2147483648.0);
    const double loss = 2.3 * std::exp(-step * lr * 2.0) + 0.2 + 0.1 * (noise / 2147483648.0 - 0.5);
    const int64_t epoch = 1 + (step - 1) / steps_per_epoch;
    store.add_metric({step, epoch, "train", "step_loss", loss, 1790000000.0 + step});
    store.add_metric({step, epoch, "train", "lr", lr, 1790000000.0 + step});
    if (step % 10 == 0) {
      store.add_metric({step, epoch, "train", "grad_norm", 5.0 * std::exp(-step / 400.0) + 0.3,
                        1790000000.0 + step});
      store.add_metric(
          {step, epoch, "train", "noise_scale", 100.0 * (1.0 + step / 200.0), 1790000000.0 + step});
      // Progressive sharpening up to the edge of stability, where it hovers (Cohen et al.).
      const double limit = 2.0 / lr;
      store.add_metric({step, epoch, "train", "sharpness/limit", limit, 1790000000.0 + step});
      store.add_metric({step, epoch, "train", "sharpness/step",
                        limit * std::min(0.95, 0.05 + step / 800.0), 1790000000.0 + step});
      for (int layer = 0; layer < 4; ++layer)
        store.add_metric({step, epoch, "train", "grad_norm/" + std::to_string(layer) + ".weight",
                          std::pow(10.0, -layer) * (1.0 + std::exp(-step / 300.0)),
                          1790000000.0 + step});
    }
    if (step % steps_per_epoch == 0) {
      store.add_metric({step, epoch, "train", "loss", loss, 1790000000.0 + step});
      store.add_metric(
          {step, epoch, "val", "loss", loss * 1.1 + 0.02 * epoch, 1790000000.0 + step});
      store.add_metric({step, epoch, "train", "accuracy", 1.0 - loss / 3.0, 1790000000.0 + step});
      store.add_metric({step, epoch, "val", "accuracy", 0.97 - loss / 3.0, 1790000000.0 + step});
    }
  }
  store.set_meta("best_epoch", "7");
  store.set_meta("best_val_loss", std::to_string(0.2 * 1.1 + 0.14));
  store.add_finding(
      {"overfitting", "warning", 800, 8,
       "validation loss rose for 3 epochs while training loss fell",
       R"({"val_loss_epoch_7": 0.36, "val_loss_epoch_10": 0.42, "train_val_gap": 0.18})",
       "add augmentation, dropout ({model.dropout=0.3}) or weight decay "
       "({train.weight_decay=0.0001}); the best epoch was 7",
       1790000500.0});
  store.put_result("test", "metrics", R"({"loss": 0.35, "accuracy": 0.88, "samples": 1000})");
  store.put_result("test", "confusion_matrix", "[[90,5,5],[3,88,9],[6,8,86]]");
  store.put_result(
      "test", "per_class",
      R"([{"class":"cat","precision":0.91,"recall":0.9,"f1":0.905,"support":100},)"
      R"({"class":"dog","precision":0.87,"recall":0.88,"f1":0.875,"support":100},)"
      R"({"class":"<b>bird</b>","precision":0.86,"recall":0.86,"f1":0.86,"support":100}])");
  store.add_checkpoint({"checkpoints/best.pt", "best", 7, 700, "val_loss", 0.36, 1790000400.0});
  store.add_checkpoint({"checkpoints/last.pt", "last", 10, 1000, "val_loss", 0.42, 1790000600.0});
}

// Test results as a segmentation run and a multilabel run record them (RunLogger::on_test_end):
// each class's IoU (null for a class neither present nor predicted), per-label rows.
void task_runs(const fs::path& runs) {
  for (const char* name : {"seg", "tags"}) {
    fs::create_directories(runs / name);
    RunStore store(runs / name / "run.sqlite");
    finished_meta(store, name, 3);
    store.add_metric({100, 1, "val", "loss", 0.5, 1790000100.0});
  }
  RunStore seg(runs / "seg" / "run.sqlite");
  seg.put_result("test", "task", R"("segmentation")");
  seg.put_result("test", "metrics",
                 R"({"loss": 0.14, "accuracy": 0.9524, "miou": 0.5729, "samples": 120})");
  seg.put_result("test", "confusion_matrix", "[[59874,660,4],[726,5874,6],[954,941,81]]");
  seg.put_result(
      "test", "per_class",
      R"([{"class":"background","precision":0.97,"recall":0.99,"f1":0.98,"support":60538,"iou":0.9623},)"
      R"({"class":"disc","precision":0.79,"recall":0.89,"f1":0.83,"support":6606,"iou":0.7157},)"
      R"({"class":"square","precision":0.89,"recall":0.04,"f1":0.08,"support":1976,"iou":0.0408},)"
      R"({"class":"triangle","precision":0,"recall":0,"f1":0,"support":0,"iou":null}])");
  RunStore tags(runs / "tags" / "run.sqlite");
  tags.put_result("test", "task", R"("multilabel")");
  tags.put_result("test", "metrics",
                  R"({"loss": 0.07, "accuracy": 0.978, "exact_match": 0.933, "samples": 60})");
  tags.put_result("test", "per_class",
                  R"([{"class":"outdoor","precision":0.963,"recall":1,"f1":0.981,"support":26},)"
                  R"({"class":"people","precision":0.971,"recall":1,"f1":0.986,"support":34}])");
}

void big_run(const fs::path& dir) {
  fs::create_directories(dir);
  RunStore store(dir / "run.sqlite");
  finished_meta(store, "big", 100);
  const int64_t n = 1000000;
  for (int64_t step = 1; step <= n; ++step) {
    const double v = 2.0 / std::sqrt(static_cast<double>(step)) + 0.05 * std::sin(step * 0.001) +
                     (step == 654321 ? 5.0 : 0.0);
    store.add_metric(
        {step, 1 + (step - 1) / 10000, "train", "step_loss", v, 1790000000.0 + step * 0.01});
  }
  for (int64_t epoch = 1; epoch <= 100; ++epoch)
    store.add_metric({epoch * 10000, epoch, "val", "loss", 2.0 / std::sqrt(epoch * 10000.0) + 0.01,
                      1790000000.0 + epoch * 100});
  store.flush();
}

// What cmp-a gains beyond a small run: weight and gradient histograms of 4 layers at the end of
// each of its 10 epochs (the TensorBoard callback's event file), system metrics per logging
// step, and test values logged as series.
void rich_run(const fs::path& dir) {
  track::EventWriter events(dir);
  for (int epoch = 1; epoch <= 10; ++epoch) {
    const int64_t step = epoch * 100;
    for (int layer = 0; layer < 4; ++layer) {
      // Weights spread out as training goes on; gradients narrow.
      std::vector<double> weights, grads;
      double u = 0.5 + layer;
      for (int i = 0; i < 400; ++i) {
        u = std::fmod(u * 16807.0, 2147483647.0);
        const double z = (u / 2147483647.0 - 0.5) * 3.4;  // roughly a unit-variance spread
        weights.push_back(z * (0.1 + 0.02 * epoch) / (1 + layer));
        grads.push_back(z * 0.05 / epoch);
      }
      const std::string name = std::to_string(layer) + ".weight";
      events.add_histogram("weights/" + name, track::make_histogram(weights), step,
                           1790000000.0 + step);
      events.add_histogram("grads/" + name, track::make_histogram(grads), step,
                           1790000000.0 + step);
    }
  }
  RunStore store(dir / "run.sqlite");
  for (int64_t step = 50; step <= 1000; step += 50) {
    const int64_t epoch = 1 + (step - 1) / 100;
    store.add_metric(
        {step, epoch, "system", "cpu_percent", 180.0 + (step % 200) / 20.0, 1790000000.0 + step});
    store.add_metric({step, epoch, "system", "rss_mib", 400.0 + step / 100.0, 1790000000.0 + step});
    if (step % 100 == 0)
      store.add_metric(
          {step, epoch, "val", "precision", 0.8 + step / 20000.0, 1790000000.0 + step});
  }
  store.add_metric({1000, 10, "test", "accuracy", 0.88, 1790000601.0});
  store.add_metric({1000, 10, "test", "loss", 0.35, 1790000601.0});
  store.flush();
}

// Two lrs x three seeds: what a runs table groups (mean +/- std over seeds).
void seed_group_runs(const fs::path& runs) {
  for (const double lr : {0.001, 0.003})
    for (int seed = 0; seed < 3; ++seed) {
      char name[64];
      std::snprintf(name, sizeof name, "grp-lr%g-s%d", lr, seed);
      small_run(runs / name, name, lr, 100 + seed * 7 + static_cast<int>(lr * 1000));
      RunStore store(runs / name / "run.sqlite");
      store.put_settings(
          {{"train.lr", std::to_string(lr), "--set", "set by the user"},
           {"train.seed", std::to_string(seed), "--set", "set by the user"},
           {"train.batch_size", "128", "default", "a batch that keeps 2 CPU cores busy"}});
      store.add_metric({1000, 10, "test", "accuracy", 0.85 + lr * 10 + 0.005 * seed, 1790000601.0});
    }
}

// `count` runs of `points` per-step losses each, with 10 epochs of train/val curves and settings
// that vary: what the render bench loads.
void many_runs(const fs::path& runs, int count, int64_t points) {
  const char* models[] = {"mlp", "cnn", "resnet"};
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "many-%03d", i);
    const fs::path dir = runs / name;
    fs::create_directories(dir);
    RunStore store(dir / "run.sqlite");
    finished_meta(store, name, 10);
    store.set_meta("model", models[i % 3]);
    const double lr = 0.0001 * std::pow(10.0, (i % 7) / 2.0);
    store.put_settings(
        {{"train.lr", std::to_string(lr), "sweep", "set by the user"},
         {"train.seed", std::to_string(i % 5), "--set", "set by the user"},
         {"train.batch_size", std::to_string(32 << (i % 4)), "default", "auto"},
         {"model.name", std::string("\"") + models[i % 3] + "\"", "--model", "set"}});
    const int64_t per_epoch = std::max<int64_t>(points / 10, 1);
    for (int64_t step = 1; step <= points; ++step) {
      const double loss =
          2.3 * std::exp(-step * 3.0 / points) + 0.1 + 0.05 * std::sin(step * 0.37 + i);
      const int64_t epoch = 1 + (step - 1) / per_epoch;
      store.add_metric({step, epoch, "train", "step_loss", loss, 1790000000.0 + step});
      if (step % per_epoch == 0) {
        store.add_metric({step, epoch, "train", "loss", loss, 1790000000.0 + step});
        store.add_metric({step, epoch, "val", "loss", loss * 1.1, 1790000000.0 + step});
        store.add_metric({step, epoch, "val", "accuracy", 1.0 - loss / 3.0, 1790000000.0 + step});
      }
    }
    store.flush();
  }
}

// A `trainscope check` run: findings and the data checks' gallery, with a hostile class name and
// an image that is not base64.
void data_check_run(const fs::path& dir) {
  fs::create_directories(dir);
  RunStore store(dir / "run.sqlite");
  store.set_meta("name", "dc");
  store.set_meta("kind", "data_check");
  store.set_meta("status", "finished");
  store.set_meta("started_at", "1790000000");
  store.add_finding({"data_split_copies", "warning", 0, 0,
                     "2 test examples (0.20%) also appear in an earlier split: 1 as exact copies, "
                     "1 as near copies (shifted, brightened or re-encoded); test accuracy counts "
                     "them as unseen",
                     R"({"exact": 1, "near": 1, "share": 0.002})",
                     "drop the listed test examples before trusting the test score", 1790000000.0});
  const std::string png =
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg="
      "=";
  store.put_result(
      "data_check", "report",
      R"({"source": "fixture", "classes": 3, "class_names": ["cat", "dog", "<b>bird</b>"],)"
      R"("splits": [{"split": "train", "examples": 900, "class_counts": {"cat": 600, "dog": 250, "<b>bird</b>": 50}},)"
      R"({"split": "test", "examples": 1000, "class_counts": {"cat": 340, "dog": 330, "<b>bird</b>": 330}}],)"
      R"("images": true, "exact_pairs": 1, "near_pairs": 40, "train_exact_copies": 0,)"
      R"("duplicates": [{"split_a": "train", "split_b": "test", "a": 12, "b": 7, "kind": "exact", "correlation": 1.0,)"
      R"("label_a": "cat", "label_b": "cat", "png_a": ")" +
          png + R"(", "png_b": ")" + png +
          R"("},)"
          R"({"split_a": "train", "split_b": "test", "a": 30, "b": 9, "kind": "near", "correlation": 0.9987, "shift": [1, -2],)"
          R"("label_a": "dog", "label_b": "<b>bird</b>", "png_a": ")" +
          png + R"(", "png_b": ")" + png +
          R"("}],)"
          R"("label_noise_checked": true, "oof_accuracy": 0.84, "suspect_counts": {"train": 57, "test": 4},)"
          R"("label_suspects": [{"split": "train", "index": 3, "source": 103, "given": "cat", "suggested": "dog",)"
          R"("given_probability": 0.02, "suggested_probability": 0.97, "score": 0.95, "png": ")" +
          png +
          R"("},)"
          R"({"split": "train", "index": 5, "source": 5, "given": "dog", "suggested": "<b>bird</b>",)"
          R"j("given_probability": 0.1, "suggested_probability": 0.8, "score": 0.7, "png": "x\" onerror=\"alert(9)"},)j"
          R"({"split": "test", "index": 8, "source": 8, "given": "<b>bird</b>", "suggested": "cat",)"
          R"("given_probability": 0.2, "suggested_probability": 0.7, "score": 0.5, "png": ")" +
          png +
          R"("}],)"
          R"("broken_count": 0, "findings": [], "seconds": 3.2})");
}

void hostile_run(const fs::path& runs) {
  const fs::path dir = runs / "<img src=x onerror=alert(1)>";
  fs::create_directories(dir);
  RunStore store(dir / "run.sqlite");
  finished_meta(store, "<script>alert(1)</script>", 1);
  store.set_meta("stop_message", "<img src=x onerror=alert(2)>");
  store.put_settings(
      {{"run.name", "\"<script>alert(3)</script>\"", "--name", "<b>set by the user</b>"}});
  store.add_metric({1, 1, "train", "<svg onload=alert(4)>", 1.0, 1790000000.0});
  store.add_metric({2, 1, "train", "<svg onload=alert(4)>", 0.5, 1790000001.0});
  store.add_metric({1, 1, "train", "step_loss", 1.0, 1790000000.0});
  store.add_metric({2, 1, "train", "step_loss", 0.5, 1790000001.0});
  store.add_finding({"<script>alert(5)</script>", "error", 1, 1, "<img src=x onerror=alert(6)>",
                     R"({"<b>key</b>": "<script>alert(7)</script>"})",
                     "<a href=javascript:alert(8)>click</a>", 1.0});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--add-finding") {
    RunStore store(fs::path(argv[2]) / "run.sqlite");
    store.add_finding({"exploding_gradients", "error", 40, 2,
                       "the global gradient norm grew 1000x in 20 steps",
                       R"({"grad_norm": 1234.5, "grad_norm_20_steps_ago": 1.2})",
                       "clip gradients at 1.0", 1790000000.0});
    return 0;
  }
  if (argc == 6 && std::string(argv[1]) == "--many" && std::string(argv[3]) == "--points") {
    many_runs(argv[5], std::atoi(argv[2]), std::atoll(argv[4]));
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: make_runs DIR | make_runs --add-finding RUN_DIR | make_runs --many N "
                 "--points P DIR\n");
    return 2;
  }
  const fs::path runs(argv[1]);
  fs::create_directories(runs);
  big_run(runs / "big");
  small_run(runs / "cmp-a", "cmp-a", 0.003, 1);
  {
    RunStore store(runs / "cmp-a" / "run.sqlite");
    store.set_meta("resumes", "2");
    store.set_meta("resumed_at", "1790000300");
    store.set_meta("resumed_from", "last.ckpt (epoch 5, step 437)");
  }
  rich_run(runs / "cmp-a");
  {
    // What `diagnose --verify` keeps for the dashboard: cmp-a's overfitting remedy, one alternative
    // replayed from the start, the other forked from epoch 7 (its replays: the two sweep trials).
    RunStore store(runs / "cmp-a" / "run.sqlite");
    store.put_result(
        "verify", "remedies",
        R"({"run": "cmp-a", "seeds": [0], "checks": [)"
        R"({"kind": "overfitting", "alternative": 1, "epoch": 8, "settings": {"model.dropout": "0.3"},)"
        R"( "from_epoch": 0, "from_checkpoint": "", "epochs": 10, "baseline_sweep": "cmp-a-verify-10ep-1seeds-base",)"
        R"( "baseline": [{"seed": 0, "run": "cmp-a-verify-10ep-1seeds-base-001", "val_loss": 0.42}],)"
        R"( "sweep": "cmp-a-verify-10ep-1seeds-overfitting-alt1",)"
        R"( "with_remedy": [{"seed": 0, "run": "cmp-a-verify-10ep-1seeds-overfitting-alt1-001", "val_loss": 0.421}],)"
        R"( "loss_effect": 0.001, "loss_spread": 0.0, "accuracy_effect": -0.002, "accuracy_spread": 0.0,)"
        R"( "verdict": "no clear effect", "note": ""},)"
        R"({"kind": "overfitting", "alternative": 2, "epoch": 8, "settings": {"train.weight_decay": "0.0001"},)"
        R"( "from_epoch": 7, "from_checkpoint": "checkpoints/epoch-0007.ckpt", "epochs": 3,)"
        R"( "baseline_sweep": "lr-sweep", "baseline": [{"seed": 0, "run": "sw-001", "val_loss": 0.42}],)"
        R"( "sweep": "lr-sweep", "with_remedy": [{"seed": 0, "run": "sw-002", "val_loss": 0.37}],)"
        R"( "loss_effect": -0.05, "loss_spread": 0.004, "accuracy_effect": 0.012, "accuracy_spread": 0.003,)"
        R"( "verdict": "helped", "note": ""}]})");
  }
  small_run(runs / "cmp-b", "cmp-b", 0.001, 2);
  track::write_annotations(runs / "cmp-b" / "run.sqlite",
                           {{"baseline", "lr 1e-3"}, "the reference run: <b>not bold</b>"});
  seed_group_runs(runs);
  // Two trials of a sweep, as trainscope sweep records them.
  for (int trial = 1; trial <= 2; ++trial) {
    const std::string name = "sw-00" + std::to_string(trial);
    const double lr = trial == 1 ? 0.002 : 0.0005;
    small_run(runs / name, name, lr, 10 + trial);
    RunStore store(runs / name / "run.sqlite");
    // The second trial on fewer examples: comparing the two warns that their splits differ.
    store.put_settings({{"train.lr", std::to_string(lr), "sweep", "set by the user"},
                        {"data.limit", trial == 1 ? "0" : "5000", "--set", "set by the user"},
                        {"run.sweep", "\"lr-sweep\"", "sweep", "trial"},
                        {"run.sweep_trial", "\"train.lr=" + std::to_string(lr) + "\"", "sweep",
                         "the trial's settings"}});
    if (trial == 2) {  // a fork of cmp-a, as diagnose --verify makes them
      store.set_meta("forked_from", "cmp-a");
      store.set_meta("forked_epoch", "7");
      store.set_meta("forked_at", "epoch-0007.ckpt (epoch 7, step 700)");
    }
  }
  data_check_run(runs / "dc");
  task_runs(runs);
  hostile_run(runs);
  return 0;
}
