#include <trainscope/callbacks/checkpoint.h>
#include <trainscope/error.h>
#include <trainscope/models/model.h>
#include <trainscope/track/checkpoint_file.h>
#include <trainscope/track/payload.h>
#include <trainscope/track/run.h>
#include <trainscope/version.h>

#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

namespace trainscope::callbacks {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLast = "last.ckpt";
constexpr const char* kPrevious = "previous.ckpt";
constexpr const char* kBest = "best.ckpt";

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string epoch_file_name(int64_t epoch, const std::string& monitor, double value) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "epoch-%04lld-%s-%.4f.ckpt", static_cast<long long>(epoch),
                monitor.c_str(), value);
  return buf;
}

// A save as the background thread performs it: the payload written to last.ckpt (the old one
// kept as previous.ckpt), then the extra names linked to it and dropped files removed.
struct Job {
  fs::path dir;
  track::CheckpointInfo info;
  std::string payload;
  std::vector<std::string> links;
  std::vector<std::string> remove;
  std::vector<track::CheckpointRecord> records;  // added to the run store once durable
};

struct Done {
  std::vector<track::CheckpointRecord> records;
  std::string error;
};

Done execute(Job& job) {
  Done done;
  try {
    const fs::path last = job.dir / kLast;
    track::write_checkpoint_file(last, job.info, job.payload, [&] {
      std::error_code ec;
      if (fs::exists(last, ec)) track::link_atomically(last, job.dir / kPrevious);
    });
    for (const auto& name : job.links) track::link_atomically(last, job.dir / name);
    std::error_code ec;
    for (const auto& name : job.remove) fs::remove(job.dir / name, ec);
    if (!job.links.empty() || !job.remove.empty()) fsync_dir(job.dir);
    done.records = std::move(job.records);
  } catch (const std::exception& e) {
    done.error = e.what();
  }
  job.payload = std::string();  // release the memory now, not at the next save
  return done;
}

}  // namespace

// One background thread that executes one save at a time; submit() waits for the previous one.
struct ModelCheckpoint::Worker {
  explicit Worker(bool background) : background_(background) {}
  ~Worker() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void submit(Job job) {
    if (!background_) {
      const auto t0 = std::chrono::steady_clock::now();
      Done d = execute(job);
      std::lock_guard<std::mutex> lock(mutex_);
      write_seconds_ += seconds_since(t0);
      done_.push_back(std::move(d));
      return;
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return !job_; });
    job_ = std::move(job);
    cv_.notify_all();
  }

  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return !job_; });
  }

  std::vector<Done> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(done_, {});
  }

  double write_seconds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return write_seconds_;
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || job_; });
      if (!job_) return;  // stop requested with nothing in flight
      lock.unlock();
      const auto t0 = std::chrono::steady_clock::now();
      Done d = execute(*job_);
      lock.lock();
      write_seconds_ += seconds_since(t0);
      done_.push_back(std::move(d));
      job_.reset();
      cv_.notify_all();
    }
  }

  bool background_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<Job> job_;  // the save in flight
  std::vector<Done> done_;
  double write_seconds_ = 0.0;
  bool stop_ = false;
};

ModelCheckpoint::ModelCheckpoint(CheckpointOptions options)
    : options_(std::move(options)), worker_(std::make_unique<Worker>(options_.background)) {
  if (options_.keep_top_k < 0 || options_.every_steps < 0 || !(options_.every_minutes >= 0))
    throw ConfigError("checkpoint keep_top_k, every_steps and every_minutes must be >= 0 (got " +
                      std::to_string(options_.keep_top_k) + ", " +
                      std::to_string(options_.every_steps) + ", " +
                      std::to_string(options_.every_minutes) + ")");
}

ModelCheckpoint::~ModelCheckpoint() = default;

double ModelCheckpoint::write_seconds() const { return worker_->write_seconds(); }

void ModelCheckpoint::on_fit_start(TrainState& state) {
  top_.clear();
  has_best_ = false;
  disabled_ = false;
  error_.clear();
  last_save_ = std::chrono::steady_clock::now();
  if (state.run == nullptr) return;
  // Temporary files of saves a crash cut short.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(state.run->checkpoints_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos)
      fs::remove(entry.path(), ec);
  }
  // The initial state, so that a fit killed in its first epoch resumes exactly too. Durable
  // before the first step: a run with progress always has a checkpoint to resume from.
  if (!state.resumed || state.resumed->file.empty()) {
    save(state, /*epoch_end=*/false);
    collect(state, /*wait=*/true);
  }
}

void ModelCheckpoint::on_train_batch_end(TrainState& state) {
  collect(state, /*wait=*/false);
  if (disabled_ || state.run == nullptr) return;
  if (state.interrupted) {
    // The process is about to exit: save where it stands, and make it durable before returning.
    save(state, false);
    collect(state, true);
    return;
  }
  // The last batch of an epoch is saved by on_epoch_end, complete with validation.
  if (state.batch_in_epoch + 1 >= state.batches_per_epoch) return;
  const bool by_steps = options_.every_steps > 0 && state.global_step % options_.every_steps == 0;
  const bool by_time = options_.every_minutes > 0 &&
                       std::chrono::steady_clock::now() - last_save_ >=
                           std::chrono::duration<double>(60.0 * options_.every_minutes);
  if (by_steps || by_time) save(state, false);
}

void ModelCheckpoint::on_epoch_end(TrainState& state) {
  collect(state, false);
  save(state, /*epoch_end=*/true);
}

void ModelCheckpoint::on_fit_end(TrainState& state) { collect(state, /*wait=*/true); }

void ModelCheckpoint::on_exception(TrainState& state, const std::exception_ptr&) {
  try {
    collect(state, true);
  } catch (...) {
    // The exception that ended the fit is the one to report.
  }
}

void ModelCheckpoint::save(TrainState& state, bool epoch_end) {
  if (disabled_ || state.run == nullptr || !state.capture) return;
  Job job;
  job.dir = state.run->checkpoints_dir();
  std::string monitor;
  double value = std::numeric_limits<double>::quiet_NaN();
  if (epoch_end) {
    const Monitor& by = state.best.by;
    std::optional<double> v = by.value(state);
    monitor = by.name;
    if (v && std::isfinite(*v)) {
      value = *v;
      Ranked r{value, state.epoch, state.global_step, epoch_file_name(state.epoch, monitor, value)};
      if (options_.keep_top_k > 0) {
        auto pos = std::find_if(top_.begin(), top_.end(),
                                [&](const Ranked& t) { return by.improves(value, t.value); });
        if (pos != top_.end() || static_cast<int64_t>(top_.size()) < options_.keep_top_k) {
          top_.insert(pos, r);
          job.links.push_back(r.file);
          if (static_cast<int64_t>(top_.size()) > options_.keep_top_k) {
            job.remove.push_back(top_.back().file);
            top_.pop_back();
          }
        }
      }
      if (state.best.improved) {
        best_ = r;
        has_best_ = true;
        job.links.push_back(kBest);
      }
    }
  }
  // The store's extent now: a resume from this checkpoint drops rows written after it.
  const track::StoreMark mark = state.run->store().mark();
  const auto t0 = std::chrono::steady_clock::now();
  TrainingSnapshot snapshot = state.capture();  // host sync; copies every tensor
  capture_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  track::CheckpointInfo& info = job.info;
  info.kind = "last";
  info.epoch = snapshot.epoch;
  info.step = snapshot.step;
  info.batches = snapshot.batches;
  info.epoch_complete = snapshot.epoch_complete;
  info.monitor = monitor;
  info.value = value;
  info.wall_time = track::wall_time_now();
  info.metrics_mark = mark.metrics;
  info.findings_mark = mark.findings;
  info.trainscope_version = kVersion;
  info.torch_version = TORCH_VERSION;
  job.payload = std::move(snapshot.payload);
  const std::string rel = "checkpoints/";
  job.records.push_back(
      {rel + kLast, "last", info.epoch, info.step, monitor, value, info.wall_time});
  for (const auto& name : job.links)
    job.records.push_back({rel + name, name == kBest ? "best" : "epoch", info.epoch, info.step,
                           monitor, value, info.wall_time});
  worker_->submit(std::move(job));
  last_save_ = std::chrono::steady_clock::now();
  collect(state, /*wait=*/false);  // an inline save's outcome is known now
}

void ModelCheckpoint::collect(TrainState& state, bool wait) {
  if (wait) worker_->wait();
  for (auto& done : worker_->take()) {
    if (done.error.empty()) {
      if (state.run != nullptr)
        for (const auto& record : done.records) state.run->store().add_checkpoint(record);
      continue;
    }
    if (!error_.empty()) continue;  // reported once
    error_ = done.error;
    disabled_ = true;
    const bool stop = options_.on_error == OnSaveError::kStop;
    const std::string run = state.run ? state.run->name() : "RUN";
    const std::string then =
        stop ? "the fit stops at the end of this epoch (checkpoint.on_error = \"stop\"); free "
               "space or make the directory writable, then `trainscope resume " +
                   run + "`"
             : "training goes on without checkpoints (checkpoint.on_error = \"continue\")";
    std::fprintf(stderr,
                 "trainscope: saving a checkpoint failed: %s\ntrainscope: checkpoints are off for "
                 "the rest of this fit and %s\n",
                 error_.c_str(), then.c_str());
    if (stop)
      state.request_stop(StopReason::kCheckpointFailed, "saving a checkpoint failed: " + error_);
    if (state.run == nullptr) continue;
    try {
      // The store may sit on the same full disk; the message above has been printed either way.
      state.run->store().set_meta("checkpoint_error", error_);
      state.run->store().add_finding(
          {"checkpoint_failed", "error", state.global_step, state.epoch,
           "saving a checkpoint failed", "{}",
           stop ? "free disk space or fix permissions, then resume the run" : then,
           track::wall_time_now()});
    } catch (const std::exception&) {
    }
  }
}

void ModelCheckpoint::on_checkpoint_save(TrainState&, torch::serialize::OutputArchive& a) {
  auto ranked = [](const std::vector<Ranked>& list) {
    c10::List<double> values;
    c10::List<int64_t> epochs, steps;
    c10::List<std::string> files;
    for (const auto& r : list) {
      values.push_back(r.value);
      epochs.push_back(r.epoch);
      steps.push_back(r.step);
      files.push_back(r.file);
    }
    return std::make_tuple(values, epochs, steps, files);
  };
  std::vector<Ranked> best;
  if (has_best_) best.push_back(best_);
  for (const auto& [key, list] :
       {std::pair<const char*, const std::vector<Ranked>*>{"top", &top_}, {"best", &best}}) {
    auto [values, epochs, steps, files] = ranked(*list);
    a.write(std::string(key) + "/values", c10::IValue(values));
    a.write(std::string(key) + "/epochs", c10::IValue(epochs));
    a.write(std::string(key) + "/steps", c10::IValue(steps));
    a.write(std::string(key) + "/files", c10::IValue(files));
  }
}

void ModelCheckpoint::on_checkpoint_load(TrainState& state, torch::serialize::InputArchive& a) {
  auto read = [&](const std::string& key) {
    c10::IValue values, epochs, steps, files;
    a.read(key + "/values", values);
    a.read(key + "/epochs", epochs);
    a.read(key + "/steps", steps);
    a.read(key + "/files", files);
    std::vector<Ranked> out;
    auto v = values.toDoubleList();
    auto e = epochs.toIntList();
    auto s = steps.toIntList();
    auto f = files.toList();
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back({v.get(i), e.get(i), s.get(i), f.get(i).toStringRef()});
    return out;
  };
  top_ = read("top");
  auto best = read("best");
  has_best_ = !best.empty();
  if (has_best_) best_ = best.front();
  reconcile(state);
}

// A resumed fit continues from the checkpoint's view of checkpoints/: a crash may have cut the
// save that the checkpoint belongs to before its links were made, or a removal before it was
// done. Make the directory and the store's records agree with that view again.
void ModelCheckpoint::reconcile(TrainState& state) {
  if (state.run == nullptr || !state.resumed) return;
  const ResumePoint& from = *state.resumed;
  const fs::path dir = state.run->checkpoints_dir();
  auto holds = [&](const fs::path& file, int64_t step) {
    try {
      return track::read_checkpoint_info(file).step == step;
    } catch (const Error&) {
      return false;
    }
  };
  auto& store = state.run->store();
  const auto records = store.checkpoints();
  auto ensure_record = [&](const std::string& name, const std::string& kind, const Ranked& r) {
    const std::string rel = "checkpoints/" + name;
    for (const auto& c : records)
      if (c.path == rel && c.step == r.step) return;
    store.add_checkpoint(
        {rel, kind, r.epoch, r.step, state.best.by.name, r.value, track::wall_time_now()});
  };
  auto repair = [&](const std::string& name, const std::string& kind, const Ranked& r) {
    const fs::path file = dir / name;
    if (!holds(file, r.step)) {
      if (!(from.epoch_complete && from.step == r.step)) return false;
      track::link_atomically(from.file, file);
    }
    if (r.step == from.step) ensure_record(name, kind, r);
    return true;
  };
  std::vector<Ranked> kept;
  for (const auto& r : top_) {
    if (repair(r.file, "epoch", r))
      kept.push_back(r);
    else
      std::fprintf(stderr, "trainscope: %s is missing; it leaves the top-%lld list\n",
                   (dir / r.file).c_str(), static_cast<long long>(options_.keep_top_k));
  }
  top_ = kept;
  if (has_best_ && !repair(kBest, "best", best_))
    std::fprintf(stderr,
                 "trainscope: %s does not hold epoch %lld; it is replaced at the next "
                 "better epoch\n",
                 (dir / kBest).c_str(), static_cast<long long>(best_.epoch));
  // Epoch files the checkpoint no longer ranks: a removal a crash cut short.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("epoch-", 0) != 0 || entry.path().extension() != ".ckpt") continue;
    const bool ranked =
        std::any_of(top_.begin(), top_.end(), [&](const Ranked& r) { return r.file == name; });
    if (!ranked) fs::remove(entry.path(), ec);
  }
  if (from.file.filename() == kLast) {
    Ranked r{std::numeric_limits<double>::quiet_NaN(), from.epoch, from.step, kLast};
    ensure_record(kLast, "last", r);
  }
}

void save_weights(const torch::nn::Module& module, const fs::path& file) {
  try {
    track::write_atomically(file, [&](const fs::path& tmp) {
      torch::serialize::OutputArchive archive;
      module.save(archive);
      archive.save_to(tmp.string());
    });
  } catch (const std::exception& e) {
    throw CheckpointError(
        std::string("saving weights failed: ") + e.what() +
        " (the previous file, if any, is intact; check free disk space and permissions)");
  }
}

void load_weights(torch::nn::Module& module, const fs::path& file) {
  if (!fs::exists(file)) throw CheckpointError("weights file " + file.string() + " does not exist");
  try {
    torch::serialize::InputArchive archive;
    if (track::is_checkpoint_file(file))
      archive = track::PayloadReader::of_file(file).model_archive();  // verified
    else
      archive.load_from(file.string());
    module.load(archive);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError("cannot load weights from " + file.string() + ": " +
                          what.substr(0, what.find('\n')) +
                          " (corrupt file, or weights of a different model)");
  }
}

std::string read_checkpoint_config(const fs::path& file) {
  return track::PayloadReader::of_file(file).config();  // verified
}

}  // namespace trainscope::callbacks
