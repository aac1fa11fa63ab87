#pragma once
// Private to src/track: the one wrapper over SQLite's C API, shared by the writer (RunStore) and
// the reader (StoreReader), so that every failure names the file, the action and a hint the same
// way whichever side met it. Nothing outside src/track includes <sqlite3.h> for the run store.

#include <sqlite3.h>
#include <trainscope/error.h>
#include <trainscope/track/run_store.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

namespace trainscope::track::detail {

inline std::string hint_for(int code, RunStore::Mode mode) {
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

[[noreturn]] inline void throw_sqlite_error(const std::filesystem::path& file, sqlite3* db,
                                            RunStore::Mode mode, const std::string& action) {
  // sqlite3_errmsg(nullptr) reports "out of memory", which is what a null handle means here.
  const int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
  throw Error("run store " + file.string() + ": cannot " + action + ": " + sqlite3_errmsg(db) +
              " (" + hint_for(code, mode) + ")");
}

// Opens a connection with sqlite3_open_v2 `flags`; throws Error("run store <file>: cannot
// <action>: ...") when that fails.
inline sqlite3* open_database(const std::filesystem::path& file, int flags, RunStore::Mode mode,
                              const std::string& action) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    // On failure sqlite usually still allocates a handle that carries the message.
    const std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    const int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
    sqlite3_close_v2(db);
    throw Error("run store " + file.string() + ": cannot " + action + ": " + message + " (" +
                hint_for(code, mode) + ")");
  }
  return db;
}

// Throws Error when the store records a schema version this build does not read; a store
// without one is accepted. Defined in run_store.cpp, next to the schema it checks.
void require_schema_version(sqlite3* db, const std::filesystem::path& file, RunStore::Mode mode);

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

  std::string column_text(int index) const { return std::string(column_text_view(index)); }
  // Valid until the next step() or reset(): for loops over many rows that would otherwise
  // allocate a string per column per row.
  std::string_view column_text_view(int index) const {
    const auto* text = sqlite3_column_text(stmt_, index);
    if (text == nullptr) return {};
    return std::string_view(reinterpret_cast<const char*>(text),
                            static_cast<size_t>(sqlite3_column_bytes(stmt_, index)));
  }
  // NULL reads as 0.
  int64_t column_int(int index) const { return sqlite3_column_int64(stmt_, index); }
  double column_real(int index) const {
    if (is_null(index)) return std::numeric_limits<double>::quiet_NaN();
    return sqlite3_column_double(stmt_, index);
  }
  bool is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

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

// The checkpoints table in insertion order; the one query both the writer and the reader use.
std::vector<CheckpointRecord> select_checkpoints(sqlite3* db, const std::filesystem::path& file,
                                                 RunStore::Mode mode);

}  // namespace trainscope::track::detail
