#include <trainscope/track/archive.h>
#include <trainscope/callbacks/run_logger.h>
#include <trainscope/config.h>
#include <trainscope/models/model.h>
#include <trainscope/track/run.h>
#include <trainscope/train/metrics.h>

#include <nlohmann/json.hpp>

#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>

namespace trainscope::callbacks {
namespace {

// The process's command line, its arguments quoted for a POSIX shell where they need it.
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw(std::istreambuf_iterator<char>(in), {}), out, arg;
  auto push = [&] {
    const bool plain = !arg.empty() && arg.find_first_not_of(
                                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789._-+=/:,@%") == std::string::npos;
    std::string quoted = "'";
    for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += (out.empty() ? "" : " ") + (plain ? arg : quoted + "'");
    arg.clear();
  };
  for (char c : raw) {
    if (c == '\0')
      push();
    else
      arg += c;
  }
  if (!arg.empty()) push();
  return out;
}

// stdout of `command` (stderr dropped), at most `limit` bytes; nullopt when it fails.
std::optional<std::string> output_of(const std::string& command, size_t limit) {
  FILE* p = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    if (out.size() < limit) out.append(buf.data(), std::min(n, limit - out.size()));
  return ::pclose(p) == 0 ? std::optional<std::string>(out) : std::nullopt;
}

// Where the run comes from: command, host, and the git state of the working directory.
void record_origin(track::RunStore& store) {
  store.set_meta("command", command_line());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) store.set_meta("host", host);
  // --no-optional-locks: reading the state never takes the index lock a user's git may need.
  const std::string git = "git --no-optional-locks";
  auto commit = output_of(git + " rev-parse HEAD", 256);
  if (!commit || commit->empty()) return;  // not a work tree, or no git
  if (commit->back() == '\n') commit->pop_back();
  store.set_meta("git.commit", *commit);
  constexpr size_t kDiffLimit = size_t(1) << 20;
  const auto diff = output_of(git + " diff HEAD", kDiffLimit + 1);
  const bool dirty = diff && !diff->empty();
  store.set_meta("git.dirty", dirty ? "true" : "false");
  if (dirty) {
    nlohmann::json j;
    j["truncated"] = diff->size() > kDiffLimit;
    j["diff"] = diff->substr(0, kDiffLimit);
    store.put_result("git", "diff", j.dump());
  }
}

// Resident set size in MiB, from /proc/self/statm.
double rss_mib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  if (!(in >> pages >> resident)) return 0.0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) /
         (1024.0 * 1024.0);
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// GPU utilisation and memory from NVML, loaded at run time (libnvidia-ml.so.1 comes with the
// NVIDIA driver): no build dependency, and nothing happens on machines without it. The few
// entry points used are declared here as the driver's C ABI defines them.
struct GpuSample {
  double utilization_percent = 0.0;  // of the last sample period, as nvidia-smi shows it
  double memory_used_mib = 0.0;      // on the whole device, every process
};

class Nvml {
 public:
  static Nvml& get() {
    static Nvml nvml;
    return nvml;
  }
  // nullopt without NVML, or when the device cannot be read.
  std::optional<GpuSample> sample(int cuda_index) {
    std::lock_guard lock(mu_);
    if (!ready_) return std::nullopt;
    void* device = nullptr;
    if (!handle_for(cuda_index, &device)) return std::nullopt;
    struct {
      unsigned int gpu, memory;
    } utilization{};
    struct {
      unsigned long long total, free, used;
    } memory{};
    if (get_utilization_(device, &utilization) != 0 || get_memory_(device, &memory) != 0)
      return std::nullopt;
    return GpuSample{static_cast<double>(utilization.gpu),
                     static_cast<double>(memory.used) / (1024.0 * 1024.0)};
  }

 private:
  using InitFn = int (*)();
  using ByIndexFn = int (*)(unsigned int, void**);
  using ByUuidFn = int (*)(const char*, void**);
  using UtilizationFn = int (*)(void*, void*);
  using MemoryFn = int (*)(void*, void*);

  Nvml() {
    void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return;
    auto init = reinterpret_cast<InitFn>(::dlsym(lib, "nvmlInit_v2"));
    by_index_ = reinterpret_cast<ByIndexFn>(::dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
    by_uuid_ = reinterpret_cast<ByUuidFn>(::dlsym(lib, "nvmlDeviceGetHandleByUUID"));
    get_utilization_ =
        reinterpret_cast<UtilizationFn>(::dlsym(lib, "nvmlDeviceGetUtilizationRates"));
    get_memory_ = reinterpret_cast<MemoryFn>(::dlsym(lib, "nvmlDeviceGetMemoryInfo"));
    ready_ = init != nullptr && by_index_ != nullptr && by_uuid_ != nullptr &&
             get_utilization_ != nullptr && get_memory_ != nullptr && init() == 0;
  }

  // NVML numbers every GPU of the machine; CUDA only those CUDA_VISIBLE_DEVICES lists, by
  // index or UUID, in its order.
  bool handle_for(int cuda_index, void** device) const {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    if (visible == nullptr || *visible == '\0')
      return by_index_(static_cast<unsigned int>(cuda_index), device) == 0;
    std::string list(visible), item;
    std::vector<std::string> items;
    for (char c : list + ",") {
      if (c != ',') {
        item += c;
      } else {
        items.push_back(item);
        item.clear();
      }
    }
    if (cuda_index < 0 || static_cast<size_t>(cuda_index) >= items.size()) return false;
    const std::string& id = items[static_cast<size_t>(cuda_index)];
    if (id.rfind("GPU-", 0) == 0 || id.rfind("MIG-", 0) == 0)
      return by_uuid_(id.c_str(), device) == 0;
    char* end = nullptr;
    const long index = std::strtol(id.c_str(), &end, 10);
    return end != id.c_str() && index >= 0 &&
           by_index_(static_cast<unsigned int>(index), device) == 0;
  }

  std::mutex mu_;
  bool ready_ = false;
  ByIndexFn by_index_ = nullptr;
  ByUuidFn by_uuid_ = nullptr;
  UtilizationFn get_utilization_ = nullptr;
  MemoryFn get_memory_ = nullptr;
};

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
    record_origin(store);
  }
  last_cpu_seconds_ = cpu_seconds();
  last_sample_ = std::chrono::steady_clock::now();
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
    const auto tick = std::chrono::steady_clock::now();
    const double cpu = cpu_seconds();
    const double wall = std::chrono::duration<double>(tick - last_sample_).count();
    if (last_cpu_seconds_ >= 0 && wall > 0)
      store.add_metric({state.global_step, state.epoch, "system", "cpu_percent",
                        100.0 * (cpu - last_cpu_seconds_) / wall, now});
    store.add_metric({state.global_step, state.epoch, "system", "rss_mib", rss_mib(), now});
    if (state.loss.defined() && state.loss.is_cuda())
      if (const auto gpu = Nvml::get().sample(state.loss.device().index())) {
        store.add_metric({state.global_step, state.epoch, "system", "gpu_util_percent",
                          gpu->utilization_percent, now});
        store.add_metric({state.global_step, state.epoch, "system", "gpu_memory_mib",
                          gpu->memory_used_mib, now});
      }
    last_cpu_seconds_ = cpu;
    last_sample_ = tick;
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
  store.put_result(result.split, "task", nlohmann::json(name_of(result.task, kTaskNames)).dump());
  if (result.confusion.defined()) {
    auto c = result.confusion.to(torch::kInt64).contiguous();
    nlohmann::json matrix = nlohmann::json::array();
    for (int64_t i = 0; i < c.size(0); ++i) {
      auto row = c[i];
      matrix.push_back(
          std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + c.size(1)));
    }
    store.put_result(result.split, "confusion_matrix", matrix.dump());
  }
  if (!result.per_class.empty()) {
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& m : result.per_class) {
      nlohmann::json row = {{"class", m.name},
                            {"precision", m.precision},
                            {"recall", m.recall},
                            {"f1", m.f1},
                            {"support", m.support}};
      if (per_position(result.task))  // null: a class neither present nor predicted
        row["iou"] = std::isnan(m.iou) ? nlohmann::json(nullptr) : nlohmann::json(m.iou);
      classes.push_back(row);
    }
    store.put_result(result.split, "per_class", classes.dump());
  }
  if (result.task == Task::kClassification && result.confusion.defined()) {
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
