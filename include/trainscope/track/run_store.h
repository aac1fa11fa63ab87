#pragma once
// RunStore: the run's single source of truth, one SQLite database per run (run.sqlite).
// The dashboard, `trainscope test`, reports and exports read it.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace trainscope::track {

// One scalar observation. `split` is "train", "val" or "test"; `tag` is the metric
// ("loss", "accuracy", "lr", ...). `step` is the optimizer step at which it was observed and
// `epoch` the 1-based epoch (0 for observations outside an epoch). `wall_time` is seconds
// since the Unix epoch.
struct MetricPoint {
  int64_t step = 0;
  int64_t epoch = 0;
  std::string split;
  std::string tag;
  double value = 0.0;
  double wall_time = 0.0;
};

// One resolved setting as recorded: its value (TOML literal), where it came from
// ("default", "config file", "--set", "library") and why it has that value.
struct SettingRecord {
  std::string key;
  std::string value;
  std::string source;
  std::string reason;
};

// A diagnostic finding (filled by the diagnostics module). evidence is a JSON object text.
struct FindingRecord {
  std::string kind;
  std::string severity;  // "info", "warning", "error"
  int64_t step = 0;
  int64_t epoch = 0;
  std::string message;
  std::string evidence_json;
  std::string remedy;
  double wall_time = 0.0;
};

// A saved checkpoint or weights file, relative to the run directory.
struct CheckpointRecord {
  std::string path;  // e.g. "checkpoints/best.pt"
  std::string kind;  // "best", "last", "epoch"
  int64_t epoch = 0;
  int64_t step = 0;
  std::string monitor;  // e.g. "val_loss"
  double value = 0.0;
  double wall_time = 0.0;
};

// How far the metrics and findings tables reached at some moment (their largest row ids). A
// checkpoint records it; resuming from that checkpoint deletes what was written after it, so a
// resumed run's series continue with no duplicates and no gaps.
struct StoreMark {
  int64_t metrics = 0;
  int64_t findings = 0;
};

// Owns one SQLite connection to `<run dir>/run.sqlite`, in WAL mode so that readers (the
// dashboard, another process) never block the writer.
//
// Writes of metrics are buffered and committed in one transaction by flush(), which runs
// automatically when the buffer holds `kFlushEvery` points, and on destruction. Everything
// else (meta, settings, results, findings, checkpoints) is written immediately.
// Not thread-safe: use one RunStore per thread. Not copyable; movable.
// Throws trainscope::Error naming the file when the database cannot be opened or written.
class RunStore {
 public:
  static constexpr size_t kFlushEvery = 512;

  enum class Mode { kReadWrite, kReadOnly };

  // Opens (creating when needed, in kReadWrite) the database and its schema.
  explicit RunStore(const std::filesystem::path& file, Mode mode = Mode::kReadWrite);
  ~RunStore();
  RunStore(RunStore&&) noexcept;
  RunStore& operator=(RunStore&&) noexcept;
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  const std::filesystem::path& file() const { return file_; }

  // Key/value facts about the run: "name", "status" (running | finished | stopped | crashed),
  // "stop_reason", "stop_message", "started_at", "ended_at", "best_epoch", ... Overwrites.
  void set_meta(const std::string& key, const std::string& value);
  std::optional<std::string> meta(const std::string& key) const;
  void erase_meta(const std::vector<std::string>& keys);

  // The resolved configuration, one row per key (replaces any earlier rows for the same key).
  void put_settings(const std::vector<SettingRecord>& settings);
  std::vector<SettingRecord> settings() const;

  // Buffered; see flush().
  void add_metric(MetricPoint point);
  void flush();
  // All points of a split/tag ordered by step; empty split or tag matches any.
  std::vector<MetricPoint> metrics(const std::string& split = "",
                                   const std::string& tag = "") const;

  // Named results as JSON text, e.g. ("test", "confusion_matrix", "[[...]]"). Overwrites.
  void put_result(const std::string& split, const std::string& name, const std::string& json);
  std::optional<std::string> result(const std::string& split, const std::string& name) const;
  // Deletes every result of `split` (a fork drops its origin's test results).
  void erase_results(const std::string& split);

  void add_finding(const FindingRecord& finding);
  std::vector<FindingRecord> findings() const;

  void add_checkpoint(const CheckpointRecord& checkpoint);
  std::vector<CheckpointRecord> checkpoints() const;

  // Commits pending metrics and returns how far the tables reach.
  StoreMark mark();
  // In one transaction: deletes metrics and findings written after `mark` (pre-flight findings,
  // at step 0 of epoch 0, stay), and the records of checkpoints taken after optimizer step
  // `step` (their files are replaced by the resumed fit).
  void truncate_to(const StoreMark& mark, int64_t step);

  // A consistent copy of the whole store (pending metrics committed first) into a new database
  // at `file`, while writers and readers go on (SQLite's online backup). Throws Error naming
  // both files when `file` exists or cannot be written.
  void copy_to(const std::filesystem::path& file) const;

 private:
  void exec(const char* sql, const char* action) const;
  // const so that metrics() can commit the buffer first and read its own writes.
  void flush_pending() const;
  void require_writable(const char* action) const;
  void close() noexcept;

  std::filesystem::path file_;
  Mode mode_ = Mode::kReadWrite;
  sqlite3* db_ = nullptr;
  mutable std::vector<MetricPoint> pending_;
};

// Seconds since the Unix epoch, as stored in wall_time columns.
double wall_time_now();

}  // namespace trainscope::track
