#include <trainscope/track/archive.h>
#include <trainscope/callbacks/run_logger.h>
#include <trainscope/config.h>
#include <trainscope/models/model.h>
#include <trainscope/track/run.h>
#include <trainscope/train/metrics.h>

#include <nlohmann/json.hpp>

#include <cmath>

namespace trainscope::callbacks {
namespace {

void log_split(track::RunStore& store, const TrainState& state, const std::string& split,
               const MetricMap& metrics) {
  const double now = track::wall_time_now();
  for (const auto& [tag, value] : metrics)
    store.add_metric({state.global_step, state.epoch, split, tag, value, now});
}

}  // namespace

void RunLogger::on_fit_start(TrainState& state) {
  epoch_samples_ = 0;
  if (!state.run) return;
  auto& store = state.run->store();
  store.set_meta("name", state.run->name());
  store.set_meta("status", "running");
  if (state.resumed) {
    // The run keeps its start time; its resumes are counted.
    const int resumes = std::stoi(store.meta("resumes").value_or("0")) + 1;
    store.set_meta("resumes", std::to_string(resumes));
    store.set_meta("resumed_at", std::to_string(track::wall_time_now()));
    store.set_meta("resumed_from", state.resumed->file.empty()
                                       ? std::string("nothing (no usable checkpoint; started over)")
                                       : state.resumed->file.filename().string() + " (epoch " +
                                             std::to_string(state.resumed->epoch) + ", step " +
                                             std::to_string(state.resumed->step) + ")");
    store.erase_meta({"stop_reason", "stop_message", "ended_at", "checkpoint_error"});
  } else {
    store.set_meta("started_at", std::to_string(track::wall_time_now()));
  }
  store.set_meta("model", state.model ? state.model->name() : "model");
  store.set_meta("max_epochs", std::to_string(state.max_epochs));
  if (settings_) {
    std::vector<track::SettingRecord> rows;
    for (const auto& s : settings_->settings())
      rows.push_back({s.key, to_toml_literal(s.value), s.source, s.reason});
    store.put_settings(rows);
  }
}

void RunLogger::on_epoch_start(TrainState&) {
  epoch_start_ = std::chrono::steady_clock::now();
  epoch_samples_ = 0;
}

void RunLogger::on_train_batch_end(TrainState& state) {
  epoch_samples_ += state.batch_size;
  if (!state.run) return;
  auto& store = state.run->store();
  const double now = track::wall_time_now();
  // The lr of every step: it is on the host, no sync.
  if (state.optimizer != nullptr) {
    const auto& groups = state.optimizer->param_groups();
    for (size_t i = 0; i < groups.size(); ++i)
      store.add_metric({state.global_step, state.epoch, "train",
                        i == 0 ? "lr" : "lr/group" + std::to_string(i),
                        groups[i].options().get_lr(), now});
  }
  if (state.global_step % log_every_ == 0) {
    // Host sync: once every log_every steps.
    store.add_metric(
        {state.global_step, state.epoch, "train", "step_loss", state.loss.item<double>(), now});
  }
  // Live readers (the dashboard) see new points within half a second: commit what is pending
  // (this and other callbacks' points) at most twice a second, one small WAL transaction each.
  const auto tick = std::chrono::steady_clock::now();
  if (tick - last_flush_ >= std::chrono::milliseconds(500)) {
    store.flush();
    last_flush_ = tick;
  }
}

void RunLogger::on_epoch_end(TrainState& state) {
  if (!state.run) return;
  auto& store = state.run->store();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start_).count();
  log_split(store, state, "train", state.train_metrics);
  log_split(store, state, "val", state.val_metrics);
  log_split(store, state, "train",
            {{"epoch_seconds", seconds},
             {"samples_per_s", seconds > 0 ? epoch_samples_ / seconds : 0.0}});
  if (state.best.improved && state.best.by.split == "val") {
    store.set_meta("best_epoch", std::to_string(state.best.epoch));
    store.set_meta("best_val_loss", std::to_string(state.best.val_loss));
    store.set_meta("best_monitor", state.best.by.name);
    store.set_meta("best_value", std::to_string(state.best.value));
  }
  store.set_meta("epochs", std::to_string(state.epoch));
  store.flush();  // an epoch's metrics are durable before the next epoch starts
}

void RunLogger::on_fit_end(TrainState& state) {
  if (!state.run) return;
  auto& store = state.run->store();
  const bool finished = state.stop_reason == StopReason::kMaxEpochs;
  store.set_meta("status", finished ? "finished" : "stopped");
  store.set_meta("stop_reason", to_string(state.stop_reason));
  store.set_meta("stop_message", state.stop_message);
  store.set_meta("ended_at", std::to_string(track::wall_time_now()));
  store.flush();
}

void RunLogger::on_test_end(TrainState& state, const EvalResult& result) {
  if (!state.run) return;
  auto& store = state.run->store();
  log_split(store, state, result.split, result.metrics);
  nlohmann::json metrics = result.metrics;
  metrics["samples"] = result.samples;
  store.put_result(result.split, "metrics", metrics.dump());
  if (result.confusion.defined()) {
    auto c = result.confusion.to(torch::kInt64).contiguous();
    nlohmann::json matrix = nlohmann::json::array();
    for (int64_t i = 0; i < c.size(0); ++i) {
      auto row = c[i];
      matrix.push_back(
          std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + c.size(1)));
    }
    store.put_result(result.split, "confusion_matrix", matrix.dump());
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& m : result.per_class)
      classes.push_back({{"class", m.name},
                         {"precision", m.precision},
                         {"recall", m.recall},
                         {"f1", m.f1},
                         {"support", m.support}});
    store.put_result(result.split, "per_class", classes.dump());
    nlohmann::json mistakes = nlohmann::json::array();
    for (const auto& m : result.mistakes) {
      auto name = [&](int64_t c) {
        return c < static_cast<int64_t>(result.per_class.size()) ? result.per_class[c].name
                                                                 : std::to_string(c);
      };
      mistakes.push_back({{"index", m.index},
                          {"label", name(m.label)},
                          {"predicted", name(m.predicted)},
                          {"confidence", m.confidence}});
    }
    store.put_result(result.split, "mistakes", mistakes.dump());
  }
  store.flush();
}

void RunLogger::on_exception(TrainState& state, const std::exception_ptr& error) {
  if (!state.run) return;
  std::string message = "unknown exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
  }
  try {
    auto& store = state.run->store();
    store.set_meta("status", "crashed");
    store.set_meta("stop_reason", to_string(StopReason::kException));
    store.set_meta("stop_message", message.substr(0, message.find('\n')));
    store.set_meta("ended_at", std::to_string(track::wall_time_now()));
    store.flush();
  } catch (...) {
    // The original exception is the one to report; a failing store must not mask it.
  }
}

}  // namespace trainscope::callbacks
