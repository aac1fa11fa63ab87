#include <sqlite3.h>
#include <trainscope/error.h>
#include <trainscope/track/run_store.h>

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

std::string hint_for(int code, RunStore::Mode mode) {
  switch (code & 0xff) {
    case SQLITE_CANTOPEN:
      return mode == RunStore::Mode::kReadOnly
                 ? "check the file exists; read-only mode does not create it"
                 : "check the run directory exists and is writable";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "another process is writing this run; only one writer per run is supported";
    case SQLITE_FULL:
      return "the disk is full; free space or move the run directory";
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return "check the file and its directory are writable";
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return "the file is not a trainscope run store or is damaged";
    default:
      return "check the run directory is writable and the file is a trainscope run store";
  }
}

[[noreturn]] void throw_sqlite_error(const std::filesystem::path& file, sqlite3* db,
                                     RunStore::Mode mode, const std::string& action) {
  // sqlite3_errmsg(nullptr) reports "out of memory", which is what a null handle means here.
  const int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
  throw Error("run store " + file.string() + ": cannot " + action + ": " + sqlite3_errmsg(db) +
              " (" + hint_for(code, mode) + ")");
}

// One prepared statement; finalized on scope exit so that no error path leaks it (a leaked
// statement would also keep sqlite3_close from releasing the file).
class Statement {
 public:
  Statement(sqlite3* db, const std::filesystem::path& file, RunStore::Mode mode, std::string action,
            const char* sql)
      : db_(db), file_(file), mode_(mode), action_(std::move(action)) {
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail();
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, const std::string& text) {
    check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                            SQLITE_TRANSIENT));
  }
  void bind(int index, int64_t number) {
    check(sqlite3_bind_int64(stmt_, index, static_cast<sqlite3_int64>(number)));
  }
  // SQLite turns a bound NaN into NULL anyway; binding NULL explicitly makes the mapping
  // visible here, next to column_real() mapping it back. +-Inf are stored as REAL natively.
  void bind(int index, double number) {
    check(std::isnan(number) ? sqlite3_bind_null(stmt_, index)
                             : sqlite3_bind_double(stmt_, index, number));
  }

  // True while a row is available; false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail();
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::string column_text(int index) const {
    const auto* text = sqlite3_column_text(stmt_, index);
    if (text == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, index)));
  }
  int64_t column_int(int index) const { return sqlite3_column_int64(stmt_, index); }
  double column_real(int index) const {
    if (sqlite3_column_type(stmt_, index) == SQLITE_NULL) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    return sqlite3_column_double(stmt_, index);
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail();
  }
  [[noreturn]] void fail() { throw_sqlite_error(file_, db_, mode_, action_); }

  sqlite3* db_;
  const std::filesystem::path& file_;
  RunStore::Mode mode_;
  std::string action_;
  sqlite3_stmt* stmt_ = nullptr;
};

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
  if (sqlite3_open_v2(file_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    // On failure sqlite usually still allocates a handle that carries the message.
    const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    const int code = db_ != nullptr ? sqlite3_extended_errcode(db_) : SQLITE_NOMEM;
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error("run store " + file_.string() + ": cannot open: " + message + " (" +
                hint_for(code, mode_) + ")");
  }
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
    // Reading the version also surfaces a file that is not a database now rather than at the
    // first query (sqlite opens lazily).
    const std::optional<std::string> version = meta("schema_version");
    if (version && *version != kSchemaVersion) {
      throw Error("run store " + file_.string() + ": schema version " + *version +
                  " is not supported (this build reads version " + kSchemaVersion +
                  "; open the run with the trainscope version that wrote it)");
    }
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

std::vector<CheckpointRecord> RunStore::checkpoints() const {
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

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace trainscope::track
