#include <sqlite3.h>
#include <trainscope/error.h>
#include <trainscope/track/run_store.h>

#include "track/sqlite_statement.h"

#include <cassert>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <utility>

namespace trainscope::track {
namespace {

constexpr const char* kSchemaVersion = "1";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT, source TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS metrics(step INTEGER, epoch INTEGER, split TEXT, tag TEXT,
                                   value REAL, wall_time REAL);
CREATE INDEX IF NOT EXISTS metrics_split_tag_step ON metrics(split, tag, step);
CREATE TABLE IF NOT EXISTS results(split TEXT, name TEXT, json TEXT, PRIMARY KEY(split, name));
CREATE TABLE IF NOT EXISTS findings(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT,
                                    severity TEXT, step INTEGER, epoch INTEGER, message TEXT,
                                    evidence TEXT, remedy TEXT, wall_time REAL);
CREATE TABLE IF NOT EXISTS checkpoints(id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT,
                                       kind TEXT, epoch INTEGER, step INTEGER, monitor TEXT,
                                       value REAL, wall_time REAL);
)sql";

using detail::Statement;
using detail::throw_sqlite_error;

// BEGIN IMMEDIATE takes the write lock up front, so a busy database fails (after the busy
// timeout) at the start of the transaction rather than halfway through it.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::filesystem::path& file, RunStore::Mode mode,
              const char* action)
      : db_(db), file_(file), mode_(mode), action_(action) {
    run("BEGIN IMMEDIATE");
  }
  ~Transaction() {
    if (!committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    run("COMMIT");
    committed_ = true;
  }

 private:
  void run(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw_sqlite_error(file_, db_, mode_, action_);
    }
  }

  sqlite3* db_;
  const std::filesystem::path& file_;
  RunStore::Mode mode_;
  const char* action_;
  bool committed_ = false;
};

}  // namespace

RunStore::RunStore(const std::filesystem::path& file, Mode mode) : file_(file), mode_(mode) {
  const int flags =
      mode_ == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  db_ = detail::open_database(file_, flags, mode_, "open");
  try {
    // Readers also wait: a reader can meet a lock briefly while the writer checkpoints the WAL.
    sqlite3_busy_timeout(db_, 5000);
    if (mode_ == Mode::kReadWrite) {
      // WAL lets the dashboard read while training writes; NORMAL is durable across a crash of
      // the process (only an OS crash can lose the last commits), at a fraction of FULL's fsyncs.
      exec("PRAGMA journal_mode=WAL", "enable write-ahead logging");
      exec("PRAGMA synchronous=NORMAL", "set synchronous mode");
      // One transaction, so that two processes opening a new run at once cannot interleave.
      Transaction transaction(db_, file_, mode_, "create the schema");
      exec(kSchema, "create the schema");
      Statement version(db_, file_, mode_, "create the schema",
                        "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?1)");
      version.bind(1, std::string(kSchemaVersion));
      version.step();
      transaction.commit();
    }
    detail::require_schema_version(db_, file_, mode_);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

RunStore::~RunStore() { close(); }

RunStore::RunStore(RunStore&& other) noexcept
    : file_(std::move(other.file_)),
      mode_(other.mode_),
      db_(std::exchange(other.db_, nullptr)),
      pending_(std::move(other.pending_)) {
  other.pending_.clear();
}

RunStore& RunStore::operator=(RunStore&& other) noexcept {
  if (this != &other) {
    close();
    file_ = std::move(other.file_);
    mode_ = other.mode_;
    db_ = std::exchange(other.db_, nullptr);
    pending_ = std::move(other.pending_);
    other.pending_.clear();
  }
  return *this;
}

void RunStore::close() noexcept {
  if (db_ == nullptr) return;
  try {
    flush_pending();
  } catch (const std::exception& e) {
    // A destructor must not throw; losing metrics silently would be worse than a stray line.
    std::cerr << "trainscope: lost " << pending_.size() << " metric points: " << e.what() << "\n";
  }
  pending_.clear();
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

void RunStore::exec(const char* sql, const char* action) const {
  assert(db_ != nullptr && "RunStore used after being moved from");
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    throw_sqlite_error(file_, db_, mode_, action);
  }
}

void RunStore::require_writable(const char* action) const {
  assert(db_ != nullptr && "RunStore used after being moved from");
  if (mode_ == Mode::kReadOnly) {
    throw Error("run store " + file_.string() + ": cannot " + action +
                ": the store was opened read-only (open it with RunStore::Mode::kReadWrite "
                "to write)");
  }
}

void RunStore::set_meta(const std::string& key, const std::string& value) {
  require_writable("set meta");
  Statement insert(db_, file_, mode_, "set meta '" + key + "'",
                   "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  insert.bind(1, key);
  insert.bind(2, value);
  insert.step();
}

std::optional<std::string> RunStore::meta(const std::string& key) const {
  Statement select(db_, file_, mode_, "read meta '" + key + "'",
                   "SELECT value FROM meta WHERE key = ?1");
  select.bind(1, key);
  if (!select.step()) return std::nullopt;
  return select.column_text(0);
}

void RunStore::erase_meta(const std::vector<std::string>& keys) {
  require_writable("erase meta");
  Statement erase(db_, file_, mode_, "erase meta", "DELETE FROM meta WHERE key = ?1");
  for (const auto& key : keys) {
    erase.bind(1, key);
    erase.step();
    erase.reset();
  }
}

void RunStore::put_settings(const std::vector<SettingRecord>& settings) {
  require_writable("write settings");
  Transaction transaction(db_, file_, mode_, "write settings");
  Statement insert(db_, file_, mode_, "write settings",
                   "INSERT OR REPLACE INTO settings(key, value, source, reason) "
                   "VALUES(?1, ?2, ?3, ?4)");
  for (const SettingRecord& setting : settings) {
    insert.bind(1, setting.key);
    insert.bind(2, setting.value);
    insert.bind(3, setting.source);
    insert.bind(4, setting.reason);
    insert.step();
    insert.reset();
  }
  transaction.commit();
}

std::vector<SettingRecord> RunStore::settings() const {
  Statement select(db_, file_, mode_, "read settings",
                   "SELECT key, value, source, reason FROM settings ORDER BY key");
  std::vector<SettingRecord> out;
  while (select.step()) {
    out.push_back({select.column_text(0), select.column_text(1), select.column_text(2),
                   select.column_text(3)});
  }
  return out;
}

void RunStore::add_metric(MetricPoint point) {
  // Fail at the call that is wrong, not at a later flush or in the destructor.
  require_writable("add a metric");
  pending_.push_back(std::move(point));
  if (pending_.size() >= kFlushEvery) flush_pending();
}

void RunStore::flush() { flush_pending(); }

void RunStore::flush_pending() const {
  if (pending_.empty()) return;
  require_writable("write metrics");
  Transaction transaction(db_, file_, mode_, "write metrics");
  Statement insert(db_, file_, mode_, "write metrics",
                   "INSERT INTO metrics(step, epoch, split, tag, value, wall_time) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  for (const MetricPoint& point : pending_) {
    insert.bind(1, point.step);
    insert.bind(2, point.epoch);
    insert.bind(3, point.split);
    insert.bind(4, point.tag);
    insert.bind(5, point.value);
    insert.bind(6, point.wall_time);
    insert.step();
    insert.reset();
  }
  transaction.commit();
  // Cleared only after COMMIT: if the write fails, the points stay pending for a retry (and for
  // the destructor's report) instead of vanishing.
  pending_.clear();
}

std::vector<MetricPoint> RunStore::metrics(const std::string& split, const std::string& tag) const {
  if (mode_ == Mode::kReadWrite) flush_pending();
  // One text per filter combination, so that each can use the (split, tag, step) index; rowid
  // keeps points of the same step in the order they were added.
  static constexpr const char* kQueries[4] = {
      "SELECT step, epoch, split, tag, value, wall_time FROM metrics "
      "ORDER BY step, rowid",
      "SELECT step, epoch, split, tag, value, wall_time FROM metrics WHERE split = ?1 "
      "ORDER BY step, rowid",
      "SELECT step, epoch, split, tag, value, wall_time FROM metrics WHERE tag = ?2 "
      "ORDER BY step, rowid",
      "SELECT step, epoch, split, tag, value, wall_time FROM metrics "
      "WHERE split = ?1 AND tag = ?2 ORDER BY step, rowid",
  };
  const int query = (split.empty() ? 0 : 1) + (tag.empty() ? 0 : 2);
  Statement select(db_, file_, mode_, "read metrics", kQueries[query]);
  if (!split.empty()) select.bind(1, split);
  if (!tag.empty()) select.bind(2, tag);
  std::vector<MetricPoint> out;
  while (select.step()) {
    out.push_back({select.column_int(0), select.column_int(1), select.column_text(2),
                   select.column_text(3), select.column_real(4), select.column_real(5)});
  }
  return out;
}

void RunStore::put_result(const std::string& split, const std::string& name,
                          const std::string& json) {
  require_writable("write a result");
  Statement insert(db_, file_, mode_, "write result " + split + "/" + name,
                   "INSERT OR REPLACE INTO results(split, name, json) VALUES(?1, ?2, ?3)");
  insert.bind(1, split);
  insert.bind(2, name);
  insert.bind(3, json);
  insert.step();
}

void RunStore::erase_results(const std::string& split) {
  require_writable("erase results");
  Statement erase(db_, file_, mode_, "erase the results of " + split,
                  "DELETE FROM results WHERE split = ?1");
  erase.bind(1, split);
  erase.step();
}

std::optional<std::string> RunStore::result(const std::string& split,
                                            const std::string& name) const {
  Statement select(db_, file_, mode_, "read result " + split + "/" + name,
                   "SELECT json FROM results WHERE split = ?1 AND name = ?2");
  select.bind(1, split);
  select.bind(2, name);
  if (!select.step()) return std::nullopt;
  return select.column_text(0);
}

void RunStore::add_finding(const FindingRecord& finding) {
  require_writable("write a finding");
  Statement insert(db_, file_, mode_, "write finding '" + finding.kind + "'",
                   "INSERT INTO findings(kind, severity, step, epoch, message, evidence, remedy, "
                   "wall_time) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  insert.bind(1, finding.kind);
  insert.bind(2, finding.severity);
  insert.bind(3, finding.step);
  insert.bind(4, finding.epoch);
  insert.bind(5, finding.message);
  insert.bind(6, finding.evidence_json);
  insert.bind(7, finding.remedy);
  insert.bind(8, finding.wall_time);
  insert.step();
}

std::vector<FindingRecord> RunStore::findings() const {
  Statement select(db_, file_, mode_, "read findings",
                   "SELECT kind, severity, step, epoch, message, evidence, remedy, wall_time "
                   "FROM findings ORDER BY id");
  std::vector<FindingRecord> out;
  while (select.step()) {
    out.push_back({select.column_text(0), select.column_text(1), select.column_int(2),
                   select.column_int(3), select.column_text(4), select.column_text(5),
                   select.column_text(6), select.column_real(7)});
  }
  return out;
}

void RunStore::add_checkpoint(const CheckpointRecord& checkpoint) {
  require_writable("record a checkpoint");
  Statement insert(db_, file_, mode_, "record checkpoint " + checkpoint.path,
                   "INSERT INTO checkpoints(path, kind, epoch, step, monitor, value, wall_time) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  insert.bind(1, checkpoint.path);
  insert.bind(2, checkpoint.kind);
  insert.bind(3, checkpoint.epoch);
  insert.bind(4, checkpoint.step);
  insert.bind(5, checkpoint.monitor);
  insert.bind(6, checkpoint.value);
  insert.bind(7, checkpoint.wall_time);
  insert.step();
}

namespace detail {

std::vector<CheckpointRecord> select_checkpoints(sqlite3* db_, const std::filesystem::path& file_,
                                                 RunStore::Mode mode_) {
  Statement select(db_, file_, mode_, "read checkpoints",
                   "SELECT path, kind, epoch, step, monitor, value, wall_time "
                   "FROM checkpoints ORDER BY id");
  std::vector<CheckpointRecord> out;
  while (select.step()) {
    out.push_back({select.column_text(0), select.column_text(1), select.column_int(2),
                   select.column_int(3), select.column_text(4), select.column_real(5),
                   select.column_real(6)});
  }
  return out;
}

}  // namespace detail

std::vector<CheckpointRecord> RunStore::checkpoints() const {
  return detail::select_checkpoints(db_, file_, mode_);
}

StoreMark RunStore::mark() {
  flush_pending();
  auto max_id = [&](const char* sql) {
    Statement select(db_, file_, mode_, "read the store's extent", sql);
    return select.step() ? select.column_int(0) : int64_t{0};
  };
  return {max_id("SELECT IFNULL(MAX(rowid), 0) FROM metrics"),
          max_id("SELECT IFNULL(MAX(id), 0) FROM findings")};
}

void RunStore::truncate_to(const StoreMark& mark, int64_t step) {
  require_writable("truncate the run to a checkpoint");
  pending_.clear();  // points buffered since the mark belong to the discarded future too
  Transaction transaction(db_, file_, mode_, "truncate the run to a checkpoint");
  Statement metrics(db_, file_, mode_, "truncate metrics", "DELETE FROM metrics WHERE rowid > ?1");
  metrics.bind(1, mark.metrics);
  metrics.step();
  // Pre-flight findings (step 0, epoch 0) precede every checkpoint: they stay.
  Statement findings(db_, file_, mode_, "truncate findings",
                     "DELETE FROM findings WHERE id > ?1 AND (step > 0 OR epoch > 0)");
  findings.bind(1, mark.findings);
  findings.step();
  Statement checkpoints(db_, file_, mode_, "truncate checkpoint records",
                        "DELETE FROM checkpoints WHERE step > ?1");
  checkpoints.bind(1, step);
  checkpoints.step();
  transaction.commit();
}

void RunStore::copy_to(const std::filesystem::path& file) const {
  flush_pending();
  std::error_code ec;
  if (std::filesystem::exists(file, ec))
    throw Error("cannot copy run store " + file_.string() + " to " + file.string() +
                ": the file exists");
  sqlite3* copy = detail::open_database(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                        Mode::kReadWrite, "create a copy of " + file_.string());
  std::string error;
  if (sqlite3_backup* backup = sqlite3_backup_init(copy, "main", db_, "main")) {
    // All pages in one step: the source is read in one transaction, a consistent snapshot.
    const int rc = sqlite3_backup_step(backup, -1);
    if (rc != SQLITE_DONE) error = sqlite3_errstr(rc);
    sqlite3_backup_finish(backup);
  } else {
    error = sqlite3_errmsg(copy);
  }
  if (error.empty() &&
      sqlite3_exec(copy, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) != SQLITE_OK)
    error = sqlite3_errmsg(copy);
  sqlite3_close_v2(copy);
  if (!error.empty()) {
    std::filesystem::remove(file, ec);
    throw Error("cannot copy run store " + file_.string() + " to " + file.string() + ": " + error);
  }
}

namespace detail {

void require_schema_version(sqlite3* db, const std::filesystem::path& file, RunStore::Mode mode) {
  // Reading the version also surfaces a file that is not a database now rather than at the
  // first query (sqlite opens lazily).
  Statement select(db, file, mode, "read meta 'schema_version'",
                   "SELECT value FROM meta WHERE key = 'schema_version'");
  if (!select.step()) return;
  const std::string version = select.column_text(0);
  if (version != kSchemaVersion) {
    throw Error("run store " + file.string() + ": schema version " + version +
                " is not supported (this build reads version " + kSchemaVersion +
                "; open the run with the trainscope version that wrote it)");
  }
}

}  // namespace detail

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace trainscope::track
